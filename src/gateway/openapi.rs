//! The OpenAPI 3 document of the REST API, generated from the handlers' annotations and
//! the request and reply types (`GET /goscheduler/openapi.json`).

use axum::Json;
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

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
