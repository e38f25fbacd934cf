//! App endpoints: register, list, activate, deactivate.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::access::Caller;
use super::envelope::{ok, ApiError, Envelope, Failure};
use super::params::{parse_body, parse_size_or, MAX_SIZE};
use super::views::{ActiveData, AppsData};
use super::Gateway;
use crate::meta::app::{validate_app_id, App, AppConfiguration, Signing, MAX_PARTITIONS};
use crate::schedule::page;

/// Body of `POST /goscheduler/apps`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegisterApp {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    app_id: Option<String>,
    /// 0 or absent: the cluster's `default_partitions`.
    #[schema(minimum = 0, maximum = 1024)]
    #[serde(default, deserialize_with = "crate::json_shape::whole_or_none")]
    partitions: Option<u32>,
    active: Option<bool>,
    #[serde(default, deserialize_with = "crate::json_shape::object_or_none")]
    configuration: Option<AppConfiguration>,
}

#[utoipa::path(post, path = "/goscheduler/apps", tag = "apps", request_body = RegisterApp,
    responses((status = 200, description = "registered (body statusCode 201)", body = Envelope<App>), (status = 400, body = Failure)))]
pub async fn register(
    State(gw): State<Gateway>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.must_be_admin("registering an app")?;
    let req: RegisterApp = parse_body(body, gw.config.limits.max_body_bytes)?;
    let app_id = req.app_id.unwrap_or_default();
    validate_app_id(&app_id).map_err(ApiError::bad_request)?;
    let partitions = match req.partitions.unwrap_or(0) {
        0 => gw.config.default_partitions,
        p if p > MAX_PARTITIONS => {
            return Err(ApiError::bad_request(format!(
                "partitions {p} is more than the maximum of {MAX_PARTITIONS}"
            )))
        }
        p => p,
    };
    let configuration = req.configuration.unwrap_or_default();
    let problems = configuration.problems(gw.config.limits.max_payload_bytes as u32);
    if !problems.is_empty() {
        return Err(ApiError::bad_request(problems.join(",")));
    }
    let app = App {
        app_id,
        partitions,
        active: req.active.unwrap_or(false),
        configuration,
        signing: Some(Signing {
            secret: Signing::new_secret(),
            previous: None,
            previous_until_ms: 0,
        }),
        tokens: vec![],
    };
    Ok(ok(201, 1, gw.router.register_app(app).await?.public()))
}

#[derive(Debug, Deserialize)]
pub struct ListParams {
    app_id: Option<String>,
    size: Option<String>,
    #[serde(rename = "continuationToken")]
    continuation_token: Option<String>,
}

/// `GET /goscheduler/apps`: one app (`app_id`), or every app by id, `size` (default and
/// most 1,000) at a time; `data.continuationToken` names where the next page starts.
#[utoipa::path(get, path = "/goscheduler/apps", tag = "apps",
    params(("app_id" = Option<String>, Query), ("size" = Option<usize>, Query), ("continuationToken" = Option<String>, Query)),
    responses((status = 200, body = Envelope<AppsData>), (status = 404, body = Failure)))]
pub async fn list(
    State(gw): State<Gateway>,
    caller: Caller,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    if let Caller::App(own) = &caller {
        if params.app_id.as_deref() != Some(own.as_str()) {
            let message = format!("this token is app {own}'s: list with app_id={own}");
            return Err(ApiError::new(403, message));
        }
    }
    let size = parse_size_or(params.size.as_deref(), MAX_SIZE)?;
    let after = params.continuation_token.filter(|t| !t.is_empty());
    if let Some(token) = &after {
        validate_app_id(token)
            .map_err(|e| ApiError::bad_request(format!("invalid continuationToken: {e}")))?;
    }
    let (apps, continuation_token) = match params.app_id.filter(|s| !s.is_empty()) {
        Some(app_id) => {
            let app = super::lookup::existing_app(&gw, &app_id).await?;
            (vec![app.public()], None)
        }
        None => {
            let mut apps = gw.router.apps(after.clone(), size + 1).await?;
            let next = page::cut_by(&mut apps, size, |a| a.app_id.clone());
            (apps.into_iter().map(App::public).collect(), next)
        }
    };
    if apps.is_empty() && after.is_none() {
        return Err(ApiError::not_found("No app found"));
    }
    let data = AppsData {
        apps,
        continuation_token,
    };
    Ok(ok(200, data.apps.len(), data))
}

#[utoipa::path(post, path = "/goscheduler/apps/{app_id}/activate", tag = "apps", params(("app_id" = String, Path)),
    responses((status = 200, description = "body statusCode 201", body = Envelope<ActiveData>), (status = 400, body = Failure)))]
