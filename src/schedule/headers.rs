//! The headers every callback of a run carries, which a schedule may therefore not set.

/// Stable per run: a repeat of the same run (retry, re-claim, reconcile) carries the same key.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
pub const SCHEDULE_ID: &str = "Schedule-Id";
pub const PARENT_SCHEDULE_ID: &str = "Parent-Schedule-Id";
/// The attempt number, 1 for the run's first call.
pub const ATTEMPT: &str = "Schedule-Attempt";
/// The run's scheduled time, epoch seconds.
pub const SCHEDULE_TIME: &str = "Schedule-Time";

/// Headers the scheduler sets on every call; a schedule may not set them.
pub const RESERVED_HEADERS: [&str; 5] = [
    IDEMPOTENCY_KEY,
    SCHEDULE_ID,
    PARENT_SCHEDULE_ID,
    ATTEMPT,
    SCHEDULE_TIME,
];
