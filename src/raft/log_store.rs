//! One group's Raft log, vote and committed id in the node's shared RocksDB.

use std::fmt::Debug;
use std::io;
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, Mutex};

use openraft::entry::RaftEntry;
use openraft::storage::{IOFlushed, RaftLogStorage};
use openraft::{LogState, OptionalSend, RaftLogReader};
use rocksdb::{Direction, IteratorMode, WriteBatch, DB};

use super::recent::RecentEntries;
use super::types::{Entry, GroupId, LogId, LogTypes, TypeConfig, Vote};
use super::wal_sync::{Waiter, WalSync};
use crate::store::{decode, encode, io_err, keys, CF_LOG, CF_RAFT};

/// Most bytes of entries one replication read returns (one entry always).
const REPLICATION_READ_BYTES: usize = 4 << 20;
/// Encoded bytes of a group's newest entries kept in memory for apply and replication
/// (about 50 entries of 100 creates each; entries are applied within milliseconds).
const RECENT_ENTRIES_BYTES: usize = 2 << 20;
const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "purged";
/// The committed id is written at most this often per group: a write per commit cost a
/// RocksDB write per Raft round; an older committed id only means a restarted node
/// re-applies a few more entries once its leader tells it the commit index.
const SAVE_COMMITTED_EVERY: std::time::Duration = std::time::Duration::from_millis(200);

/// The log store of one group. Cheap to clone: all clones share the DB, the WAL syncer
/// and the newest entries.
pub struct LogStore<L: LogTypes> {
    db: Arc<DB>,
    group: GroupId,
    wal: WalSync,
    recent: Arc<Mutex<RecentEntries<Entry<L>>>>,
    /// When this handle last wrote the committed id.
    committed_saved_at: Option<std::time::Instant>,
}

impl<L: LogTypes> Clone for LogStore<L> {
    fn clone(&self) -> Self {
        LogStore {
            db: self.db.clone(),
            group: self.group,
            wal: self.wal.clone(),
            recent: self.recent.clone(),
            committed_saved_at: self.committed_saved_at,
        }
    }
}

impl<L: LogTypes> LogStore<L> {
    pub fn new(db: Arc<DB>, group: GroupId, wal: WalSync) -> Self {
        LogStore {
            db,
            group,
            wal,
            recent: Arc::new(Mutex::new(RecentEntries::new(RECENT_ENTRIES_BYTES))),
            committed_saved_at: None,
        }
    }

    fn recent(&self) -> std::sync::MutexGuard<'_, RecentEntries<Entry<L>>> {
        // The lock guards no invariant a panic elsewhere could break halfway.
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn cf_log(&self) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(CF_LOG).expect("log column family")
    }

    fn cf_raft(&self) -> &rocksdb::ColumnFamily {
        self.db.cf_handle(CF_RAFT).expect("raft column family")
    }

    fn get_state<T: serde::de::DeserializeOwned>(&self, name: &str) -> io::Result<Option<T>> {
        let raw = self
            .db
            .get_cf(self.cf_raft(), keys::named_key(self.group, name))
            .map_err(io_err)?;
        raw.map(|b| decode(&b)).transpose()
    }

    fn put_state<T: serde::Serialize>(&self, name: &str, value: &T) -> io::Result<()> {
        self.db
            .put_cf(
                self.cf_raft(),
                keys::named_key(self.group, name),
                encode(value)?,
            )
            .map_err(io_err)
    }

    /// The last entry of this group's log, if any.
    fn last_entry(&self) -> io::Result<Option<Entry<L>>> {
        let end = keys::log_key(self.group, u64::MAX);
        let mut iter = self
            .db
            .iterator_cf(self.cf_log(), IteratorMode::From(&end, Direction::Reverse));
        match iter.next() {
            Some(item) => {
                let (k, v) = item.map_err(io_err)?;
                if k.starts_with(&self.group.prefix()) {
                    Ok(Some(decode(&v)?))
                } else {
                    Ok(None)
                }
            }
            None => Ok(None),
        }
    }

    /// Deletes log entries with index in `[from, to)`.
    fn delete_logs(&self, from: u64, to: u64) -> io::Result<()> {
        let mut recent = self.recent();
        if from == 0 {
            recent.purge_to(to.saturating_sub(1));
        } else {
            recent.truncate_from(from);
        }
        self.db
            .delete_range_cf(
                self.cf_log(),
                keys::log_key(self.group, from),
                keys::log_key(self.group, to),
            )
            .map_err(io_err)
    }
}

