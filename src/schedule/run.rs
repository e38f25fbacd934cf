//! Firing a run: the claim a shard leader commits before calling back, each attempt's
//! record, and the outcome committed after.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Status;

/// Most attempts kept in a run's record (the newest).
pub const MAX_ATTEMPTS_KEPT: usize = 32;

/// A committed claim: `node` fires the run; if no outcome is committed by `deadline_ms`,
/// the shard's leader fires it again (same Idempotency-Key, next attempt number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub node: u64,
    pub deadline_ms: u64,
    /// The attempt number of this claim's first call: after the calls recorded so far, and
    /// after at least one call of each earlier claim that expired without an outcome.
    #[serde(default)]
    pub first_attempt: u32,
    /// The calls this claim may make (its app's retries + 1); 0 when not recorded.
    #[serde(default)]
    pub attempts: u32,
}

impl Claim {
    /// The fence an outcome of this claim carries.
    pub fn fence(&self) -> Fence {
        Fence::Claim {
            node: self.node,
            deadline_ms: self.deadline_ms,
        }
    }
}

/// Which state of a run an outcome may finish, so a stale outcome (of a claim that expired
/// and was taken again, or of a run re-armed since) changes nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fence {
    /// Written before outcomes were fenced: judged by the rule of then (any claimed run, or a
    /// MISS of any pending run), so old log entries apply as they did.
    #[default]
    Unfenced,
    /// Only a run nobody has claimed (a MISS the leader found before claiming).
    Unclaimed,
    /// Only while the run's current claim is this one.
    Claim { node: u64, deadline_ms: u64 },
}

impl Fence {
    /// The fence of an outcome about a run in the state `claim`.
    pub fn of(claim: Option<Claim>) -> Fence {
        claim.map_or(Fence::Unclaimed, |c| c.fence())
    }
}

/// One HTTP call of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    /// 1 for the first call of the run, counting on across retries, re-claims and reconciles.
    pub attempt: u32,
    /// When the call was sent, epoch milliseconds.
    pub fired_at: u64,
    /// The receiver's HTTP status, if it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// How long the call took, milliseconds.
    pub latency_ms: u32,
    /// Why the call failed (non-2xx, timeout, connection error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.error.is_none()
    }
}

/// How a run ended, as its claimer (or the leader that missed it) proposes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub id: Uuid,
    /// SUCCESS, FAILURE or MISS.
    pub status: Status,
    /// The calls made (none for a MISS).
    pub attempts: Vec<Attempt>,
    /// Why it failed or was missed.
    pub reason: Option<String>,
    /// Which state of the run it may finish.
    #[serde(default)]
    pub fence: Fence,
}

impl Outcome {
    /// This outcome, valid only for the run state `fence` names.
    pub fn fenced(mut self, fence: Fence) -> Outcome {
        self.fence = fence;
        self
    }

    /// The outcome of the calls made: SUCCESS if the last one succeeded.
    pub fn of_attempts(id: Uuid, attempts: Vec<Attempt>) -> Outcome {
        let last_error = attempts.last().and_then(|a| a.error.clone());
        Outcome {
            id,
            status: if last_error.is_none() && !attempts.is_empty() {
                Status::Success
            } else {
                Status::Failure
            },
            reason: last_error.map(|e| format!("{} attempt(s) failed; last: {e}", attempts.len())),
            attempts,
            fence: Fence::Unfenced,
        }
    }

    pub fn miss(id: Uuid, reason: impl Into<String>) -> Outcome {
        Outcome {
            id,
            status: Status::Miss,
            attempts: vec![],
            reason: Some(reason.into()),
            fence: Fence::Unfenced,
        }
    }
}
