//! `/goscheduler/apps/{appId}/tokens`: the admin issues, lists and revokes an app's API
//! tokens (our extension). A token is shown once, when issued; only its hash is stored.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::access::Caller;
use super::envelope::{ok, ApiError, Envelope, Failure};
use super::params::parse_body;
use super::Gateway;
use crate::auth::app_token;
use crate::meta::app::{validate_app_id, AppToken};

/// Longest token name.
const MAX_NAME_LEN: usize = 64;

/// Body of `POST /goscheduler/apps/{appId}/tokens` (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueToken {
    /// What the token is for (e.g. "ci"), at most 64 characters, no control characters.
    #[schema(max_length = 64, pattern = "^[^\\x00-\\x1f\\x7f-\\x9f]*$")]
    name: Option<String>,
}

/// A token as listed: never its secret.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenView {
    token_id: Uuid,
    app_id: String,
    name: String,
    /// Epoch ms.
    created_at: u64,
    /// The token itself: only in the answer that issued it.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

fn view(app_id: &str, t: &AppToken, token: Option<String>) -> TokenView {
    TokenView {
        token_id: t.token_id,
        app_id: app_id.to_string(),
        name: t.name.clone(),
        created_at: t.created_at_ms,
        token,
    }
}

/// `POST /goscheduler/apps/{appId}/tokens`: a new token that may touch this app's
/// schedules, runs and bulk actions only. Admin only; the token is in this answer alone.
#[utoipa::path(post, path = "/goscheduler/apps/{app_id}/tokens", tag = "apps",
    params(("app_id" = String, Path)), request_body(content = Option<IssueToken>),
    responses((status = 200, description = "issued (body statusCode 201)", body = Envelope<TokenView>),
        (status = 400, body = Failure), (status = 403, body = Failure), (status = 429, body = Failure)))]
pub async fn issue(
    State(gw): State<Gateway>,
    caller: Caller,
    Path(app_id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    caller.must_be_admin("issuing a token")?;
    validate_app_id(&app_id).map_err(ApiError::bad_request)?;
    let req: IssueToken = match &body {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) || b.trim_ascii() == b"null" => {
            IssueToken::default()
        }
        _ => parse_body(body, gw.config.limits.max_body_bytes)?,
    };
    let name = req.name.unwrap_or_default();
    if name.chars().count() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "name must be at most {MAX_NAME_LEN} characters, without control characters"
        )));
    }
    let (record, shown) = app_token::issue(&app_id, name, crate::schedule::time::now_ms());
    gw.router
        .issue_app_token(app_id.clone(), record.clone())
        .await?;
    Ok(ok(201, 1, view(&app_id, &record, Some(shown))))
}

/// `GET /goscheduler/apps/{appId}/tokens`: the app's tokens (ids, names, when issued).
#[utoipa::path(get, path = "/goscheduler/apps/{app_id}/tokens", tag = "apps",
    params(("app_id" = String, Path)),
    responses((status = 200, body = Envelope<Vec<TokenView>>), (status = 403, body = Failure), (status = 404, body = Failure)))]
pub async fn list(
    State(gw): State<Gateway>,
    caller: Caller,
    Path(app_id): Path<String>,
) -> Result<Response, ApiError> {
    caller.must_be_admin("listing tokens")?;
    let app = super::lookup::existing_app(&gw, &app_id).await?;
    let views: Vec<TokenView> = app.tokens.iter().map(|t| view(&app_id, t, None)).collect();
    Ok(ok(200, views.len(), views))
}

/// `DELETE /goscheduler/apps/{appId}/tokens/{tokenId}`: revokes a token at once (a node
/// whose meta replica lags may still take it for that lag, normally milliseconds).
#[utoipa::path(delete, path = "/goscheduler/apps/{app_id}/tokens/{token_id}", tag = "apps",
    params(("app_id" = String, Path), ("token_id" = String, Path)),
    responses((status = 200, body = Envelope<String>), (status = 403, body = Failure), (status = 404, body = Failure)))]
pub async fn revoke(
    State(gw): State<Gateway>,
    caller: Caller,
    Path((app_id, token_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.must_be_admin("revoking a token")?;
    validate_app_id(&app_id).map_err(ApiError::bad_request)?;
    let token_id = Uuid::try_parse(&token_id)
        .map_err(|_| ApiError::bad_request(format!("token id {token_id:?} is not a UUID")))?;
    gw.router.revoke_app_token(app_id, token_id).await?;
    Ok(ok(200, 1, format!("token {token_id} revoked")))
}
