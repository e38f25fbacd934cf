//! `GET /goscheduler/schedules/{id}/runs`: the runs of a schedule, paged — future ones (due
//! after the current second) soonest first, past (due by now) and all ones latest first.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::access::Caller;
use super::envelope::{ok, ApiError, Envelope, Failure};
use super::params::{locate, parse_size, parse_token};
use super::views::{stored_view, SchedulesPage};
use super::Gateway;
use crate::command::{ShardQuery, When};
use crate::schedule::page;

#[derive(Debug, Deserialize)]
pub struct RunsParams {
    when: Option<String>,
    size: Option<String>,
    #[serde(rename = "continuationToken")]
    token: Option<String>,
    continuation_token: Option<String>,
}

#[utoipa::path(get, path = "/goscheduler/schedules/{id}/runs", tag = "schedules", description = "Runs of a schedule: future ones (due after the current second) soonest first (size=1 is the next run), past ones (due by now: a run of the current second may have fired) and all latest first; the continuation token goes on in the same order.",
    params(("id" = String, Path), ("when" = Option<String>, Query, description = "past, future or all"),
        ("size" = Option<i64>, Query), ("continuationToken" = Option<String>, Query)),
    responses((status = 200, body = Envelope<SchedulesPage>), (status = 404, body = Failure)))]
pub async fn runs(
    State(gw): State<Gateway>,
    caller: Caller,
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
    let (id, shard) = locate(&raw, gw.config.shards)?.ok_or_else(none_found)?;
    caller.may_touch_schedule(&gw, shard, id).await?;
    let q = ShardQuery::ScheduleRuns {
        id,
        when,
        now: chrono::Utc::now().timestamp(),
        before,
        limit: size + 1,
    };
    let (mut runs, examined_to) = gw.router.shard_page(shard, q).await?;
    if runs.is_empty() && before.is_none() {
        return Err(none_found());
    }
    // A page of runs with large payloads ends at the shard's byte budget; the token goes on.
    let next = page::cut(&mut runs, size).or(examined_to);
    let page = SchedulesPage {
        schedules: runs.iter().map(stored_view).collect(),
        continuation_token: next.map(|c| c.token()).unwrap_or_default(),
        continuation_start_time: None,
    };
    Ok(ok(200, page.schedules.len(), page))
}
