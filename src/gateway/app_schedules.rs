//! `GET /goscheduler/apps/{appId}/schedules`: an app's schedules in a time range, paged.
//!
//! The app's partitions live on a known set of shards; each is asked (in parallel, each
//! linearizably) for its next `size + 1` schedules after the cursor in (time, id) order,
//! and the merged first `size` form the page. More exist exactly when more than `size`
//! came back, so the token is empty only on the last page.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use futures::future::join_all;
use serde::Deserialize;
use serde_json::json;

use super::envelope::{ok, ApiError, Envelope, Failure};
use super::schedules::registered_app;
use super::views::{stored_view, SchedulesPage};
use super::Gateway;
use crate::command::{Query as ShardQuery, QueryResult};
use crate::meta::app::validate_app_id;
use crate::schedule::page::{self, Cursor};
use crate::schedule::{time, Status};
use crate::shard::app_shards;

pub const DEFAULT_SIZE: i64 = 15;
pub const MAX_SIZE: i64 = 1000;
/// Longest time range a query may cover.
pub const MAX_RANGE_SECS: i64 = 30 * 24 * 3600;
const HOUR: i64 = 3600;

/// Query parameters; the wiki spells the continuation ones in camelCase, the original
/// code in snake_case: both are accepted.
#[derive(Debug, Default, Deserialize)]
pub struct RangeParams {
    pub size: Option<String>,
    pub status: Option<String>,
    pub start_time: Option<String>,
    pub end_time: Option<String>,
    pub continuation_token: Option<String>,
    #[serde(rename = "continuationToken")]
    pub continuation_token_camel: Option<String>,
    pub continuation_start_time: Option<String>,
    #[serde(rename = "continuationStartTime")]
    pub continuation_start_time_camel: Option<String>,
}

/// A validated time range, status filter and page position.
#[derive(Debug, Clone, PartialEq)]
pub struct Range {
    pub start: i64,
    pub end: i64,
    pub status: Option<Status>,
    pub size: usize,
    pub after: Option<Cursor>,
}

pub fn parse_status(s: &str) -> Result<Status, ApiError> {
    serde_json::from_value(json!(s.to_ascii_uppercase())).map_err(|_| {
        ApiError::bad_request(format!(
            "invalid status {s:?}: use SCHEDULED, DELETED, SUCCESS, FAILURE or MISS"
        ))
    })
}

/// The cursor of a continuation token given in either spelling (the first given wins;
/// an empty one is none).
pub fn parse_token(first: Option<&str>, second: Option<&str>) -> Result<Option<Cursor>, ApiError> {
    first
        .or(second)
        .filter(|t| !t.is_empty())
        .map(|t| Cursor::from_token(t).map_err(ApiError::bad_request))
        .transpose()
}

/// A page size: 1 to [`MAX_SIZE`]; absent or 0 means [`DEFAULT_SIZE`].
pub fn parse_size(size: Option<&str>) -> Result<usize, ApiError> {
    let size = match size.filter(|s| !s.is_empty()) {
        None => DEFAULT_SIZE,
        Some(s) => s
            .parse::<i64>()
            .map_err(|_| ApiError::bad_request(format!("Size provided({s}) is not a number")))?,
    };
    if size < 0 {
        return Err(ApiError::bad_request(format!(
            "Size provided({size}) should not be less than 0"
        )));
    }
    if size > MAX_SIZE {
        return Err(ApiError::bad_request(format!(
            "Size provided({size}) should not be more than {MAX_SIZE}"
        )));
    }
    Ok(if size == 0 { DEFAULT_SIZE } else { size } as usize)
}

/// Checks the parameters. Defaults: only a start → one hour from it; only an end → the
/// hour before it; neither → from an hour ago to a day ahead.
pub fn parse_range(p: &RangeParams, zone: chrono_tz::Tz, now: i64) -> Result<Range, ApiError> {
    let size = parse_size(p.size.as_deref())?;
    let status = p
        .status
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(parse_status)
        .transpose()?;
    let parse_time = |s: &Option<String>| {
        s.as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| time::parse(s, zone).map_err(ApiError::bad_request))
            .transpose()
    };
    let (start, end) = match (parse_time(&p.start_time)?, parse_time(&p.end_time)?) {
        (Some(s), Some(e)) => (s, e),
        (Some(s), None) => (s, s + HOUR),
        (None, Some(e)) => (e - HOUR, e),
        (None, None) => (now - HOUR, now + 24 * HOUR),
    };
    if end < start {
        return Err(ApiError::bad_request(
            "end_time cannot be before start_time",
        ));
    }
    if end - start > MAX_RANGE_SECS {
        return Err(ApiError::bad_request(
            "Time range of more than 30 days is not allowed",
        ));
    }
    let after = parse_token(
        p.continuation_token.as_deref(),
        p.continuation_token_camel.as_deref(),
    )?;
    Ok(Range {
        start,
        end,
        status,
        size,
        after,
    })
}

