//! The C heap gives back what RocksDB freed.
//!
//! RocksDB allocates through the C library's malloc (the Rust side uses mimalloc), and
//! glibc keeps what its threads free in per-thread arenas instead of returning it. After
//! every shard's snapshot was built at once (eight scans churning the block cache), each
//! node kept ~400 MB freed but unreturned: RSS 400 → 830 MB with 3 million schedules,
//! 1.4–1.5 GB with 10 million (`scripts/bench-scale.sh`; `malloc_trim` by hand brought it
//! back). The `heap-trim` worker looks every few seconds and hands back the free part
//! once it is larger than [`KEEP_FREE`].

use std::time::Duration;

use crate::workers::Round;

/// How often the worker looks.
pub const PERIOD: Duration = Duration::from_secs(10);
/// Free heap bytes kept for reuse without trimming.
const KEEP_FREE: u64 = 64 << 20;

/// The C heap, bytes: handed out, and free (kept for reuse or already handed back, which
/// glibc's counters do not tell apart).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn counters() -> Option<(u64, u64)> {
    // SAFETY: mallinfo2 only reads the allocator's counters.
    let m = unsafe { libc::mallinfo2() };
    Some(((m.uordblks + m.hblkhd) as u64, m.fordblks as u64))
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn counters() -> Option<(u64, u64)> {
    None
}

/// The C heap for `/metrics`: `c_heap_in_use` and `c_heap_free`, bytes.
pub fn usage() -> Vec<(&'static str, u64)> {
    counters().map_or_else(Vec::new, |(in_use, free)| {
        vec![("c_heap_in_use", in_use), ("c_heap_free", free)]
    })
}

/// Returns the C heap's free memory to the system (every arena's, not only the top).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim takes the arenas' locks itself; it only releases free pages.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}

/// The `heap-trim` worker: trims whenever the free part is larger than [`KEEP_FREE`]
/// (glibc still counts trimmed pages as free, and pages reused then freed again do not
/// show as growth, so only a trim tells what it gives back; one finding little to return
/// takes a few milliseconds, off the async threads).
pub struct Trim;

impl Round for Trim {
    async fn round(&mut self) -> anyhow::Result<bool> {
        let free = counters().map_or(0, |(_, free)| free);
        if free <= KEEP_FREE {
            return Ok(false);
        }
        let took = tokio::task::spawn_blocking(|| {
            let started = std::time::Instant::now();
            trim();
            started.elapsed()
        })
        .await?;
        tracing::debug!("C heap: trimmed with {} MiB free in {took:?}", free >> 20);
        Ok(true)
    }
}
