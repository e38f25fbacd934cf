//! The openraft state machine of one group: a thin adapter that applies each committed
//! [`Command`] through the group kind's pure apply function, and builds and installs
//! snapshots of the group's key range.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::{WriteBatch, DB};

use super::snapshot::{self, SnapshotFile, LAST_APPLIED, MEMBERSHIP};
use super::types::{GroupId, GroupKind, LogId, SnapshotMeta, StoredMembership, TypeConfig};
use super::wal_sync::WalSync;
use crate::command::{Command, CommandResult, Query, QueryResult};
use crate::shard::due_signal::DueSignal;
use crate::store::txn::{SmReader, SmTxn};
use crate::store::{decode, encode, io_err, keys, CF_SM, CF_SM_META};

type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotFile>;

/// Marks a snapshot install in progress: names the file to redo it from after a crash.
const INSTALLING: &str = "installing";
/// Most bytes put in one `WriteBatch` while installing a snapshot.
const INSTALL_BATCH_BYTES: usize = 4 << 20;

/// One group's state machine in the node's shared RocksDB.
#[derive(Clone)]
pub struct GroupStateMachine {
    db: Arc<DB>,
    group: GroupId,
    snapshot_dir: PathBuf,
    wal: WalSync,
    due: Arc<DueSignal>,
}

impl GroupStateMachine {
    /// Opens the state machine of `group`, finishing a snapshot install a crash interrupted.
    pub fn open(
        db: Arc<DB>,
        group: GroupId,
        snapshot_root: &std::path::Path,
        wal: WalSync,
    ) -> io::Result<Self> {
        let sm = GroupStateMachine {
            db,
            group,
            snapshot_dir: snapshot::group_dir(snapshot_root, group),
            wal,
            due: Arc::default(),
        };
        if let Some(path) = sm.get_meta::<PathBuf>(INSTALLING)? {
            tracing::warn!(%group, ?path, "redoing an interrupted snapshot install");
            let meta = snapshot::read_meta(&path)?;
            sm.install_file(&meta, &path)?;
        }
        Ok(sm)
    }

    pub fn db(&self) -> &DB {
        &self.db
    }

    pub fn group(&self) -> GroupId {
        self.group
    }

    /// What the shard's timer learns from applied writes of runs that fall due.
    pub fn due_signal(&self) -> &Arc<DueSignal> {
        &self.due
    }

    fn cf_meta(&self) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(CF_SM_META)
            .expect("sm_meta column family")
    }

    fn get_meta<T: serde::de::DeserializeOwned>(&self, name: &str) -> io::Result<Option<T>> {
        let raw = self
            .db
            .get_cf(self.cf_meta(), keys::named_key(self.group, name))
            .map_err(io_err)?;
        raw.map(|b| decode(&b)).transpose()
    }

    /// Answers a read from the applied state. The caller makes it linearizable.
    pub fn query(&self, q: &Query) -> io::Result<QueryResult> {
        let reader = SmReader::new(&self.db, self.group);
        match self.group.kind() {
            GroupKind::Meta => crate::meta::apply::query(&reader, q),
            GroupKind::Shard(_) => crate::shard::query::query(&reader, q),
        }
    }

    fn apply_command(&self, txn: &mut SmTxn, cmd: &Command) -> io::Result<CommandResult> {
        match self.group.kind() {
            GroupKind::Meta => crate::meta::apply::apply(txn, cmd),
            GroupKind::Shard(_) => crate::shard::apply::apply(txn, cmd),
        }
    }

    /// Replaces this group's state with the snapshot in `path`: durably marks the install,
    /// clears the group's range, loads the records in bounded batches, then records the
    /// applied state and clears the mark in one final batch.
    fn install_file(&self, meta: &SnapshotMeta, path: &std::path::Path) -> io::Result<()> {
        let marker = keys::named_key(self.group, INSTALLING);
        let mut opts = rocksdb::WriteOptions::default();
        opts.set_sync(true);
        self.db
            .put_cf_opt(self.cf_meta(), &marker, encode(&path)?, &opts)
            .map_err(io_err)?;

        let cf = self.db.cf_handle(CF_SM).expect("sm column family");
        let (lo, hi) = keys::group_range(self.group);
        self.db.delete_range_cf(cf, lo, hi).map_err(io_err)?;
        let mut batch = WriteBatch::default();
        snapshot::for_each_record(path, |k, v| {
            batch.put_cf(cf, keys::sm_key(self.group, k), v);
            if batch.size_in_bytes() >= INSTALL_BATCH_BYTES {
                self.db.write(std::mem::take(&mut batch)).map_err(io_err)?;
            }
            Ok(())
        })?;
        match &meta.last_log_id {
            Some(l) => batch.put_cf(
                self.cf_meta(),
                keys::named_key(self.group, LAST_APPLIED),
                encode(l)?,
            ),
            None => batch.delete_cf(self.cf_meta(), keys::named_key(self.group, LAST_APPLIED)),
        }
        batch.put_cf(
            self.cf_meta(),
            keys::named_key(self.group, MEMBERSHIP),
            encode(&meta.last_membership)?,
        );
        batch.delete_cf(self.cf_meta(), marker);
        self.db.write_opt(batch, &opts).map_err(io_err)
    }
}

