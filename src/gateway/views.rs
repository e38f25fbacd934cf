//! How schedules look on the wire. The wiki shows different shapes per endpoint, and
//! clients depend on them: create and delete of a one-time schedule use `httpCallback`
//! (with `Ttl`); reads use `callback: {type, details}` with `status`; a cron shows its
//! `cronExpression` and no time.

use serde_json::{json, Value};

use crate::schedule::Schedule;

/// A schedule as create and delete answer it.
pub fn created_view(s: &Schedule) -> Value {
    if s.is_cron() {
        return cron_view(s);
    }
    json!({
        "scheduleId": s.id,
        "payload": s.payload,
        "appId": s.app_id,
        "scheduleTime": s.schedule_time,
        "Ttl": 0,
        "partitionId": s.partition,
        "scheduleGroup": s.schedule_group(),
        "httpCallback": s.callback,
    })
}

/// A schedule as reads show it: one-time schedules and runs with time and status.
pub fn stored_view(s: &Schedule) -> Value {
    if s.is_cron() {
        return cron_view(s);
    }
    let mut v = json!({
        "scheduleId": s.id,
        "payload": s.payload,
        "appId": s.app_id,
        "scheduleTime": s.schedule_time,
        "partitionId": s.partition,
        "scheduleGroup": s.schedule_group(),
        "callback": { "type": "http", "details": s.callback },
        "status": s.status,
    });
    if let Some(e) = &s.error_message {
        v["errorMessage"] = json!(e);
    }
    if let Some(p) = &s.parent {
        v["parentScheduleId"] = json!(p);
    }
    v
}

/// A cron, as the wiki shows it.
fn cron_view(s: &Schedule) -> Value {
    let mut v = json!({
        "scheduleId": s.id,
        "payload": s.payload,
        "appId": s.app_id,
        "partitionId": s.partition,
        "callback": { "type": "http", "details": s.callback },
        "cronExpression": s.cron.as_ref().map(|c| c.expression.clone()),
        "status": s.status,
    });
    if let Some(tz) = s.cron.as_ref().and_then(|c| c.timezone.clone()) {
        v["timezone"] = json!(tz);
    }
    v
}
