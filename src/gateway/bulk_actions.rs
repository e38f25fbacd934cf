//! `POST /goscheduler/apps/{appId}/bulk-action/{reconcile|delete}` starts a bulk job on
//! every matching schedule (not just a first page) and answers at once; `GET
//! /goscheduler/apps/{appId}/bulk-action/jobs/{jobId}` shows its progress. The meta leader's
//! `bulk-jobs` worker does the work (see `workers::bulk_jobs`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::access::Caller;
use super::envelope::{ok, ApiError, Envelope, Failure, StatusBlock};
use super::lookup::registered_app;
use super::params::{parse_range, RangeParams};
use super::Gateway;
use crate::meta::app::validate_app_id;
use crate::meta::bulk::{BulkAction, BulkJob, JobState};
use crate::schedule::time;

/// The reply to starting a bulk action: the wiki's `remarks`, and the job to follow.
#[derive(Debug, Serialize, ToSchema)]
pub struct BulkStarted {
    pub status: StatusBlock,
    pub remarks: String,
    pub data: BulkJob,
}

fn parse_action(s: &str) -> Result<BulkAction, ApiError> {
    match s.to_ascii_lowercase().as_str() {
        "reconcile" => Ok(BulkAction::Reconcile),
        "delete" => Ok(BulkAction::Delete),
        _ => Err(ApiError::bad_request(format!(
            "invalid action type {s:?}: use reconcile or delete"
        ))),
    }
}

#[utoipa::path(post, path = "/goscheduler/apps/{app_id}/bulk-action/{action}", tag = "bulk",
    description = "Starts a background job that deletes or reconciles every schedule of the app in the range with the status.",
    params(("app_id" = String, Path), ("action" = String, Path, description = "reconcile or delete"),
        ("status" = Option<String>, Query), ("start_time" = Option<String>, Query), ("end_time" = Option<String>, Query)),
    responses((status = 200, body = BulkStarted), (status = 400, body = Failure)))]
pub async fn start(
    State(gw): State<Gateway>,
    caller: Caller,
    Path((app_id, action)): Path<(String, String)>,
    params: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.may_touch(&app_id)?;
    let Query(params) = params?;
    let action = parse_action(&action)?;
    validate_app_id(&app_id).map_err(ApiError::bad_request)?;
    registered_app(&gw, &app_id).await?;
    let zone = gw.zone;
    let now = chrono::Utc::now();
    let range = parse_range(&params, zone, now.timestamp())?;
    let now_ms = now.timestamp_millis() as u64;
    let job = BulkJob {
        job_id: Uuid::now_v7(),
        app_id: app_id.clone(),
        action,
        start_time: range.start,
        end_time: range.end,
        status: range.status,
        state: JobState::Running,
        processed: 0,
        cursor: None,
        created_at_ms: now_ms,
        updated_at_ms: now_ms,
    };
    let job = gw.router.start_bulk_job(job).await?;
    let name = match action {
        BulkAction::Reconcile => "reconcile",
        BulkAction::Delete => "delete",
    };
    let status = range
        .status
        .map(|s| json!(s).as_str().unwrap_or_default().to_string());
    let remarks = format!(
        "{name} initiated successfully for app: {app_id}, timeRange: {{StartTime:{} EndTime:{}}} ({zone}), \
         status: {}; follow it at GET /goscheduler/apps/{app_id}/bulk-action/jobs/{}",
        time::format(range.start, zone),
        time::format(range.end, zone),
        status.unwrap_or_else(|| "any".into()),
        job.job_id
    );
    let body = BulkStarted {
        status: StatusBlock::success(200, 0),
        remarks,
        data: job,
    };
    Ok((StatusCode::OK, Json(body)).into_response())
}

#[utoipa::path(get, path = "/goscheduler/apps/{app_id}/bulk-action/jobs/{job_id}", tag = "bulk",
    params(("app_id" = String, Path), ("job_id" = String, Path)),
    responses((status = 200, body = Envelope<BulkJob>), (status = 404, body = Failure)))]
pub async fn progress(
    State(gw): State<Gateway>,
    caller: Caller,
    Path((app_id, job)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.may_touch(&app_id)?;
    let not_found = || ApiError::not_found(format!("no bulk job {job} for app {app_id}"));
    let job_id = Uuid::parse_str(&job).map_err(|_| not_found())?;
    let job = gw
        .router
        .bulk_job(job_id)
        .await?
        .filter(|j| j.app_id == app_id)
        .ok_or_else(not_found)?;
    Ok(ok(200, 1, job))
}
