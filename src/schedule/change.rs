//! A change of a stored schedule in place (update / merge patch): what may change, and
//! the fields it changed, each with its value before and after (for the audit log).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{HttpCallback, Schedule};
use crate::cron::CronSpec;

/// What an update asks to change; absent fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback: Option<HttpCallback>,
    /// A cron's expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// A cron's zone; `Some(None)`: back to UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<Option<String>>,
    /// A one-time schedule's time, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_time: Option<i64>,
}

/// One field an update changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FieldChange {
    pub field: String,
    pub before: Value,
    pub after: Value,
}

impl ScheduleChange {
    pub fn is_empty(&self) -> bool {
        *self == ScheduleChange::default()
    }

    /// Whether it asks for a cron's fields.
    pub fn touches_rule(&self) -> bool {
        self.expression.is_some() || self.timezone.is_some()
    }

    /// `spec` with the expression and zone this change asks for.
    pub fn new_rule(&self, spec: &CronSpec) -> CronSpec {
        CronSpec {
            expression: self.expression.clone().unwrap_or(spec.expression.clone()),
            timezone: self.timezone.clone().unwrap_or(spec.timezone.clone()),
            ..spec.clone()
        }
    }

    /// Applies the change to `s`; answers the fields that changed, or what is wrong
    /// (a cron's rule must parse; a cron has no scheduleTime, a one-time schedule no rule).
    pub fn apply_to(&self, s: &mut Schedule) -> Result<Vec<FieldChange>, String> {
        let before = s.clone();
        match (&mut s.cron, self.schedule_time) {
            (Some(_), Some(_)) => {
                return Err("scheduleTime cannot be set on a recurring schedule".into())
            }
            (None, _) if self.touches_rule() => {
                return Err(
                    "cronExpression and timezone cannot be set on a one-time schedule".into(),
                )
            }
            (Some(spec), None) => {
                let new = self.new_rule(spec);
                new.rule()?;
                *spec = new;
            }
            (None, Some(t)) => {
                s.schedule_time = t;
                s.due_at = None;
            }
            (None, None) => {}
        }
        if let Some(p) = &self.payload {
            s.payload = p.clone();
        }
        if let Some(cb) = &self.callback {
            s.callback = cb.clone();
        }
        Ok(diff(&before, s))
    }
}

/// The fields a client may change that differ between `before` and `after`.
pub fn diff(before: &Schedule, after: &Schedule) -> Vec<FieldChange> {
    let rule = |s: &Schedule| s.cron.clone().unwrap_or_default();
    let (b, a) = (rule(before), rule(after));
    let fields = [
        ("cronExpression", json!(b.expression), json!(a.expression)),
        ("timezone", json!(b.timezone), json!(a.timezone)),
        (
            "scheduleTime",
            json!(before.schedule_time),
            json!(after.schedule_time),
        ),
        ("payload", json!(before.payload), json!(after.payload)),
        ("callback", json!(before.callback), json!(after.callback)),
    ];
    fields
        .into_iter()
        .filter(|(_, b, a)| b != a)
        .map(|(field, before, after)| FieldChange {
            field: field.into(),
            before,
            after,
        })
        .collect()
}
