//! Request parsing shared by the handlers: JSON bodies, page sizes, statuses,
//! continuation tokens, time ranges and schedule ids. Each failure names the problem.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::envelope::ApiError;
use crate::ids::GroupId;
use crate::schedule::page::Cursor;
use crate::schedule::{id, time, Status};

/// Parses a JSON body of at most `limit` bytes (the limit the route's body layer
/// enforces), naming what is wrong with it: 413 with the limit when it is too large. Field
/// names match in any casing (`field_case`).
pub fn parse_body<T: serde::de::DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    limit: usize,
) -> Result<T, ApiError> {
    parse_object(&object_body(body, limit)?)
}

/// A body of at most `limit` bytes that starts as a JSON object (413 with the limit when it
/// is too large; 400 when empty or not an object).
pub fn object_body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, ApiError> {
    let body = match body {
        Ok(body) => body,
        Err(r) if r.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => {
            return Err(ApiError::new(
                413,
                format!("request body exceeds the limit of {limit} bytes"),
            ))
        }
        Err(r) => return Err(r.into()),
    };
    if body.is_empty() {
        return Err(ApiError::unparsable("empty body, expected a JSON object"));
    }
    // serde would read a struct from an array of its fields in order.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::unparsable("expected a JSON object"));
    }
    Ok(body)
}

/// Parses an [`object_body`], its field names in any casing (`field_case`).
pub fn parse_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if super::field_case::needs_recasing(body) {
        let mut value: serde_json::Value =
            serde_json::from_slice(body).map_err(ApiError::unparsable)?;
        super::field_case::recase(&mut value);
        return serde_json::from_value(value).map_err(ApiError::unparsable);
    }
    serde_json::from_slice(body).map_err(ApiError::unparsable)
}

/// The error of a schedule id that names nothing, in the original's words.
pub fn schedule_not_found(raw: &str) -> ApiError {
    ApiError::not_found(format!("Schedule with id: {raw} not found"))
}

/// Parses a schedule id and finds its shard: 400 for a malformed id, 404 (the original's
/// message) for one no shard holds.
pub fn locate_schedule(raw: &str, shards: u32) -> Result<(Uuid, GroupId), ApiError> {
    locate(raw, shards)?.ok_or_else(|| schedule_not_found(raw))
}

/// Parses a schedule id and finds its shard; `None` for a well-formed id no shard holds.
pub fn locate(raw: &str, shards: u32) -> Result<Option<(Uuid, GroupId)>, ApiError> {
    let id = Uuid::parse_str(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid schedule id {raw:?}: {e}")))?;
    Ok(id::shard_of_id(&id, shards).map(|shard| (id, shard)))
}

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
            "invalid status {s:?}: use SCHEDULED, PAUSED, DELETED, SUCCESS, FAILURE or MISS"
        ))
    })
}

/// An optional status filter: absent or empty means any status.
pub fn parse_status_filter(s: Option<&str>) -> Result<Option<Status>, ApiError> {
    s.filter(|s| !s.is_empty()).map(parse_status).transpose()
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
    parse_size_or(size, DEFAULT_SIZE)
}

/// A page size: 1 to [`MAX_SIZE`]; absent or 0 means `default`.
pub fn parse_size_or(size: Option<&str>, default: i64) -> Result<usize, ApiError> {
    let size = match size.filter(|s| !s.is_empty()) {
        None => default,
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
    Ok(if size == 0 { default } else { size } as usize)
}

/// Checks the parameters. Defaults: only a start → one hour from it; only an end → the
/// hour before it; neither → from an hour ago to a day ahead.
pub fn parse_range(p: &RangeParams, zone: chrono_tz::Tz, now: i64) -> Result<Range, ApiError> {
    let size = parse_size(p.size.as_deref())?;
    let status = parse_status_filter(p.status.as_deref())?;
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
    // The page's position is in the token; the time a page answered beside it is only
    // checked, so a mistyped one is named instead of ignored.
    let given_time = p.continuation_start_time.as_deref();
    let given_time = given_time.or(p.continuation_start_time_camel.as_deref());
    if let Some(t) = given_time.filter(|t| !t.is_empty() && t.parse::<i64>().is_err()) {
        return Err(ApiError::bad_request(format!(
            "continuationStartTime {t:?} is not epoch seconds"
        )));
    }
    Ok(Range {
        start,
        end,
        status,
        size,
        after,
    })
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
