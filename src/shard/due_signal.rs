//! How applying tells a shard's timer about runs it has not seen: the earliest due time
//! written since the timer last looked, and a wake-up when that is now or very soon (a
//! schedule created for the current second still fires on it).

use std::sync::atomic::{AtomicI64, Ordering};

use tokio::sync::Notify;

#[derive(Debug)]
pub struct DueSignal {
    earliest: AtomicI64,
    wake: Notify,
}

impl Default for DueSignal {
    fn default() -> Self {
        DueSignal {
            earliest: AtomicI64::new(i64::MAX),
            wake: Notify::new(),
        }
    }
}

impl DueSignal {
    /// Records that a run due at `due` (epoch seconds) was written; wakes the timer if it
    /// is due by `now + 1`.
    pub fn written(&self, due: i64, now: i64) {
        self.earliest.fetch_min(due, Ordering::AcqRel);
        if due <= now + 1 {
            self.wake.notify_one();
        }
    }

    /// The earliest due time written since the last call, if any.
    pub fn take(&self) -> Option<i64> {
        let t = self.earliest.swap(i64::MAX, Ordering::AcqRel);
        (t != i64::MAX).then_some(t)
    }

    /// Waits for a wake-up (one given while nobody waited is kept for the next wait).
    pub async fn woken(&self) {
        self.wake.notified().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_earliest_until_taken() {
        let s = DueSignal::default();
        assert_eq!(s.take(), None);
        s.written(50, 0);
        s.written(20, 0);
        s.written(30, 0);
        assert_eq!(s.take(), Some(20));
        assert_eq!(s.take(), None);
    }
}
