//! The openraft state machine of one group: a thin adapter that applies each committed
//! command through the group's [`GroupLogic`] in one atomic batch, and builds and installs
//! snapshots of the group's key range.

use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::{Stream, TryStreamExt};
use openraft::entry::RaftEntry;
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, OptionalSend, RaftSnapshotBuilder};
use rocksdb::{WriteBatch, DB};

use super::logic::GroupLogic;
use super::snapshot::{self, SnapshotFile, LAST_APPLIED, MEMBERSHIP};
use super::types::{GroupId, LogId, LogTypes, SnapshotMeta, StoredMembership, TypeConfig};
use super::wal_sync::WalSync;
use crate::store::txn::{SmReader, SmTxn};
use crate::store::{decode, encode, io_err, keys, CF_SM, CF_SM_META};

type Snapshot<L> = openraft::alias::SnapshotOf<TypeConfig<L>, SnapshotFile>;

/// Marks a snapshot install in progress: names the file to redo it from after a crash.
const INSTALLING: &str = "installing";
/// Most bytes put in one `WriteBatch` while installing a snapshot.
const INSTALL_BATCH_BYTES: usize = 4 << 20;

/// One group's state machine in the node's shared RocksDB.
pub struct GroupStateMachine<L: LogTypes> {
    db: Arc<DB>,
    group: GroupId,
    snapshot_dir: PathBuf,
    wal: WalSync,
    logic: Arc<dyn GroupLogic<L>>,
    /// Held while building or installing a snapshot: the two never run at once, so
    /// neither removes the other's files.
    files: Arc<std::sync::Mutex<()>>,
    /// Counts the writes to the applied state (apply batches, snapshot installs), each
    /// counted after it is written: what was read while it held still is still current.
    generation: Arc<AtomicU64>,
}

impl<L: LogTypes> Clone for GroupStateMachine<L> {
    fn clone(&self) -> Self {
        GroupStateMachine {
            db: self.db.clone(),
            group: self.group,
            snapshot_dir: self.snapshot_dir.clone(),
            wal: self.wal.clone(),
            logic: self.logic.clone(),
            files: self.files.clone(),
            generation: self.generation.clone(),
        }
    }
}

impl<L: LogTypes> GroupStateMachine<L> {
    /// Opens the state machine of `group`, finishing a snapshot install a crash interrupted.
    pub fn open(
        db: Arc<DB>,
        group: GroupId,
        snapshot_root: &std::path::Path,
        wal: WalSync,
        logic: Arc<dyn GroupLogic<L>>,
    ) -> io::Result<Self> {
        let sm = GroupStateMachine {
            db,
            group,
            snapshot_dir: snapshot::group_dir(snapshot_root, group),
            wal,
            logic,
            files: Arc::default(),
            generation: Arc::default(),
        };
        if let Some(path) = sm.get_meta::<PathBuf>(INSTALLING)? {
            tracing::warn!(%group, ?path, "redoing an interrupted snapshot install");
            // The file was verified before the install began; if it is damaged since, this
            // group's data is gone and only a re-added node can recover it: say so.
            let meta = snapshot::verify::<L>(&path).map_err(|e| {
                io::Error::other(format!(
                    "{group}: the snapshot {} an interrupted install needs is unusable ({e}); \
                     remove this node (goschedctl remove-node), clear its data dir and add it back",
                    path.display()
                ))
            })?;
            sm.install_file(&meta, &path)?;
        }
        Ok(sm)
    }

    pub fn group(&self) -> GroupId {
        self.group
    }