impl RaftSnapshotBuilder<TypeConfig> for GroupStateMachine {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot, io::Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let (meta, file) = snapshot::build(&this.db, this.group, &this.snapshot_dir)?;
            snapshot::remove_others(&this.snapshot_dir, &file.path)?;
            tracing::info!(group = %this.group, last = ?meta.last_log_id, "built snapshot");
            Ok(Snapshot {
                meta,
                snapshot: file,
            })
        })
        .await
        .map_err(io_err)?
    }
}

impl RaftStateMachine<TypeConfig> for GroupStateMachine {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), io::Error> {
        let applied = self.get_meta(LAST_APPLIED)?;
        let membership = self.get_meta(MEMBERSHIP)?.unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm: Stream<Item = Result<EntryResponder<TypeConfig>, io::Error>> + Unpin + OptionalSend,
    {
        let mut txn = SmTxn::new(&self.db, self.group);
        let mut batch = WriteBatch::default();
        let mut last_applied = None;
        let mut replies = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            last_applied = Some(entry.log_id());
            let result = match &entry.payload {
                EntryPayload::Blank => CommandResult::None,
                EntryPayload::Normal(cmd) => self.apply_command(&mut txn, cmd)?,
                EntryPayload::Membership(m) => {
                    let stored = StoredMembership::new(Some(entry.log_id()), m.clone());
                    batch.put_cf(
                        self.cf_meta(),
                        keys::named_key(self.group, MEMBERSHIP),
                        encode(&stored)?,
                    );
                    CommandResult::None
                }
            };
            if let Some(r) = responder {
                replies.push((r, result));
            }
        }
        let Some(last) = last_applied else {
            return Ok(());
        };
        let earliest_due = txn
            .first_put_with_prefix(&[crate::shard::keys::TIME])
            .map(|k| crate::shard::keys::time_and_id(k).0);
        txn.write_into(&mut batch);
        batch.put_cf(
            self.cf_meta(),
            keys::named_key(self.group, LAST_APPLIED),
            encode(&last)?,
        );
        // Not synced: the entries are durable in the log, and purge syncs before dropping them.
        self.db.write(batch).map_err(io_err)?;
        if let Some(due) = earliest_due {
            self.due.written(due, chrono::Utc::now().timestamp());
        }
        for (r, result) in replies {
            r.send(result);
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        let this = self.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || {
            let file = snapshot::adopt(&this.snapshot_dir, &snapshot.path, &meta)?;
            this.install_file(&meta, &file.path)?;
            snapshot::remove_others(&this.snapshot_dir, &file.path)?;
            tracing::info!(group = %this.group, last = ?meta.last_log_id, "installed snapshot");
            Ok::<_, io::Error>(())
        })
        .await
        .map_err(io_err)??;
        self.wal.sync().await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot>, io::Error> {
        let Some(file) = snapshot::latest(&self.snapshot_dir)? else {
            return Ok(None);
        };
        let meta = snapshot::read_meta(&file.path)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: file,
        }))
    }
}
