//! Schedules: what a client asked to be called back, and when.

pub mod change;
pub mod headers;
pub mod id;
pub mod page;
pub mod run;
pub mod time;
pub mod validate;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cron::CronSpec;

/// Where and how a run calls back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HttpCallback {
    pub url: String,
    pub method: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

/// The life of a schedule (or run), as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Scheduled,
    Deleted,
    Success,
    Failure,
    Miss,
    /// A cron paused by its owner: no runs are materialised until it is resumed.
    Paused,
}

impl Status {
    /// The name the API uses for it.
    pub fn name(self) -> &'static str {
        match self {
            Status::Scheduled => "SCHEDULED",
            Status::Deleted => "DELETED",
            Status::Success => "SUCCESS",
            Status::Failure => "FAILURE",
            Status::Miss => "MISS",
            Status::Paused => "PAUSED",
        }
    }
}

/// A schedule as stored in its shard: a one-time schedule, a cron, or a run of a cron.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub id: Uuid,
    pub app_id: String,
    pub partition: u32,
    pub payload: String,
    /// When to fire, epoch seconds (for a cron: when it was created).
    pub schedule_time: i64,
    /// Set on a cron: its rule. Its runs are materialised ahead as child schedules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<CronSpec>,
    /// Set on a run of a cron: the cron.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Uuid>,
    /// On a cron: runs are materialised up to this time (epoch seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs_until: Option<i64>,
    /// When it is due in the time index, if not at `schedule_time` (a reconciled run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<i64>,
    pub callback: HttpCallback,
    pub status: Status,
    /// Why a run failed or was missed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// The proposer's clock when it was created, epoch milliseconds.
    pub created_at_ms: u64,
    /// While a leader fires it: who, and until when before another leader may.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<run::Claim>,
    /// The HTTP calls made so far (the newest [`run::MAX_ATTEMPTS_KEPT`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<run::Attempt>,
}

impl Schedule {
    pub fn is_cron(&self) -> bool {
        self.cron.is_some()
    }

    /// Its position in the time index while pending.
    pub fn due_time(&self) -> i64 {
        self.due_at.unwrap_or(self.schedule_time)
    }

    /// How many calls were made in all (older ones may have been dropped from `attempts`).
    pub fn attempt_count(&self) -> u32 {
        self.attempts.last().map_or(0, |a| a.attempt)
    }

    /// Bytes it takes in a log entry (its encoding, counted without building it).
    pub fn encoded_len(&self) -> usize {
        crate::store::encoded_len(self)
    }

    /// `floor(scheduleTime / 60) * 60`, as the original API reports it.
    pub fn schedule_group(&self) -> i64 {
        self.schedule_time.div_euclid(60) * 60
    }
}

/// A one-time schedule of app `revamp` due at `time`, for unit tests.
#[cfg(test)]
pub fn one_time_for_test(id: Uuid, time: i64) -> Schedule {
    Schedule {
        id,
        app_id: "revamp".into(),
        partition: 0,
        payload: "{}".into(),
        schedule_time: time,
        cron: None,
        parent: None,
        runs_until: None,
        due_at: None,
        callback: HttpCallback {
            url: "http://127.0.0.1:1/cb".into(),
            method: "POST".into(),
            headers: Default::default(),
        },
        status: Status::Scheduled,
        error_message: None,
        created_at_ms: 1,
        claim: None,
        attempts: vec![],
    }
}

#[cfg(test)]
mod tests {
    use super::Status;

    #[test]
    fn status_names_are_the_api_spelling() {
        for s in [
            Status::Scheduled,
            Status::Deleted,
            Status::Success,
            Status::Failure,
            Status::Miss,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.name());
        }
    }
}
