//! `GET /goscheduler/apps/{appId}/schedules/{scheduleId}/audit-logs`: what happened to a
//! schedule, newest first (see `shard::audit`).

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::access::Caller;
use super::envelope::{ok, ApiError, Envelope, Failure};
use super::params::{locate_schedule, parse_size_or, schedule_not_found};
use super::Gateway;
use crate::meta::app::validate_app_id;
use crate::shard::audit::AuditEntry;

/// Entries answered when `limit` is not given.
const DEFAULT_LIMIT: i64 = 100;

#[derive(Debug, Deserialize)]
pub struct AuditParams {
    limit: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditData {
    pub app_id: String,
    pub schedule_id: String,
    pub audit_logs: Vec<AuditEntry>,
}

#[utoipa::path(get, path = "/goscheduler/apps/{appId}/schedules/{scheduleId}/audit-logs", tag = "schedules",
    description = "A schedule's audit log, newest first: its creation, then every update (with each changed \
        field before and after), pause, resume, trigger, delete and reconcile, with when (atMs), the node \
        whose gateway took it and who asked (with an admin token configured).",
    params(("appId" = String, Path), ("scheduleId" = String, Path),
        ("limit" = Option<i64>, Query, description = "1 to 1000, default 100")),
    responses((status = 200, body = Envelope<AuditData>), (status = 400, body = Failure), (status = 404, body = Failure)))]
pub async fn audit_logs(
    State(gw): State<Gateway>,
    caller: Caller,
    Path((app_id, raw)): Path<(String, String)>,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(p) = params?;
    validate_app_id(&app_id).map_err(ApiError::bad_request)?;
    caller.may_touch(&app_id)?;
    let limit = parse_size_or(p.limit.as_deref(), DEFAULT_LIMIT)?;
    let (id, shard) = locate_schedule(&raw, gw.config.shards)?;
    let entries = gw
        .router
        .audit_log(shard, id, app_id.clone(), limit)
        .await?;
    if entries.is_empty() {
        return Err(schedule_not_found(&raw));
    }
    let data = AuditData {
        app_id,
        schedule_id: raw,
        audit_logs: entries,
    };
    Ok(ok(200, data.audit_logs.len(), data))
}
