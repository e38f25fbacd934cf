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
use crate::shard::audit::{AuditAction, AuditEntry};

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
    let app_events = gw.router.app_events(app_id.clone()).await?;
    let entries = with_app_events(entries, app_events, limit);
    let data = AuditData {
        app_id,
        schedule_id: raw,
        audit_logs: entries,
    };
    Ok(ok(200, data.audit_logs.len(), data))
}

/// A schedule's entries (newest first, at most `limit`) with its app's (de)activations
/// during its life merged in by time: those from its creation (or, when `limit` cut the
/// log, from its oldest entry shown) until its deletion.
fn with_app_events(
    entries: Vec<AuditEntry>,
    app_events: Vec<AuditEntry>,
    limit: usize,
) -> Vec<AuditEntry> {
    let from = entries.last().map_or(0, |e| e.at_ms);
    let until = entries
        .iter()
        .find(|e| e.action == AuditAction::Delete)
        .map_or(u64::MAX, |e| e.at_ms);
    let mut merged: Vec<AuditEntry> = app_events
        .into_iter()
        .filter(|e| (from..=until).contains(&e.at_ms))
        .chain(entries)
        .collect();
    // Stable: at the same millisecond the app's event stays before the schedule's.
    merged.sort_by_key(|e| std::cmp::Reverse(e.at_ms));
    merged.truncate(limit);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at_ms: u64, action: AuditAction) -> AuditEntry {
        AuditEntry {
            app_id: "a".into(),
            at_ms,
            action,
            node: Some(1),
            by: None,
            changes: Vec::new(),
            run_id: None,
        }
    }

    fn actions(entries: &[AuditEntry]) -> Vec<(u64, AuditAction)> {
        entries.iter().map(|e| (e.at_ms, e.action)).collect()
    }

    #[test]
    fn app_events_of_the_schedules_life_are_merged_by_time() {
        use AuditAction::*;
        let log = vec![entry(50, Delete), entry(30, Pause), entry(10, Create)];
        let app = vec![
            entry(60, AppActivate),
            entry(40, AppDeactivate),
            entry(20, AppActivate),
            entry(5, AppDeactivate),
        ];
        let merged = with_app_events(log.clone(), app.clone(), 100);
        assert_eq!(
            actions(&merged),
            [
                (50, Delete),
                (40, AppDeactivate),
                (30, Pause),
                (20, AppActivate),
                (10, Create)
            ]
        );
        // A limit keeps the newest.
        let merged = with_app_events(log, app, 2);
        assert_eq!(actions(&merged), [(50, Delete), (40, AppDeactivate)]);
    }
}
