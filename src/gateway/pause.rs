//! What a cron's owner does with it between create and delete: `PUT
//! /goscheduler/schedules/{id}/pause` and `/resume` (POST accepted too), as in GoScheduler's
//! fork — pausing removes the cron's future runs that are not yet claimed (a claimed run
//! finishes as it was) and stops its refills; resuming plans its runs from now on (runs
//! missed while paused are not made up) — and `POST …/trigger`: one extra run due now.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::Deserialize;

use super::access::Caller;
use super::envelope::{ok_saying, ApiError, Envelope, Failure};
use super::lookup::{existing_app, touchable_schedule};
use super::params::locate_schedule;
use super::views::{stored_view, ScheduleData};
use super::Gateway;
use crate::schedule::Status;

#[utoipa::path(put, path = "/goscheduler/schedules/{id}/pause", tag = "schedules", params(("id" = String, Path)),
    description = "Pauses a cron: status PAUSED, its unclaimed future runs removed. Also POST.",
    responses((status = 200, body = Envelope<ScheduleData>), (status = 404, body = Failure),
        (status = 422, description = "not a recurring schedule, or not SCHEDULED", body = Failure)))]
pub async fn pause(
    State(gw): State<Gateway>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    set_paused(gw, caller, raw, true, false).await
}

/// Most seconds a resume catches up, whatever the app's misfire window.
const MAX_CATCH_UP_SECS: i64 = 3600;

#[derive(Debug, Deserialize)]
pub struct ResumeParams {
    #[serde(rename = "catchUp")]
    catch_up: Option<String>,
}

#[utoipa::path(put, path = "/goscheduler/schedules/{id}/resume", tag = "schedules",
    description = "Resumes a paused cron: SCHEDULED, its runs planned from now on; with catchUp=true, \
        the runs it missed while paused within the app's misfire window (at most the last hour) fire \
        at once, each once. Also POST.",
    params(("id" = String, Path), ("catchUp" = Option<bool>, Query, description = "fire the runs missed while paused")),
    responses((status = 200, body = Envelope<ScheduleData>), (status = 404, body = Failure),
        (status = 422, description = "not a recurring schedule, or not PAUSED", body = Failure)))]
pub async fn resume(
    State(gw): State<Gateway>,
    caller: Caller,
    Path(raw): Path<String>,
    params: Result<Query<ResumeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params?;
    let catch_up = match p.catch_up.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            let why = format!("catchUp must be true or false, not {other:?}");
            return Err(ApiError::bad_request(why));
        }
    };
    set_paused(gw, caller, raw, false, catch_up).await
}

async fn set_paused(
    gw: Gateway,
    caller: Caller,
    raw: String,
    pause: bool,
    catch_up: bool,
) -> Result<Response, ApiError> {
    let (shard, current) = touchable_schedule(&gw, &caller, &raw).await?;
    let (target, already, done) = if pause {
        let done = "Schedule paused successfully";
        (Status::Paused, "Schedule already paused", done)
    } else {
        let done = "Schedule resumed successfully";
        (Status::Scheduled, "Schedule already resumed", done)
    };
    let view = |s| ScheduleData {
        schedule: stored_view(s),
    };
    if current.is_cron() && current.status == target {
        return Ok(ok_saying(already, view(&current)));
    }
    let by = caller.actor(&gw);
    let catch_up_from = match catch_up {
        true => {
            let app = existing_app(&gw, &current.app_id).await?;
            let window = i64::from(app.configuration.misfire_window).min(MAX_CATCH_UP_SECS);
            Some((by.at_ms / 1000) as i64 - window)
        }
        false => None,
    };
    let s = gw
        .router
        .set_paused(shard, current.id, pause, catch_up_from, by)
        .await?;
    Ok(ok_saying(done, view(&s)))
}

#[utoipa::path(post, path = "/goscheduler/schedules/{id}/trigger", tag = "schedules", params(("id" = String, Path)),
    description = "One extra run of a cron (SCHEDULED or PAUSED), due now, with its own id and parentScheduleId; the cron's plan is untouched.",
    responses((status = 200, description = "the new run", body = Envelope<ScheduleData>), (status = 404, body = Failure),
        (status = 422, description = "not a recurring schedule, or deleted", body = Failure)))]
pub async fn trigger(
    State(gw): State<Gateway>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let (id, shard) = locate_schedule(&raw, gw.config.shards)?;
    caller.may_touch_schedule(&gw, shard, id).await?;
    let run = gw.router.trigger_run(shard, id, caller.actor(&gw)).await?;
    let data = ScheduleData {
        schedule: stored_view(&run),
    };
    Ok(ok_saying("Schedule triggered successfully", data))
}
