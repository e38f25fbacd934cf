//! Changing a schedule in place: `PUT /goscheduler/schedules/{id}/updateRecurringSchedule`
//! as upstream GoScheduler (a cron's expression, payload, callback) and `PATCH
//! /goscheduler/schedules/{id}` (a JSON merge patch: the same plus `timezone`, and a
//! one-time schedule's `scheduleTime`). Either is one entry in the schedule's shard, which
//! also plans a changed cron again (see `shard::update`).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;

use super::access::Caller;
use super::envelope::{ok_saying, ApiError, Envelope, Failure};
use super::lookup::{registered_app, touchable_schedule};
use super::params::parse_body;
use super::schedules::{check_callback, check_time, check_window, payload_limit, CallbackRequest};
use super::views::{stored_view, ScheduleData};
use super::Gateway;
use crate::cron::Overlap;
use crate::ids::GroupId;
use crate::schedule::change::{given, ScheduleChange};
use crate::schedule::{validate, Schedule};

/// The body of `updateRecurringSchedule`: any of the fields to change; `appId` and
/// `scheduleId`, if given, must be the schedule's own.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRecurring {
    app_id: Option<String>,
    schedule_id: Option<String>,
    cron_expression: Option<String>,
    payload: Option<String>,
    #[serde(default, deserialize_with = "crate::json_shape::object_or_none")]
    callback: Option<CallbackRequest>,
}

/// A merge patch of a schedule: fields absent stay; `timezone: null` is UTC again.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PatchSchedule {
    app_id: Option<String>,
    schedule_id: Option<String>,
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>)]
    cron_expression: Option<Option<String>>,
    /// IANA zone of a cron's times; null: UTC.
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>)]
    timezone: Option<Option<String>>,
    #[serde(default, deserialize_with = "given")]
    #[schema(value_type = Option<String>)]
    payload: Option<Option<String>>,
    #[serde(default, deserialize_with = "crate::json_shape::given_object")]
    #[schema(value_type = Option<CallbackRequest>)]
    callback: Option<Option<CallbackRequest>>,
    /// A one-time schedule's new time, epoch seconds.
    #[serde(default, deserialize_with = "crate::json_shape::given_whole")]
    #[schema(value_type = Option<i64>)]
    schedule_time: Option<Option<i64>>,
    /// A cron's window (epoch seconds; null: unbounded) and jitter (null: none).
    #[serde(default, deserialize_with = "crate::json_shape::given_whole")]
    #[schema(value_type = Option<i64>)]
    start_time: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::json_shape::given_whole")]
    #[schema(value_type = Option<i64>)]
    end_time: Option<Option<i64>>,
    #[serde(default, deserialize_with = "crate::json_shape::given_whole")]
    #[schema(value_type = Option<u32>)]
    jitter_seconds: Option<Option<u32>>,
    overlap_policy: Option<Overlap>,
}

#[utoipa::path(put, path = "/goscheduler/schedules/{id}/updateRecurringSchedule", tag = "schedules",
    params(("id" = String, Path)), request_body = UpdateRecurring,
    description = "Changes a cron in place (SCHEDULED or PAUSED): any of cronExpression, payload, callback. \
        Its future runs not yet claimed are planned again in the same entry.",
    responses((status = 200, body = Envelope<ScheduleData>),
        (status = 400, description = "appId or scheduleId differ from the schedule's, or nothing to change", body = Failure),
        (status = 404, body = Failure),
        (status = 422, description = "not a recurring schedule, deleted, or a validation error", body = Failure)))]
pub async fn update_recurring(
    State(gw): State<Gateway>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: UpdateRecurring = parse_body(body, gw.config.limits.max_body_bytes)?;
    let (shard, current) = touchable_schedule(&gw, &caller, &raw).await?;
    same_identity(&current, &raw, req.app_id, req.schedule_id)?;
    if !current.is_cron() {
        let message = format!("Schedule with id: {raw} is not a recurring schedule");
        return Err(ApiError::new(422, message));
    }
    let asked = Asked {
        change: ScheduleChange {
            expression: req.cron_expression,
            payload: req.payload,
            ..Default::default()
        },
        callback: req.callback,
    };
    let s = apply(&gw, &caller, shard, &current, asked).await?;
    Ok(ok_saying(
        "Recurring schedule updated successfully",
        ScheduleData {
            schedule: stored_view(&s),
        },
    ))
}

