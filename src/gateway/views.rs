//! What the API sends: typed bodies, from which the OpenAPI document is generated. The
//! wiki shows different shapes per endpoint and clients depend on them: create and delete
//! of a one-time schedule use `httpCallback` (with `Ttl`); reads use `callback: {type,
//! details}` with `status`; a cron shows its `cronExpression` and no time.

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::meta::app::App;
use crate::schedule::run::Attempt;
use crate::schedule::{HttpCallback, Schedule, Status};

/// A one-time schedule as create and delete answer it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedSchedule {
    pub schedule_id: Uuid,
    pub payload: String,
    pub app_id: String,
    pub schedule_time: i64,
    #[serde(rename = "Ttl")]
    pub ttl: u32,
    pub partition_id: u32,
    pub schedule_group: i64,
    pub http_callback: HttpCallback,
}

/// `{"type": "http", "details": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Callback {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub details: HttpCallback,
}

/// A one-time schedule or a run of a cron, as reads show it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoredSchedule {
    pub schedule_id: Uuid,
    pub payload: String,
    pub app_id: String,
    pub schedule_time: i64,
    pub partition_id: u32,
    pub schedule_group: i64,
    pub callback: Callback,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// Set on a run of a cron.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_schedule_id: Option<Uuid>,
    /// The callback attempts made, oldest first (absent until the run fires).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<Attempt>,
}

/// A cron schedule.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CronSchedule {
    pub schedule_id: Uuid,
    pub payload: String,
    pub app_id: String,
    pub partition_id: u32,
    pub callback: Callback,
    pub cron_expression: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// No run before this (epoch seconds); an `@every` interval counts from it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_time: Option<i64>,
    /// No run after this (epoch seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    /// Each run fires up to this many seconds after its time (a fixed offset per run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_seconds: Option<u32>,
    #[serde(skip_serializing_if = "crate::cron::Overlap::is_allow")]
    pub overlap_policy: crate::cron::Overlap,
}

/// Any schedule, in the shape its endpoint uses.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ScheduleView {
    Created(CreatedSchedule),
    Stored(StoredSchedule),
    Cron(CronSchedule),
}

fn callback(s: &Schedule) -> Callback {
    Callback {
        kind: "http",
        details: s.callback.clone(),
    }
}

/// A schedule as create and delete answer it.
pub fn created_view(s: &Schedule) -> ScheduleView {
    if s.is_cron() {
        return cron_view(s);
    }
    ScheduleView::Created(CreatedSchedule {
        schedule_id: s.id,
        payload: s.payload.clone(),
        app_id: s.app_id.clone(),
        schedule_time: s.schedule_time,
        ttl: 0,
        partition_id: s.partition,
        schedule_group: s.schedule_group(),
        http_callback: s.callback.clone(),
    })
}

/// A schedule as reads show it.
pub fn stored_view(s: &Schedule) -> ScheduleView {
    if s.is_cron() {
        return cron_view(s);
    }
    ScheduleView::Stored(StoredSchedule {
        schedule_id: s.id,
        payload: s.payload.clone(),
        app_id: s.app_id.clone(),
        schedule_time: s.schedule_time,
        partition_id: s.partition,
        schedule_group: s.schedule_group(),
        callback: callback(s),
        status: s.status,
        error_message: s.error_message.clone(),
        parent_schedule_id: s.parent,
        attempts: s.attempts.clone(),
    })
}

fn cron_view(s: &Schedule) -> ScheduleView {
    let spec = s.cron.clone().unwrap_or_default();
    ScheduleView::Cron(CronSchedule {
        schedule_id: s.id,
        payload: s.payload.clone(),
        app_id: s.app_id.clone(),
        partition_id: s.partition,
        callback: callback(s),
        cron_expression: spec.expression,
        status: s.status,
        timezone: spec.timezone,
        start_time: spec.start_time,
        end_time: spec.end_time,
        jitter_seconds: spec.jitter_seconds,
        overlap_policy: spec.overlap_policy,
    })
}

/// `data` of create, get and delete of a schedule.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScheduleData {
    pub schedule: ScheduleView,
}

/// `data` of paged schedule lists (runs, app schedules).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SchedulesPage {
    pub schedules: Vec<ScheduleView>,
    /// Pass back to get the next page; empty on the last page.
    pub continuation_token: String,
    /// The time of the last item, when there is a next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub continuation_start_time: Option<i64>,
}

/// One item's outcome in a batch create.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchItem {
    /// 201, or the item's error code.
    pub status_code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_message: Option<String>,
    /// True when the item's `idempotencyKey` had created this schedule already.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replayed: Option<bool>,
}

/// `data` of a batch create: one result per item, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchData {
    pub results: Vec<BatchItem>,
}

/// `data` of the app listing.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppsData {
    pub apps: Vec<App>,
    /// Where the next page starts (absent on the last page).
    #[serde(rename = "continuationToken", skip_serializing_if = "Option::is_none")]
    pub continuation_token: Option<String>,
}

/// `data` of activate and deactivate (capital `Active`, as the original).
#[derive(Debug, Serialize, ToSchema)]
pub struct ActiveData {
    #[serde(rename = "appId")]
    pub app_id: String,
    #[serde(rename = "Active")]
    pub active: bool,
}
