//! The headers every callback of a run carries, which a schedule may therefore not set.

/// Stable per run: a repeat of the same run (retry, re-claim, reconcile) carries the same key.
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
pub const SCHEDULE_ID: &str = "Schedule-Id";
pub const PARENT_SCHEDULE_ID: &str = "Parent-Schedule-Id";
/// The attempt number, 1 for the run's first call.
pub const ATTEMPT: &str = "Schedule-Attempt";
/// The run's scheduled time, epoch seconds.
pub const SCHEDULE_TIME: &str = "Schedule-Time";

/// Standard Webhooks' headers, set on the calls of an app that signs them.
pub const WEBHOOK_ID: &str = "webhook-id";
pub const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
pub const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// Headers the scheduler sets on calls; a schedule may not set them (the webhook ones
/// neither, even for an app that does not sign yet: a receiver must never see a second,
/// schedule-made signature next to ours).
pub const RESERVED_HEADERS: [&str; 8] = [
    IDEMPOTENCY_KEY,
    SCHEDULE_ID,
    PARENT_SCHEDULE_ID,
    ATTEMPT,
    SCHEDULE_TIME,
    WEBHOOK_ID,
    WEBHOOK_TIMESTAMP,
    WEBHOOK_SIGNATURE,
];

/// Whether `name` is one the scheduler sets (any case).
pub fn is_reserved(name: &str) -> bool {
    RESERVED_HEADERS
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
}
