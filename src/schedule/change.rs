//! A change of a stored schedule in place (update / merge patch): what may change, and
//! the fields it changed, each with its value before and after (for the audit log).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{HttpCallback, Schedule};
use crate::cron::{CronSpec, Overlap};

/// What an update asks to change; absent fields stay as they are. (`Some(None)` removes
/// an optional field; it travels as `null`, which `given` reads back as `Some(None)`.)
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
    #[serde(
        default,
        deserialize_with = "given",
        skip_serializing_if = "Option::is_none"
    )]
    pub timezone: Option<Option<String>>,
    /// A one-time schedule's time, epoch seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule_time: Option<i64>,
    /// A cron's window and jitter; `Some(None)` removes them.
    #[serde(
        default,
        deserialize_with = "given",
        skip_serializing_if = "Option::is_none"
    )]
    pub start_time: Option<Option<i64>>,
    #[serde(
        default,
        deserialize_with = "given",
        skip_serializing_if = "Option::is_none"
    )]
    pub end_time: Option<Option<i64>>,
    #[serde(
        default,
        deserialize_with = "given",
        skip_serializing_if = "Option::is_none"
    )]
    pub jitter_seconds: Option<Option<u32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap_policy: Option<Overlap>,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or a value: a merge patch's.
pub fn given<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
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
        self.expression.is_some()
            || self.timezone.is_some()
            || self.start_time.is_some()
            || self.end_time.is_some()
            || self.jitter_seconds.is_some()
            || self.overlap_policy.is_some()
    }

    /// `spec` with the rule this change asks for.
    pub fn new_rule(&self, spec: &CronSpec) -> CronSpec {
        CronSpec {
            expression: self.expression.clone().unwrap_or(spec.expression.clone()),
            timezone: self.timezone.clone().unwrap_or(spec.timezone.clone()),
            start_time: self.start_time.unwrap_or(spec.start_time),
            end_time: self.end_time.unwrap_or(spec.end_time),
            jitter_seconds: self.jitter_seconds.unwrap_or(spec.jitter_seconds),
            overlap_policy: self.overlap_policy.unwrap_or(spec.overlap_policy),
        }
    }

    /// Applies the change to `s`, or says what is wrong (a cron's rule must parse; a cron
    /// has no scheduleTime, a one-time schedule no rule). [`diff`] names what changed.
    pub fn apply_to(&self, s: &mut Schedule) -> Result<(), String> {
        match (&mut s.cron, self.schedule_time) {
            (Some(_), Some(_)) => {
                return Err("scheduleTime cannot be set on a recurring schedule".into())
            }
            (None, _) if self.touches_rule() => {
                return Err(
                    "cronExpression, timezone, startTime, endTime, jitterSeconds and overlapPolicy cannot be set on a one-time schedule".into(),
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
        Ok(())
    }
}

/// The fields a client may change that differ between `before` and `after`.
pub fn diff(before: &Schedule, after: &Schedule) -> Vec<FieldChange> {
    let rule = |s: &Schedule| s.cron.clone().unwrap_or_default();
    let (b, a) = (rule(before), rule(after));
    let fields = [
        ("cronExpression", json!(b.expression), json!(a.expression)),
        ("timezone", json!(b.timezone), json!(a.timezone)),
        ("startTime", json!(b.start_time), json!(a.start_time)),
        ("endTime", json!(b.end_time), json!(a.end_time)),
        (
            "jitterSeconds",
            json!(b.jitter_seconds),
            json!(a.jitter_seconds),
        ),
        (
            "overlapPolicy",
            json!(b.overlap_policy),
            json!(a.overlap_policy),
        ),
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

#[cfg(test)]
mod tests {
    use super::ScheduleChange;

    #[test]
    fn a_removal_survives_the_log() {
        let change = ScheduleChange {
            timezone: Some(None),
            end_time: Some(None),
            jitter_seconds: Some(Some(5)),
            ..Default::default()
        };
        let bytes = serde_json::to_vec(&change).unwrap();
        assert_eq!(
            serde_json::from_slice::<ScheduleChange>(&bytes).unwrap(),
            change
        );
        let none: ScheduleChange = serde_json::from_slice(b"{}").unwrap();
        assert!(none.is_empty());
    }
}
