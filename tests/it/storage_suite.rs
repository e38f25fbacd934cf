//! openraft's own storage conformance suite, run on our RocksDB log store and state
//! machine, with other groups' data in the same DB to prove the key ranges don't leak.

use goscheduler::raft::log_store::LogStore;
use goscheduler::raft::state_machine::GroupStateMachine;
use goscheduler::raft::types::{GroupId, TypeConfig};
use goscheduler::raft::wal_sync::WalSync;
use goscheduler::store;
use openraft::alias::{CommittedLeaderIdOf, EntryOf, LogIdOf};
use openraft::entry::RaftEntry;
use openraft::storage::RaftLogStorage;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::vote::RaftLeaderId;
use openraft::StorageError;
use tempfile::TempDir;

struct Builder;

/// The group under test sits between two neighbours that hold data of their own.
const UNDER_TEST: GroupId = GroupId(3);

impl StoreBuilder<TypeConfig, LogStore, GroupStateMachine, TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(TempDir, LogStore, GroupStateMachine), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = store::open(&dir.path().join("db")).expect("open db");
        let wal = WalSync::start(&db);
        for neighbour in [GroupId(2), GroupId(4)] {
            let mut log = LogStore::new(db.clone(), neighbour, wal.clone());
            let vote = openraft::alias::VoteOf::<TypeConfig>::new(9, 9);
            log.save_vote(&vote).await.expect("neighbour vote");
            let leader = CommittedLeaderIdOf::<TypeConfig>::new(9, 9);
            let entries = (0..20)
                .map(|i| EntryOf::<TypeConfig>::new_blank(LogIdOf::<TypeConfig>::new(leader, i)));
            append(&mut log, entries).await;
        }
        let log = LogStore::new(db.clone(), UNDER_TEST, wal.clone());
        let sm = GroupStateMachine::open(db, UNDER_TEST, &dir.path().join("snapshots"), wal)
            .expect("open sm");
        Ok((dir, log, sm))
    }
}

async fn append(log: &mut LogStore, entries: impl Iterator<Item = EntryOf<TypeConfig>> + Send) {
    use openraft::storage::IOFlushed;
    use openraft::type_config::TypeConfigExt;
    let (tx, rx) = TypeConfig::oneshot();
    let cb = IOFlushed::<TypeConfig>::signal(tx);
    log.append(entries, cb).await.expect("append");
    rx.await.expect("flushed").expect("flush ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite_passes_on_rocksdb_store() {
    Suite::test_all(Builder)
        .await
        .expect("openraft storage suite");
}
