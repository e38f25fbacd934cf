//! `GET /goscheduler/crons/schedules`: an app's crons, by id (creation order), a page at
//! a time: `size` (default and most 1,000) and `continuationToken` (a response header
//! `Continuation-Token` names where the next page starts; `data` stays the wiki's array).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderValue;
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::access::Caller;
use super::envelope::{ok, ApiError, Envelope, Failure};
use super::lookup::registered_app;
use super::params::{parse_size_or, parse_status_filter, MAX_SIZE};
use super::views::{stored_view, ScheduleView};
use super::Gateway;
use crate::meta::app::validate_app_id;
use crate::schedule::page;
use crate::shard::app_shards;

/// The response header naming where the next page starts.
const CONTINUATION: &str = "continuation-token";

#[derive(Debug, Deserialize)]
pub struct CronsParams {
    app_id: Option<String>,
    status: Option<String>,
    size: Option<String>,
    #[serde(rename = "continuationToken")]
    continuation_token: Option<String>,
}

#[utoipa::path(get, path = "/goscheduler/crons/schedules", tag = "schedules",
    params(("app_id" = String, Query), ("status" = Option<String>, Query), ("size" = Option<usize>, Query), ("continuationToken" = Option<String>, Query)),
    responses((status = 200, body = Envelope<Vec<ScheduleView>>), (status = 404, body = Failure)))]
pub async fn list(
    State(gw): State<Gateway>,
    caller: Caller,
    params: Result<Query<CronsParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params?;
    let app_id = p
        .app_id
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::bad_request("app_id is required"))?;
    caller.may_touch(&app_id)?;
    validate_app_id(&app_id).map_err(ApiError::bad_request)?;
    let status = parse_status_filter(p.status.as_deref())?;
    let size = parse_size_or(p.size.as_deref(), MAX_SIZE)?;
    let after = p
        .continuation_token
        .filter(|t| !t.is_empty())
        .map(|t| {
            Uuid::parse_str(&t)
                .map_err(|e| ApiError::bad_request(format!("invalid continuationToken {t:?}: {e}")))
        })
        .transpose()?;
    let app = registered_app(&gw, &app_id).await?;
    let shards = app_shards(&app_id, app.partitions, gw.config.shards);
    let (mut crons, examined_to) = gw
        .router
        .app_crons(&shards, &app_id, status, after, size + 1)
        .await?;
    // More than asked: the next page starts after the last one shown. A shard that stopped
    // at its work budget ends the page early (maybe with none), going on from there.
    let next = page::cut_by(&mut crons, size, |s| s.id).or(examined_to);
    if crons.is_empty() && after.is_none() && next.is_none() {
        return Err(ApiError::not_found("No cron schedules found"));
    }
    let views: Vec<_> = crons.iter().map(stored_view).collect();
    let mut answer = ok(200, views.len(), views);
    if let Some(next) = next {
        let value = HeaderValue::from_str(&next.to_string()).expect("a uuid is a header value");
        answer.headers_mut().insert(CONTINUATION, value);
    }
    Ok(answer)
}
