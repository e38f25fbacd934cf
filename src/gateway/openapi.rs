//! The OpenAPI 3 document of the REST API, generated from the handlers' annotations and
//! the request and reply types (`GET /goscheduler/openapi.json`).

use axum::Json;
use serde_json::json;
use utoipa::OpenApi;

use super::{
    app_schedules, apps, audit, bulk_actions, crons, health, pause, runs, schedules, tokens, update,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "goscheduler",
        description = "A Raft-replicated scheduler with the API of Myntra's GoScheduler. \
                       Every success is HTTP 200 in the status/data envelope; failures carry \
                       statusType Fail and a message naming the problem."
    ),
    paths(
        health::healthcheck,
        apps::register,
        apps::list,
        apps::activate,
        apps::deactivate,
        apps::signing_secret,
        apps::rotate_signing_secret,
        tokens::issue,
        tokens::list,
        tokens::revoke,
        schedules::create,
        schedules::create_batch,
        schedules::get,
        schedules::delete,
        runs::runs,
        pause::pause,
        pause::resume,
        pause::trigger,
        update::update_recurring,
        update::patch,
        audit::audit_logs,
        crons::list,
        app_schedules::list,
        bulk_actions::start,
        bulk_actions::progress,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

/// The bearer tokens every endpoint but the healthcheck takes when the cluster has an admin
/// token: the admin token, or an app's token (that app's data only).
struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The cluster's admin token (everything), or an app's token from \
                 POST /goscheduler/apps/{appId}/tokens (that app's schedules, runs and bulk \
                 actions). Without one: 401; with one that may not touch the data: 403. \
                 Not needed when the cluster has no admin token configured.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

pub async fn document() -> Json<serde_json::Value> {
    static DOC: std::sync::OnceLock<serde_json::Value> = std::sync::OnceLock::new();
    Json(DOC.get_or_init(|| constrained(ApiDoc::openapi())).clone())
}

/// The generated document with what the server checks that the annotations do not say:
/// each path and query parameter's type and bounds (by name, the same everywhere), POST
/// beside PUT for pause and resume, and the failures every endpoint can answer (a
/// malformed request 400, no or another's token 401/403, no leader or a full disk 503).
fn constrained(doc: utoipa::openapi::OpenApi) -> serde_json::Value {
    let mut doc = serde_json::to_value(doc).expect("the document serialises");
    let Some(paths) = doc["paths"].as_object_mut() else {
        return doc;
    };
    for (path, item) in paths.iter_mut() {
        let Some(ops) = item.as_object_mut() else {
            continue;
        };
        if path.ends_with("/pause") || path.ends_with("/resume") {
            if let Some(mut post) = ops.get("put").cloned() {
                let id = post["operationId"].as_str().unwrap_or_default();
                post["operationId"] = json!(format!("{id}_post"));
                ops.insert("post".into(), post);
            }
        }
        for op in ops.values_mut() {
            let params = op.get_mut("parameters").and_then(|p| p.as_array_mut());
            for p in params.into_iter().flatten() {
                let in_path_or_query = matches!(p["in"].as_str(), Some("path" | "query"));
                let schema = p["name"].as_str().and_then(|n| parameter(path, n));
                if let (true, Some(schema)) = (in_path_or_query, schema) {
                    p["schema"] = schema;
                }
            }
            if !path.ends_with("/healthcheck") {
                add_failures(op);
            }
        }
    }
    doc
}

/// The schema of a path or query parameter of `path` named `name`, by what the server
/// accepts.
fn parameter(path: &str, name: &str) -> Option<serde_json::Value> {
    let app_id = json!({"type": "string", "pattern": format!("^[A-Za-z0-9_-]{{1,{}}}$", crate::meta::app::MAX_APP_ID_LEN)});
    let uuid = json!({"type": "string", "format": "uuid"});
    Some(match name {
        // The apps listing's filter: empty is no filter.
        "app_id" if path == "/goscheduler/apps" => {
            json!({"type": "string", "pattern": format!("^[A-Za-z0-9_-]{{0,{}}}$", crate::meta::app::MAX_APP_ID_LEN)})
        }
        "app_id" | "appId" => app_id,
        "id" | "scheduleId" | "token_id" | "job_id" => uuid,
        // What a page answered: the last app id, the last cron id, or 48 hex digits (the
        // last schedule's time and id).
        // (Empty: the first page.)
        "continuationToken" => match path {
            "/goscheduler/apps" => {
                json!({"type": "string", "pattern": format!("^[A-Za-z0-9_-]{{0,{}}}$", crate::meta::app::MAX_APP_ID_LEN)})
            }
            "/goscheduler/crons/schedules" => {
                json!({"type": "string", "pattern": "^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})?$"})
            }
            _ => json!({"type": "string", "pattern": "^([0-9a-fA-F]{48})?$"}),
        },
        // RFC 3339, or the wiki's `YYYY-MM-DD HH:MM:SS` in the app's zone.
        "start_time" | "end_time" => or_empty(json!({"type": "string", "format": "date-time"})),
        "size" | "limit" => {
            or_empty(json!({"type": "integer", "minimum": 0, "maximum": super::params::MAX_SIZE}))
        }
        "continuationStartTime" => or_empty(json!({"type": "integer", "format": "int64"})),
        "overlapSeconds" => {
            or_empty(json!({"type": "integer", "minimum": 0, "maximum": 7 * 24 * 3600}))
        }
        "when" => or_empty(json!({"type": "string", "enum": ["past", "future", "all"]})),
        "status" => or_empty(
            json!({"type": "string", "enum": ["SCHEDULED", "DELETED", "SUCCESS", "FAILURE", "MISS", "PAUSED"]}),
        ),
        "action" => json!({"type": "string", "enum": ["reconcile", "delete"]}),
        "catchUp" => json!({"type": "string", "enum": ["true", "false"]}),
        _ => return None,
    })
}

/// `schema`, or empty: the server reads an empty query parameter as one not given.
fn or_empty(schema: serde_json::Value) -> serde_json::Value {
    json!({"anyOf": [schema, {"type": "string", "maxLength": 0}]})
}

/// Adds the failures every endpoint but the healthcheck can answer to operation `op`.
fn add_failures(op: &mut serde_json::Value) {
    let common = [
        ("400", "a malformed request: the message names the problem"),
        (
            "401",
            "no token, or not one of the cluster's (with an admin token configured)",
        ),
        (
            "403",
            "an app's token used on another app's data or a cluster-wide endpoint",
        ),
        (
            "503",
            "the data's group has no leader yet, or this node refuses writes (disk full)",
        ),
    ];
    let has_body = op.get("requestBody").is_some();
    let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else {
        return;
    };
    let answer = |why: &str| {
        let failure = json!({"$ref": "#/components/schemas/Failure"});
        json!({"description": why, "content": {"application/json": {"schema": failure}}})
    };
    for (code, why) in common {
        responses.entry(code).or_insert_with(|| answer(why));
    }
    if has_body {
        responses
            .entry("413")
            .or_insert_with(|| answer("the body exceeds the limit"));
    }
}
