//! `GET /goscheduler/apps/{appId}/schedules`: an app's schedules in a time range, paged.
//!
//! The app's partitions live on a known set of shards; each is asked (in parallel, each
//! linearizably) for its next `size + 1` schedules after the cursor in (time, id) order,
//! and the merged first `size` form the page. More exist exactly when more than `size`
//! came back or a shard stopped at its work budget (keys looked at, bytes gathered), so
//! the token is empty only on the last page and no request does unbounded work.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;

use super::access::Caller;
use super::envelope::{ok, ApiError, Envelope, Failure};
use super::lookup::registered_app;
use super::params::{parse_range, RangeParams};
use super::views::{stored_view, SchedulesPage};
use super::Gateway;
use crate::command::AppPage;
use crate::meta::app::validate_app_id;
use crate::schedule::page;
use crate::shard::app_shards;

#[utoipa::path(get, path = "/goscheduler/apps/{app_id}/schedules", tag = "schedules",
    description = "An app's schedules in a time range, by (time, id), paged with exact continuation tokens.",
    params(("app_id" = String, Path), ("size" = Option<i64>, Query), ("status" = Option<String>, Query),
        ("start_time" = Option<String>, Query), ("end_time" = Option<String>, Query),
        ("continuationToken" = Option<String>, Query), ("continuationStartTime" = Option<i64>, Query)),
    responses((status = 200, body = Envelope<SchedulesPage>), (status = 400, body = Failure)))]
pub async fn list(
    State(gw): State<Gateway>,
    caller: Caller,
    Path(app_id): Path<String>,
    params: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.may_touch(&app_id)?;
    let Query(params) = params?;
    validate_app_id(&app_id).map_err(ApiError::bad_request)?;
    let app = registered_app(&gw, &app_id).await?;
    let now = chrono::Utc::now().timestamp();
    let range = parse_range(&params, gw.zone, now)?;
    let shards = app_shards(&app_id, app.partitions, gw.config.shards);
    let wanted = AppPage {
        app_id,
        start: range.start,
        end: range.end,
        after: range.after,
        status: range.status,
        limit: range.size + 1,
    };
    let (mut all, examined_to) = gw.router.app_schedules(&shards, &wanted).await?;
    // A shard that stopped at its work budget ends the page early; the token goes on from
    // where it stopped (a page may then hold fewer than `size`, even none).
    let next = page::cut(&mut all, range.size).or(examined_to);
    let page = SchedulesPage {
        schedules: all.iter().map(stored_view).collect(),
        continuation_token: next.map(|c| c.token()).unwrap_or_default(),
        continuation_start_time: next.map(|c| c.time),
    };
    Ok(ok(200, page.schedules.len(), page))
}