#[utoipa::path(get, path = "/goscheduler/apps/{app_id}/schedules", tag = "schedules",
    description = "An app's schedules in a time range, by (time, id), paged with exact continuation tokens.",
    params(("app_id" = String, Path), ("size" = Option<i64>, Query), ("status" = Option<String>, Query),
        ("start_time" = Option<String>, Query), ("end_time" = Option<String>, Query),
        ("continuationToken" = Option<String>, Query), ("continuationStartTime" = Option<i64>, Query)),
    responses((status = 200, body = Envelope<SchedulesPage>), (status = 400, body = Failure)))]
pub async fn list(
    State(gw): State<Gateway>,
    Path(app_id): Path<String>,
    params: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params?;
    validate_app_id(&app_id).map_err(ApiError::bad_request)?;
    let app = registered_app(&gw, &app_id).await?;
    let zone = gw
        .config
        .zone()
        .map_err(|e| ApiError::new(500, e.to_string()))?;
    let now = chrono::Utc::now().timestamp();
    let range = parse_range(&params, zone, now)?;

    let shards = app_shards(&app_id, app.partitions, gw.config.shards);
    let reads = shards.iter().map(|shard| {
        let q = ShardQuery::AppSchedules {
            app_id: app_id.clone(),
            start: range.start,
            end: range.end,
            after: range.after,
            status: range.status,
            limit: range.size + 1,
        };
        gw.router.read(*shard, q)
    });
    let mut all = vec![];
    for result in join_all(reads).await {
        match result? {
            QueryResult::Schedules(s) => all.extend(s),
            _ => {
                return Err(ApiError::new(
                    500,
                    "internal error: unexpected query result",
                ))
            }
        }
    }
    all.sort_by_key(|s| (s.schedule_time, s.id));
    let next = page::cut(&mut all, range.size);
    let page = SchedulesPage {
        schedules: all.iter().map(stored_view).collect(),
        continuation_token: next.map(|c| c.token()).unwrap_or_default(),
        continuation_start_time: next.map(|c| c.time),
    };
    Ok(ok(200, page.schedules.len(), page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> RangeParams {
        let q: String = pairs.iter().map(|(k, v)| format!("{k}={v}&")).collect();
        serde_urlencoded::from_str(&q).unwrap()
    }

    #[test]
    fn ranges_follow_the_original_rules() {
        let utc = chrono_tz::Tz::UTC;
        let r = parse_range(&params(&[]), utc, 10_000).unwrap();
        assert_eq!(
            (r.start, r.end, r.size, r.status, r.after),
            (6_400, 96_400, 15, None, None)
        );
        let r = parse_range(&params(&[("start_time", "2023-06-28 10:00:00")]), utc, 0).unwrap();
        assert_eq!(r.end - r.start, 3600);
        let r = parse_range(&params(&[("size", "0"), ("status", "success")]), utc, 0).unwrap();
        assert_eq!((r.size, r.status), (15, Some(Status::Success)));

        let err = |pairs: &[(&str, &str)]| parse_range(&params(pairs), utc, 0).unwrap_err().message;
        assert_eq!(
            err(&[("size", "-1")]),
            "Size provided(-1) should not be less than 0"
        );
        assert!(err(&[("size", "x")]).contains("not a number"));
        assert!(err(&[("size", "1001")]).contains("not be more than 1000"));
        assert!(err(&[("status", "ERROR")]).contains("invalid status"));
        assert_eq!(
            err(&[
                ("start_time", "2023-06-28 10:00:00"),
                ("end_time", "2023-08-28 10:00:00")
            ]),
            "Time range of more than 30 days is not allowed"
        );
        assert!(err(&[
            ("start_time", "2023-06-28 10:00:00"),
            ("end_time", "2023-06-27 10:00:00")
        ])
        .contains("cannot be before"));
        assert!(err(&[("end_time", "yesterday")]).contains("invalid time"));
        assert!(err(&[("continuationToken", "abc")]).contains("invalid continuation token"));
    }
}