impl<L: LogTypes> LogStore<L> {
    /// The entries in `range`, in order, stopping early once `max_bytes` of them are read
    /// (at least one): the newest from memory, older ones from RocksDB.
    fn read_entries(
        &self,
        range: impl RangeBounds<u64>,
        max_bytes: usize,
    ) -> Result<Vec<Entry<L>>, io::Error> {
        let start = match range.start_bound() {
            Bound::Included(x) => *x,
            Bound::Excluded(x) => *x + 1,
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(x) => Some(*x + 1),
            Bound::Excluded(x) => Some(*x),
            Bound::Unbounded => None,
        };
        if let Some(kept) = self.recent().read(start, end, max_bytes) {
            return Ok(kept);
        }
        let start_key = keys::log_key(self.group, start);
        let (mut out, mut bytes) = (Vec::new(), 0);
        let iter = self.db.iterator_cf(
            self.cf_log(),
            IteratorMode::From(&start_key, Direction::Forward),
        );
        for item in iter {
            let (k, v) = item.map_err(io_err)?;
            if !k.starts_with(&self.group.prefix()) || !range.contains(&keys::log_index(&k)) {
                break;
            }
            out.push(decode(&v)?);
            bytes += v.len();
            if bytes >= max_bytes {
                break;
            }
        }
        Ok(out)
    }
}

impl<L: LogTypes> RaftLogReader<TypeConfig<L>> for LogStore<L> {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<L>>, io::Error> {
        self.read_entries(range, usize::MAX)
    }

    /// Replication's reads: entries from `start` until [`REPLICATION_READ_BYTES`] are read
    /// (at least one). openraft asks for up to 300 entries at a time; at up to
    /// `limits.max_entry_bytes` each, that was hundreds of MiB read and decoded per message
    /// to a lagging follower, most of it then cut away by the transport — both cores of a
    /// node spent on it while the follower timed out.
    async fn limited_get_log_entries(
        &mut self,
        start: u64,
        end: u64,
    ) -> Result<Vec<Entry<L>>, io::Error> {
        self.read_entries(start..end, REPLICATION_READ_BYTES)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<L>>, io::Error> {
        self.get_state(VOTE)
    }
}

impl<L: LogTypes> RaftLogStorage<TypeConfig<L>> for LogStore<L> {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig<L>>, io::Error> {
        let last_purged_log_id: Option<LogId<L>> = self.get_state(PURGED)?;
        let last_log_id = match self.last_entry()? {
            Some(e) => Some(e.log_id()),
            None => last_purged_log_id,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<L>) -> Result<(), io::Error> {
        self.put_state(VOTE, vote)?;
        self.wal.sync().await
    }

    async fn save_committed(&mut self, committed: Option<LogId<L>>) -> Result<(), io::Error> {
        // Not synced, and not every time: a lost or older committed id only means
        // re-applying from the last applied one.
        let now = std::time::Instant::now();
        if self
            .committed_saved_at
            .is_some_and(|at| now.duration_since(at) < SAVE_COMMITTED_EVERY)
        {
            return Ok(());
        }
        self.committed_saved_at = Some(now);
        self.put_state(COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<L>>, io::Error> {
        Ok(self.get_state::<Option<LogId<L>>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: IOFlushed<TypeConfig<L>>,
    ) -> Result<(), io::Error>
    where
        I: IntoIterator<Item = Entry<L>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = WriteBatch::default();
        let mut appended = Vec::new();
        for entry in entries {
            let value = encode(&entry)?;
            batch.put_cf(
                self.cf_log(),
                keys::log_key(self.group, entry.index()),
                &value,
            );
            appended.push((entry, value.len()));
        }
        // Written now (readable on return), durable when the syncer calls back.
        self.db.write(batch).map_err(io_err)?;
        let mut recent = self.recent();
        for (entry, bytes) in appended {
            recent.push(entry.index(), entry, bytes);
        }
        drop(recent);
        self.wal.after_sync(Waiter::Append(Box::new(move |res| {
            callback.io_completed(res)
        })));
        Ok(())
    }

    async fn truncate_after(&mut self, last_log_id: Option<LogId<L>>) -> Result<(), io::Error> {
        let from = last_log_id.map(|l| l.index() + 1).unwrap_or(0);
        self.delete_logs(from, u64::MAX)
    }

    async fn purge(&mut self, log_id: LogId<L>) -> Result<(), io::Error> {
        // The state machine's writes are not synced one by one; before the log that could
        // rebuild them is gone, make everything written so far durable.
        self.wal.sync().await?;
        self.put_state(PURGED, &log_id)?;
        self.delete_logs(0, log_id.index() + 1)
    }
}