pub async fn activate(
    State(gw): State<Gateway>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    caller.must_be_admin("activating an app")?;
    set_active(gw, &caller, app_id, true).await
}

#[utoipa::path(post, path = "/goscheduler/apps/{app_id}/deactivate", tag = "apps", params(("app_id" = String, Path)),
    responses((status = 200, description = "body statusCode 201", body = Envelope<ActiveData>), (status = 400, body = Failure)))]
pub async fn deactivate(
    State(gw): State<Gateway>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    caller.must_be_admin("deactivating an app")?;
    set_active(gw, &caller, app_id, false).await
}

async fn set_active(
    gw: Gateway,
    caller: &Caller,
    app_id: String,
    active: bool,
) -> Result<Response, ApiError> {
    validate_app_id(&app_id).map_err(ApiError::bad_request)?;
    let by = caller.actor(&gw);
    let app = gw.router.set_app_active(app_id, active, by).await?;
    Ok(ok(
        201,
        0,
        ActiveData {
            app_id: app.app_id,
            active: app.active,
        },
    ))
}

/// `data` of the signing-secret endpoints: the secret callbacks are signed with now, and
/// during a rotation's overlap the previous one and until when it is still sent.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningData {
    app_id: String,
    signing_secret: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_signing_secret: Option<String>,
    /// Epoch ms until which the previous secret's signature is sent too.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_valid_until: Option<u64>,
}

fn signing_data(app: App) -> Result<SigningData, ApiError> {
    let Some(s) = app.signing else {
        return Err(ApiError::not_found(format!(
            "app {} has no signing secret yet (registered before signing existed): rotate to make one",
            app.app_id
        )));
    };
    let previous = s
        .previous_at(crate::schedule::time::now_ms())
        .map(str::to_string);
    Ok(SigningData {
        app_id: app.app_id,
        previous_valid_until: previous.is_some().then_some(s.previous_until_ms),
        previous_signing_secret: previous,
        signing_secret: s.secret,
    })
}

/// `GET /goscheduler/apps/{appId}/signing-secret`: the Standard Webhooks secret (`whsec_…`)
/// this app's callbacks are signed with (our extension).
#[utoipa::path(get, path = "/goscheduler/apps/{app_id}/signing-secret", tag = "apps", params(("app_id" = String, Path)),
    responses((status = 200, body = Envelope<SigningData>), (status = 404, body = Failure)))]
pub async fn signing_secret(
    State(gw): State<Gateway>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    caller.must_be_admin("reading the signing secret")?;
    let app = super::lookup::existing_app(&gw, &app_id).await?;
    Ok(ok(200, 1, signing_data(app)?))
}

/// Most seconds a rotated-out secret may stay valid.
const MAX_OVERLAP_SECS: u64 = 7 * 24 * 3600;
/// How long a rotated-out secret stays valid unless asked otherwise.
const DEFAULT_OVERLAP_SECS: u64 = 24 * 3600;

#[derive(Debug, Deserialize)]
pub struct RotateParams {
    #[serde(rename = "overlapSeconds")]
    overlap_seconds: Option<String>,
}

/// `POST /goscheduler/apps/{appId}/signing-secret/rotate?overlapSeconds=`: a new secret;
/// callbacks carry signatures of both for `overlapSeconds` (default a day, at most 7 days;
/// 0 ends the old one at once), then of the new one only.
#[utoipa::path(post, path = "/goscheduler/apps/{app_id}/signing-secret/rotate", tag = "apps",
    params(("app_id" = String, Path), ("overlapSeconds" = Option<u64>, Query)),
    responses((status = 200, body = Envelope<SigningData>), (status = 400, body = Failure)))]
pub async fn rotate_signing_secret(
    State(gw): State<Gateway>,
    caller: Caller,
    Path(app_id): Path<String>,
    params: Result<Query<RotateParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.must_be_admin("rotating the signing secret")?;
    let Query(params) = params?;
    validate_app_id(&app_id).map_err(ApiError::bad_request)?;
    let overlap = match params.overlap_seconds.as_deref().filter(|s| !s.is_empty()) {
        None => DEFAULT_OVERLAP_SECS,
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|n| *n <= MAX_OVERLAP_SECS)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "overlapSeconds {s:?} is not a number of seconds within 0..={MAX_OVERLAP_SECS}"
                ))
            })?,
    };
    let app = gw
        .router
        .rotate_signing_secret(app_id, Signing::new_secret(), overlap * 1000)
        .await?;
    Ok(ok(200, 1, signing_data(app)?))
}
