//! openraft's own storage conformance suite, run on our RocksDB log store and state
//! machine, with other groups' data in the same DB to prove the key ranges don't leak.
//! The Raft layer is domain-free, so the suite runs it with a log of its own (plain
//! strings, a logic that stores nothing) — no app or schedule in sight.

use std::sync::Arc;

use goscheduler::ids::GroupId;
use goscheduler::raft::log_store::LogStore;
use goscheduler::raft::state_machine::GroupStateMachine;
use goscheduler::raft::types::TypeConfig;
use goscheduler::raft::wal_sync::WalSync;
use goscheduler::raft::{GroupLogic, LogTypes};
use goscheduler::store;
use goscheduler::store::txn::SmTxn;
use openraft::alias::{CommittedLeaderIdOf, EntryOf, LogIdOf};
use openraft::entry::RaftEntry;
use openraft::storage::RaftLogStorage;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::vote::RaftLeaderId;
use openraft::StorageError;
use tempfile::TempDir;

/// A log of strings whose apply answers the string's length (also the snapshot tests').
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Strings;

impl LogTypes for Strings {
    type Command = String;
    type Reply = usize;
}

pub struct Lengths;

impl GroupLogic<Strings> for Lengths {
    fn apply(&self, _txn: &mut SmTxn, cmd: &String) -> std::io::Result<usize> {
        Ok(cmd.len())
    }
}

type Config = TypeConfig<Strings>;

struct Builder;

/// The group under test sits between two neighbours that hold data of their own.
const UNDER_TEST: GroupId = GroupId(3);

impl StoreBuilder<Config, LogStore<Strings>, GroupStateMachine<Strings>, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore<Strings>, GroupStateMachine<Strings>), StorageError<Config>>
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = store::open(&dir.path().join("db")).expect("open db");
        let wal = WalSync::start(&db);
        for neighbour in [GroupId(2), GroupId(4)] {
            let mut log = LogStore::new(db.clone(), neighbour, wal.clone());
            let vote = openraft::alias::VoteOf::<Config>::new(9, 9);
            RaftLogStorage::<Config>::save_vote(&mut log, &vote)
                .await
                .expect("neighbour vote");
            let leader = CommittedLeaderIdOf::<Config>::new(9, 9);
            let entries =
                (0..20).map(|i| EntryOf::<Config>::new_blank(LogIdOf::<Config>::new(leader, i)));
            append(&mut log, entries).await;
        }
        let log = LogStore::new(db.clone(), UNDER_TEST, wal.clone());
        let snapshots = dir.path().join("snapshots");
        let sm = GroupStateMachine::open(db, UNDER_TEST, &snapshots, wal, Arc::new(Lengths))
            .expect("open sm");
        Ok((dir, log, sm))
    }
}

async fn append(
    log: &mut LogStore<Strings>,
    entries: impl Iterator<Item = EntryOf<Config>> + Send,
) {
    use openraft::storage::IOFlushed;
    use openraft::type_config::TypeConfigExt;
    let (tx, rx) = Config::oneshot();
    let cb = IOFlushed::<Config>::signal(tx);
    log.append(entries, cb).await.expect("append");
    rx.await.expect("flushed").expect("flush ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes_on_rocksdb_store() {
    Suite::test_all(Builder)
        .await
        .expect("openraft storage suite");
}