#[utoipa::path(patch, path = "/goscheduler/schedules/{id}", tag = "schedules",
    params(("id" = String, Path)), request_body = PatchSchedule,
    description = "A JSON merge patch of a schedule: a cron's cronExpression, timezone (null: UTC), startTime, \
        endTime, jitterSeconds (null: none), overlapPolicy, payload, callback (replaced whole); a one-time schedule's scheduleTime, payload, callback while it is \
        SCHEDULED and not yet being fired. A changed cron's future runs not yet claimed are planned again.",
    responses((status = 200, body = Envelope<ScheduleData>),
        (status = 400, description = "appId or scheduleId differ from the schedule's, or a required field set to null", body = Failure),
        (status = 404, body = Failure),
        (status = 422, description = "not in a state that can change, or a validation error", body = Failure)))]
pub async fn patch(
    State(gw): State<Gateway>,
    caller: Caller,
    Path(raw): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: PatchSchedule = parse_body(body, gw.config.limits.max_body_bytes)?;
    let (shard, current) = touchable_schedule(&gw, &caller, &raw).await?;
    same_identity(&current, &raw, req.app_id, req.schedule_id)?;
    let mut nulls = Vec::new();
    let asked = Asked {
        change: ScheduleChange {
            expression: required("cronExpression", req.cron_expression, &mut nulls),
            payload: required("payload", req.payload, &mut nulls),
            timezone: req.timezone.map(|z| z.filter(|z| !z.is_empty())),
            schedule_time: required("scheduleTime", req.schedule_time, &mut nulls),
            start_time: req.start_time,
            end_time: req.end_time,
            jitter_seconds: req.jitter_seconds.map(|j| j.filter(|j| *j > 0)),
            overlap_policy: req.overlap_policy,
            callback: None,
        },
        callback: required("callback", req.callback, &mut nulls),
    };
    if !nulls.is_empty() {
        return Err(ApiError::bad_request(nulls.join(",")));
    }
    let s = apply(&gw, &caller, shard, &current, asked).await?;
    Ok(ok_saying(
        "Schedule updated successfully",
        ScheduleData {
            schedule: stored_view(&s),
        },
    ))
}

/// A merge-patch field that may not be removed: its value, if given; null is noted in
/// `nulls`.
fn required<T>(field: &str, v: Option<Option<T>>, nulls: &mut Vec<String>) -> Option<T> {
    if matches!(v, Some(None)) {
        nulls.push(format!("{field} cannot be removed"));
    }
    v.flatten()
}

/// `appId` and `scheduleId` in a body may only repeat the schedule's own (upstream's
/// messages, joined by ",").
fn same_identity(
    s: &Schedule,
    raw: &str,
    app_id: Option<String>,
    schedule_id: Option<String>,
) -> Result<(), ApiError> {
    let mut problems = Vec::new();
    if app_id.is_some_and(|a| a != s.app_id) {
        problems.push("Cannot modify appId for an existing schedule");
    }
    if schedule_id.is_some_and(|id| id != raw && id != s.id.to_string()) {
        problems.push("Cannot modify scheduleId for an existing schedule");
    }
    match problems.is_empty() {
        true => Ok(()),
        false => Err(ApiError::bad_request(problems.join(","))),
    }
}

/// What a request asks to change, before it is checked (the callback as sent).
struct Asked {
    change: ScheduleChange,
    callback: Option<CallbackRequest>,
}

/// Checks what is asked as a create would (422 "validation errors: ..." naming each
/// problem), then changes the schedule through its shard.
async fn apply(
    gw: &Gateway,
    caller: &Caller,
    shard: GroupId,
    current: &Schedule,
    asked: Asked,
) -> Result<Schedule, ApiError> {
    let Asked {
        mut change,
        callback,
    } = asked;
    if change.is_empty() && callback.is_none() {
        return Err(ApiError::bad_request(
            "nothing to change: give cronExpression, timezone, startTime, endTime, jitterSeconds, \
             overlapPolicy, payload, callback or scheduleTime",
        ));
    }
    let app = registered_app(gw, &current.app_id).await?;
    let limits = &gw.config.limits;
    let now = chrono::Utc::now().timestamp();
    let mut errors = Vec::new();
    if let Some(p) = &change.payload {
        errors.extend(validate::payload(Some(p), payload_limit(&app, limits)));
    }
    change.callback = callback.and_then(|cb| check_callback(Some(cb), &gw.guard, &mut errors));
    if let Some(t) = change.schedule_time {
        errors.extend(check_time(t, now, &app, limits));
    }
    // The rule as it would be, checked here for the message (the shard checks it again).
    if let (Some(spec), true) = (&current.cron, change.touches_rule()) {
        let new = change.new_rule(spec);
        errors.extend(check_window(&new, now));
        errors.extend(new.rule().err());
    }
    if !errors.is_empty() {
        let message = format!("validation errors: {}", errors.join(","));
        return Err(ApiError::new(422, message));
    }
    let by = caller.actor(gw);
    Ok(gw
        .router
        .update_schedule(shard, current.id, change, by)
        .await?)
}
