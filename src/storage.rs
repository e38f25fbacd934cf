//! A full (or failing) disk is an answer, not an outage.
//!
//! When RocksDB cannot write (ENOSPC, an I/O error), the openraft group that tried stops
//! (Fatal): nothing unsynced was acknowledged, so nothing acknowledged is lost. From then on
//! this node answers its healthcheck 503 and every write 503 naming the storage error, so
//! clients and load balancers go to the other nodes, which keep serving. The
//! `storage-watch` worker checks the data dir's free space every second; once there is room
//! again it restarts the node in place (`exec` of the same binary and arguments: the same
//! pid, RocksDB reopened and recovered from its WAL as after a crash) — no supervisor or
//! operator needed. A node whose groups stopped for another reason restarts the same way,
//! at most once a minute.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::command::Groups;
use crate::workers::Round;

/// How often the watch looks.
pub const PERIOD: Duration = Duration::from_secs(1);
/// Free space that counts as "room again", bytes.
const ROOM: u64 = crate::store::DISK_ROOM;
/// Set in the environment of a restarted node: when it restarted (epoch seconds).
const RESTARTED_AT: &str = "GOSCHED_STORAGE_RESTARTED_AT";
/// Least time between two restarts.
const RESTART_EVERY_SECS: u64 = 60;

/// This node's storage as the gateway and the watch see it (cheap to clone).
#[derive(Clone)]
pub struct Storage(Arc<Inner>);

struct Inner {
    node_id: u64,
    data_dir: PathBuf,
    groups: Arc<Groups>,
    /// Whether a group had stopped at the watch's last look (read by every write).
    failed: std::sync::atomic::AtomicBool,
}

impl Storage {
    pub fn new(node_id: u64, data_dir: PathBuf, groups: Arc<Groups>) -> Self {
        Storage(Arc::new(Inner {
            node_id,
            data_dir,
            groups,
            failed: Default::default(),
        }))
    }

    pub fn node_id(&self) -> u64 {
        self.0.node_id
    }

    /// Whether a stopped group was seen at the last look (the watch's, at most a second
    /// ago, or a healthcheck's): one atomic read, for the write path.
    pub fn failed(&self) -> bool {
        self.0.failed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Why this node cannot write, looked at now (and remembered for [`Storage::failed`]).
    pub fn check(&self) -> Option<String> {
        let failure = self.failure();
        let failed = &self.0.failed;
        failed.store(failure.is_some(), std::sync::atomic::Ordering::Relaxed);
        failure
    }

    /// Why this node cannot write, if it cannot: the first stopped group and its error, with
    /// the node's first I/O error when that group only heard of it second-hand.
    pub fn failure(&self) -> Option<String> {
        let stopped = self.0.groups.iter().find_map(|g| g.stopped_reason())?;
        Some(match crate::store::first_io_error() {
            Some(first) if !stopped.contains(first) => {
                format!("{stopped} (first storage error on this node: {first})")
            }
            _ => stopped,
        })
    }

    /// Free bytes on the data dir's file system (for an unprivileged writer).
    pub fn free_bytes(&self) -> Option<u64> {
        crate::store::free_bytes(&self.0.data_dir)
    }
}

/// The `storage-watch` worker: restarts the node once its storage can write again.
pub struct Watch {
    storage: Storage,
}

impl Watch {
    pub fn new(storage: Storage) -> Self {
        Watch { storage }
    }
}

fn now_secs() -> u64 {
    crate::schedule::time::now_ms() / 1000
}

impl Round for Watch {
    async fn round(&mut self) -> anyhow::Result<bool> {
        let free = self.storage.free_bytes();
        crate::metrics::METRICS
            .disk_free_bytes
            .set(free.unwrap_or(0) as i64);
        let Some(why) = self.storage.check() else {
            return Ok(false);
        };
        crate::metrics::METRICS.storage_failed.set(1);
        if free.is_some_and(|f| f < ROOM) {
            anyhow::bail!("storage failed ({why}); waiting for {ROOM} free bytes, {free:?} now");
        }
        let last: u64 = std::env::var(RESTARTED_AT)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if now_secs() < last + RESTART_EVERY_SECS {
            anyhow::bail!(
                "storage failed ({why}); restarted {}s ago, waiting",
                now_secs() - last
            );
        }
        tracing::error!("storage failed ({why}); {free:?} bytes free now: restarting this node");
        restart();
    }
}

/// Replaces this process with a fresh run of the same binary and arguments.
fn restart() -> ! {
    use std::os::unix::process::CommandExt;
    let args: Vec<_> = std::env::args_os().collect();
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from(&args[0]));
    let err = std::process::Command::new(exe)
        .args(&args[1..])
        .env(RESTARTED_AT, now_secs().to_string())
        .exec();
    tracing::error!("restarting failed ({err}); exiting for the supervisor");
    std::process::exit(75)
}
