//! Fault injection for tests of the snapshot path, off unless the environment asks:
//! `GOSCHED_FAULT_SNAPSHOT_RECEIVE=cut,flip` damages the first received snapshot streams in
//! turn (`cut`: the stream ends cleanly halfway, as when a sender's read fails; `flip`: one
//! byte in the middle is inverted, as by a bad link or disk; `twice`: the stream, whole, is
//! delivered a second time once installed, as a sender's retry), then none.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

const VAR: &str = "GOSCHED_FAULT_SNAPSHOT_RECEIVE";

/// What happens to one received snapshot stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamFault {
    Cut,
    Flip,
    Twice,
}

fn planned() -> &'static [StreamFault] {
    static PLAN: OnceLock<Vec<StreamFault>> = OnceLock::new();
    PLAN.get_or_init(|| {
        std::env::var(VAR)
            .unwrap_or_default()
            .split(',')
            .filter_map(|f| match f.trim() {
                "cut" => Some(StreamFault::Cut),
                "flip" => Some(StreamFault::Flip),
                "twice" => Some(StreamFault::Twice),
                _ => None,
            })
            .collect()
    })
}

/// The fault to apply to the next received stream, if any is still planned.
pub fn next_stream() -> Option<StreamFault> {
    static USED: AtomicUsize = AtomicUsize::new(0);
    let plan = planned();
    if plan.is_empty() {
        return None;
    }
    let n = USED.fetch_add(1, Ordering::Relaxed);
    let fault = plan.get(n).copied();
    if let Some(f) = fault {
        tracing::warn!("test fault: damaging received snapshot stream {n} ({f:?})");
    }
    fault
}
