//! An app's callback policy: how long one call may take, how many retries, how long to
//! wait between them, and so how long a claim must last.

use std::time::Duration;

use crate::meta::app::AppConfiguration;

/// The first retry waits up to this long; each further one doubles it.
const BACKOFF_BASE_MS: u64 = 200;
/// No wait between retries exceeds this.
const BACKOFF_CAP_MS: u64 = 10_000;

pub fn timeout(cfg: &AppConfiguration) -> Duration {
    Duration::from_millis(cfg.http_timeout as u64)
}

/// The longest wait before retry `n` (1-based): exponential, capped.
fn backoff_ceiling_ms(n: u32) -> u64 {
    BACKOFF_BASE_MS
        .saturating_mul(1 << n.saturating_sub(1).min(20))
        .min(BACKOFF_CAP_MS)
}

/// The wait before retry `n`: "equal jitter", half fixed and half random, so retries of
/// many runs spread out but never come back at once.
pub fn backoff(n: u32) -> Duration {
    let ceiling = backoff_ceiling_ms(n);
    Duration::from_millis(ceiling / 2 + fastrand::u64(0..=ceiling / 2))
}

/// The most time all attempts of one run may take under `cfg` (calls and waits).
pub fn attempts_budget_ms(cfg: &AppConfiguration) -> u64 {
    let calls = (cfg.http_retries as u64 + 1) * cfg.http_timeout as u64;
    let waits: u64 = (1..=cfg.http_retries).map(backoff_ceiling_ms).sum();
    calls + waits
}

/// Whether an attempt starting at `now_ms` may still be made under a claim that ends at
/// `deadline_ms`: only if it cannot outlast the claim (timed out at `timeout_ms`), since
/// after the deadline the run may be claimed and sent again by another node.
pub fn may_attempt(now_ms: u64, timeout_ms: u64, deadline_ms: u64) -> bool {
    now_ms.saturating_add(timeout_ms) < deadline_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_within_its_ceiling_and_the_budget_covers_every_attempt() {
        for n in 1..8 {
            let ceiling = backoff_ceiling_ms(n);
            assert_eq!(ceiling, (200u64 << (n - 1)).min(10_000));
            for _ in 0..50 {
                let b = backoff(n).as_millis() as u64;
                assert!(b >= ceiling / 2 && b <= ceiling, "{b} vs {ceiling}");
            }
        }
        let cfg = AppConfiguration {
            http_retries: 2,
            http_timeout: 1000,
            ..AppConfiguration::default()
        };
        assert_eq!(attempts_budget_ms(&cfg), 3 * 1000 + 200 + 400);
    }

    #[test]
    fn no_attempt_may_outlast_its_claim() {
        assert!(may_attempt(1_000, 5_000, 10_000));
        assert!(!may_attempt(5_000, 5_000, 10_000));
        assert!(!may_attempt(12_000, 1_000, 10_000));
        assert!(!may_attempt(u64::MAX, 1, u64::MAX));
    }
}
