//! Group commit for the node's one WAL.
//!
//! Appends of every group write their `WriteBatch` unsynced and hand their completion to
//! this thread. It takes everything waiting, makes the WAL durable with one
//! `flush_wal(true)`, then completes them all: many groups' appends share one fsync.

use std::io;
use std::sync::mpsc;
use std::sync::{Arc, Weak};

use rocksdb::DB;

/// Someone waiting for the WAL to be durable.
pub enum Waiter {
    /// An openraft log append (its `IOFlushed` callback).
    Append(Box<dyn FnOnce(io::Result<()>) + Send>),
    /// Any other write that must be durable before its caller goes on (a vote).
    Notify(tokio::sync::oneshot::Sender<io::Result<()>>),
}

impl Waiter {
    fn complete(self, res: &Result<(), String>) {
        let res = res.clone().map_err(io::Error::other);
        match self {
            Waiter::Append(done) => done(res),
            Waiter::Notify(tx) => {
                let _ = tx.send(res);
            }
        }
    }
}

/// Handle to the node's WAL syncer thread.
#[derive(Clone)]
pub struct WalSync {
    tx: mpsc::Sender<Waiter>,
}

impl WalSync {
    /// Starts the syncer thread for `db`. It ends when every handle is dropped. It holds
    /// the DB only while syncing, so the DB closes where its last user drops it, not on
    /// this thread at some later moment (RocksDB aborts if a DB outlives process exit).
    pub fn start(db: &Arc<DB>) -> WalSync {
        let (tx, rx) = mpsc::channel::<Waiter>();
        let db = Arc::downgrade(db);
        std::thread::Builder::new()
            .name("wal-sync".into())
            .spawn(move || run(db, rx))
            .expect("spawn wal-sync thread");
        WalSync { tx }
    }

    /// Completes `waiter` once everything written before this call is durable.
    pub fn after_sync(&self, waiter: Waiter) {
        if let Err(mpsc::SendError(w)) = self.tx.send(waiter) {
            w.complete(&Err("wal syncer stopped".into()));
        }
    }

    /// Waits until everything written before this call is durable.
    pub async fn sync(&self) -> io::Result<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.after_sync(Waiter::Notify(tx));
        rx.await
            .map_err(|_| io::Error::other("wal syncer stopped"))?
    }
}

fn run(db: Weak<DB>, rx: mpsc::Receiver<Waiter>) {
    while let Ok(first) = rx.recv() {
        let mut waiters = vec![first];
        waiters.extend(rx.try_iter());
        let res = match db.upgrade() {
            Some(db) => db
                .flush_wal(true)
                .map_err(|e| crate::store::io_err(e).to_string()),
            None => Err("the database is closed".to_string()),
        };
        if let Err(e) = &res {
            tracing::error!("WAL sync failed: {e}");
        }
        for w in waiters {
            w.complete(&res);
        }
    }
}
