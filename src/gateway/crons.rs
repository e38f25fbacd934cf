//! `GET /goscheduler/crons/schedules`: an app's crons.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::envelope::{ok, ApiError, Envelope, Failure};
use super::lookup::registered_app;
use super::params::parse_status_filter;
use super::views::{stored_view, ScheduleView};
use super::Gateway;
use crate::command::ShardQuery;
use crate::meta::app::validate_app_id;
use crate::shard::app_shards;

/// Most crons one listing returns per shard.
const MAX_CRONS_PER_SHARD: usize = 10_000;

#[derive(Debug, Deserialize)]
pub struct CronsParams {
    app_id: Option<String>,
    status: Option<String>,
}

#[utoipa::path(get, path = "/goscheduler/crons/schedules", tag = "schedules",
    params(("app_id" = String, Query), ("status" = Option<String>, Query)),
    responses((status = 200, body = Envelope<Vec<ScheduleView>>), (status = 404, body = Failure)))]
pub async fn list(
    State(gw): State<Gateway>,
    params: Result<Query<CronsParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params?;
    let app_id = p
        .app_id
        .filter(|a| !a.is_empty())
        .ok_or_else(|| ApiError::bad_request("app_id is required"))?;
    validate_app_id(&app_id).map_err(ApiError::bad_request)?;
    let status = parse_status_filter(p.status.as_deref())?;
    let app = registered_app(&gw, &app_id).await?;
    let shards = app_shards(&app_id, app.partitions, gw.config.shards);
    let mut crons = gw
        .router
        .scatter(&shards, || ShardQuery::AppCrons {
            app_id: app_id.clone(),
            status,
            limit: MAX_CRONS_PER_SHARD,
        })
        .await?;
    if crons.is_empty() {
        return Err(ApiError::not_found("No cron schedules found"));
    }
    // UUIDv7 ids sort by creation time.
    crons.sort_by_key(|s| s.id);
    let views: Vec<_> = crons.iter().map(stored_view).collect();
    Ok(ok(200, views.len(), views))
}