    /// How many writes the applied state has had (see `generation`): read before reading
    /// the state, it tells a cache whether what it read is still current.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Runs `f` on the applied state (whether that is linearizable is the caller's affair).
    pub fn read<T>(&self, f: impl FnOnce(&SmReader) -> io::Result<T>) -> io::Result<T> {
        f(&SmReader::new(&self.db, self.group))
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

    /// Replaces this group's state with the snapshot in `path`: durably marks the install,
    /// clears the group's range, loads the records in bounded batches, then records the
    /// applied state and clears the mark in one final batch.
    fn install_file(&self, meta: &SnapshotMeta<L>, path: &std::path::Path) -> io::Result<()> {
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
        snapshot::walk::<L>(path, |k, v| {
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
        self.db.write_opt(batch, &opts).map_err(io_err)?;
        self.generation.fetch_add(1, Ordering::Release);
        Ok(())
    }
}

impl<L: LogTypes> RaftSnapshotBuilder<TypeConfig<L>> for GroupStateMachine<L> {
    type SnapshotData = SnapshotFile;

    async fn build_snapshot(&mut self) -> Result<Snapshot<L>, io::Error> {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let _files = this.files.lock().unwrap_or_else(|p| p.into_inner());
            let (meta, file) = snapshot::build::<L>(&this.db, this.group, &this.snapshot_dir)?;
            snapshot::remove_others(&this.snapshot_dir, &file.path)?;
            tracing::info!(group = %this.group, last = ?meta.last_log_id, "built snapshot");
            Ok(Snapshot::<L> {
                meta,
                snapshot: file,
            })
        })
        .await
        .map_err(io_err)?
    }
}

impl<L: LogTypes> RaftStateMachine<TypeConfig<L>> for GroupStateMachine<L> {
    type SnapshotData = SnapshotFile;
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<L>>, StoredMembership<L>), io::Error> {
        let applied = self.get_meta(LAST_APPLIED)?;
        let membership = self.get_meta(MEMBERSHIP)?.unwrap_or_default();
        Ok((applied, membership))
    }

    async fn apply<Strm>(&mut self, mut entries: Strm) -> Result<(), io::Error>
    where
        Strm:
            Stream<Item = Result<EntryResponder<TypeConfig<L>>, io::Error>> + Unpin + OptionalSend,
    {
        let mut txn = SmTxn::new(&self.db, self.group);
        let mut batch = WriteBatch::default();
        let mut last_applied = None;
        let mut replies = Vec::new();
        while let Some((entry, responder)) = entries.try_next().await? {
            last_applied = Some(entry.log_id());
            let result = match &entry.payload {
                EntryPayload::Blank => L::Reply::default(),
                EntryPayload::Normal(cmd) => self.logic.apply(&mut txn, cmd)?,
                EntryPayload::Membership(m) => {
                    let stored = StoredMembership::<L>::new(Some(entry.log_id()), m.clone());
                    batch.put_cf(
                        self.cf_meta(),
                        keys::named_key(self.group, MEMBERSHIP),
                        encode(&stored)?,
                    );
                    L::Reply::default()
                }
            };
            if let Some(r) = responder {
                replies.push((r, result));
            }
        }
        let Some(last) = last_applied else {
            return Ok(());
        };
        txn.write_into(&mut batch)?;
        batch.put_cf(
            self.cf_meta(),
            keys::named_key(self.group, LAST_APPLIED),
            encode(&last)?,
        );
        // Not synced: the entries are durable in the log, and purge syncs before dropping them.
        self.db.write(batch).map_err(io_err)?;
        self.generation.fetch_add(1, Ordering::Release);
        self.logic.after_commit(&txn);
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
        meta: &SnapshotMeta<L>,
        snapshot: SnapshotFile,
    ) -> Result<(), io::Error> {
        let this = self.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || {
            let _files = this.files.lock().unwrap_or_else(|p| p.into_inner());
            // Nothing of the group is touched unless the whole file checks out.
            let checked = snapshot::verify::<L>(&snapshot.path)?;
            if checked != meta {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "snapshot file does not hold the snapshot announced",
                ));
            }
            let file = snapshot::adopt::<L>(&this.snapshot_dir, &snapshot.path, &meta)?;
            this.install_file(&meta, &file.path)?;
            snapshot::remove_others(&this.snapshot_dir, &file.path)?;
            tracing::info!(group = %this.group, last = ?meta.last_log_id, "installed snapshot");
            Ok::<_, io::Error>(())
        })
        .await
        .map_err(io_err)??;
        self.wal.sync().await
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<L>>, io::Error> {
        let Some(file) = snapshot::latest(&self.snapshot_dir)? else {
            return Ok(None);
        };
        let meta = match snapshot::read_meta::<L>(&file.path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                // An older format or a damaged file: not served; a new one is built when needed.
                tracing::warn!(group = %self.group, path = ?file.path, "ignoring snapshot file: {e}");
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        Ok(Some(Snapshot::<L> {
            meta,
            snapshot: file,
        }))
    }
}
