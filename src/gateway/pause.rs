//! What a cron's owner does with it between create and delete: `PUT
//! /goscheduler/schedules/{id}/pause` and `/resume` (POST accepted too), as in GoScheduler's
//! fork — pausing removes the cron's future runs that are not yet claimed (a claimed run
//! finishes as it was) and stops its refills; resuming plans its runs from now on (runs
//! missed while paused are not made up) — and `POST …/trigger`: one extra run due now.

use axum::extract::{Path, State};
use axum::response::Response;

use super::access::Caller;
use super::envelope::{ok_saying, ApiError, Envelope, Failure};
use super::params::{locate_schedule, schedule_not_found};
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
    set_paused(gw, caller, raw, true).await
}

#[utoipa::path(put, path = "/goscheduler/schedules/{id}/resume", tag = "schedules", params(("id" = String, Path)),
    description = "Resumes a paused cron: SCHEDULED, its runs planned from now on. Also POST.",
    responses((status = 200, body = Envelope<ScheduleData>), (status = 404, body = Failure),
        (status = 422, description = "not a recurring schedule, or not PAUSED", body = Failure)))]
pub async fn resume(
    State(gw): State<Gateway>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    set_paused(gw, caller, raw, false).await
}

async fn set_paused(
    gw: Gateway,
    caller: Caller,
    raw: String,
    pause: bool,
) -> Result<Response, ApiError> {
    let (id, shard) = locate_schedule(&raw, gw.config.shards)?;
    let current = gw.router.schedule(shard, id).await?;
    let current = current.ok_or_else(|| schedule_not_found(&raw))?;
    caller.may_touch(&current.app_id)?;
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
    let s = gw
        .router
        .set_paused(shard, id, pause, caller.actor(&gw))
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
