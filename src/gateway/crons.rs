//! Runs of a schedule (`GET /goscheduler/schedules/{id}/runs`) and an app's crons
//! (`GET /goscheduler/crons/schedules`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures::future::join_all;
use serde::Deserialize;

use super::app_schedules::{parse_size, parse_status, parse_token};
use super::envelope::{ok, ApiError, Envelope, Failure};
use super::schedules::{locate, registered_app};
use super::views::{stored_view, ScheduleView, SchedulesPage};
use super::Gateway;
use crate::command::{Query as ShardQuery, QueryResult, When};
use crate::meta::app::validate_app_id;
use crate::schedule::page;
use crate::schedule::Schedule;
use crate::shard::app_shards;

/// Most crons one listing returns per shard.
const MAX_CRONS_PER_SHARD: usize = 10_000;

#[derive(Debug, Deserialize)]
pub struct RunsParams {
    when: Option<String>,
    size: Option<String>,
    #[serde(rename = "continuationToken")]
    token: Option<String>,
    continuation_token: Option<String>,
}

#[utoipa::path(get, path = "/goscheduler/schedules/{id}/runs", tag = "schedules", description = "Runs of a schedule, newest first.",
    params(("id" = String, Path), ("when" = Option<String>, Query, description = "past, future or all"),
        ("size" = Option<i64>, Query), ("continuationToken" = Option<String>, Query)),
    responses((status = 200, body = Envelope<SchedulesPage>), (status = 404, body = Failure)))]
pub async fn runs(
    State(gw): State<Gateway>,
    Path(raw): Path<String>,
    params: Result<Query<RunsParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params?;
    let when = match p.when.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("all") => When::All,
        Some("past") => When::Past,
        Some("future") => When::Future,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid when {other:?}: use past, future or all"
            )))
        }
    };
    let size = parse_size(p.size.as_deref())?;
    let before = parse_token(p.token.as_deref(), p.continuation_token.as_deref())?;
    let none_found = || ApiError::not_found(format!("No runs found for schedule with id {raw}"));
    let (id, shard) = locate(&gw, &raw)?.ok_or_else(none_found)?;
    let q = ShardQuery::ScheduleRuns {
        id,
        when,
        now: chrono::Utc::now().timestamp(),
        before,
        limit: size + 1,
    };
    let QueryResult::Schedules(mut runs) = gw.router.read(shard, q).await? else {
        return Err(ApiError::new(
            500,
            "internal error: unexpected query result",
        ));
    };
    if runs.is_empty() && before.is_none() {
        return Err(none_found());
    }
    let next = page::cut(&mut runs, size);
    let page = SchedulesPage {
        schedules: runs.iter().map(stored_view).collect(),
        continuation_token: next.map(|c| c.token()).unwrap_or_default(),
        continuation_start_time: None,
    };
    Ok(ok(200, page.schedules.len(), page))
}

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
    let status = p
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(parse_status)
        .transpose()?;
    let app = registered_app(&gw, &app_id).await?;
    let reads = app_shards(&app_id, app.partitions, gw.config.shards)
        .into_iter()
        .map(|shard| {
            let q = ShardQuery::AppCrons {
                app_id: app_id.clone(),
                status,
                limit: MAX_CRONS_PER_SHARD,
            };
            gw.router.read(shard, q)
        });
    let mut crons: Vec<Schedule> = vec![];
    for r in join_all(reads).await {
        match r? {
            QueryResult::Schedules(s) => crons.extend(s),
            _ => {
                return Err(ApiError::new(
                    500,
                    "internal error: unexpected query result",
                ))
            }
        }
    }
    if crons.is_empty() {
        return Err(ApiError::not_found("No cron schedules found"));
    }
    // UUIDv7 ids sort by creation time.
    crons.sort_by_key(|s| s.id);
    let views: Vec<_> = crons.iter().map(stored_view).collect();
    Ok(ok(200, views.len(), views))
}
