//! Snapshots are checked whole before anything is replaced: a cut, corrupted or padded file
//! is refused and the group keeps its state; building and installing at once lose no file;
//! and in a real cluster a node that receives a cut and then a corrupted stream refuses
//! both, stays up, and catches up on the retry.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use goscheduler::ids::GroupId;
use goscheduler::raft::snapshot::{self, SnapshotFile};
use goscheduler::raft::state_machine::GroupStateMachine;
use goscheduler::raft::wal_sync::WalSync;
use goscheduler::store;
use goscheduler::store::txn::{SmReader, SmTxn};
use openraft::storage::RaftStateMachine;
use openraft::RaftSnapshotBuilder;
use reqwest::Method;
use serde_json::Value;

use crate::harness::{group_on, now, one_time, Cluster, Options, SHARDS};
use crate::storage_suite::{Lengths, Strings};

const GROUP: GroupId = GroupId(5);

fn open_sm(dir: &Path) -> (Arc<rocksdb::DB>, GroupStateMachine<Strings>) {
    let db = store::open(&dir.join("db")).expect("open db");
    let wal = WalSync::start(&db);
    let sm = GroupStateMachine::open(
        db.clone(),
        GROUP,
        &dir.join("snapshots"),
        wal,
        Arc::new(Lengths),
    )
    .expect("open sm");
    (db, sm)
}

fn put(db: &rocksdb::DB, keys: &[&str]) {
    let mut txn = SmTxn::new(db, GROUP);
    for k in keys {
        txn.put(k.as_bytes(), k).unwrap();
    }
    let mut batch = rocksdb::WriteBatch::default();
    txn.write_into(&mut batch).unwrap();
    db.write(batch).unwrap();
}

fn keys_of(sm: &GroupStateMachine<Strings>) -> Vec<String> {
    sm.read(|r: &SmReader| {
        let mut seen = vec![];
        r.scan_from(b"", |k, _| {
            seen.push(String::from_utf8_lossy(k).to_string());
            Ok(true)
        })?;
        Ok(seen)
    })
    .unwrap()
}

/// What a test does to a snapshot file's bytes.
type Damage<'a> = Box<dyn Fn(&mut Vec<u8>) + 'a>;

/// A copy of `src` damaged by `damage`, in `dir`.
fn damaged(src: &Path, dir: &Path, name: &str, damage: impl Fn(&mut Vec<u8>)) -> SnapshotFile {
    let mut bytes = std::fs::read(src).unwrap();
    damage(&mut bytes);
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    SnapshotFile { path }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_snapshot_is_refused_and_the_group_keeps_its_state() {
    let tmp = tempfile::tempdir().unwrap();
    let (source_db, mut source) = open_sm(&tmp.path().join("source"));
    let new_keys: Vec<String> = (0..500).map(|i| format!("new-{i:04}")).collect();
    put(
        &source_db,
        &new_keys.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let built = source.build_snapshot().await.unwrap();
    let good = built.snapshot.path.clone();
    snapshot::verify::<Strings>(&good).expect("a built snapshot verifies");

    let (target_db, mut target) = open_sm(&tmp.path().join("target"));
    put(&target_db, &["old-1", "old-2"]);
    let len = std::fs::metadata(&good).unwrap().len() as usize;
    let cases: [(&str, Damage, &str); 4] = [
        ("cut", Box::new(|b| b.truncate(len / 2)), "cut short"),
        ("flip", Box::new(|b| b[len / 2] ^= 0xff), ""),
        ("pad", Box::new(|b| b.push(0)), "after the snapshot's end"),
        (
            "huge-length",
            // The meta length claims 4 GiB: refused without allocating it.
            Box::new(|b| b[8..12].copy_from_slice(&u32::MAX.to_le_bytes())),
            "snapshot meta of",
        ),
    ];
    for (name, damage, said) in cases {
        let file = damaged(&good, tmp.path(), name, damage);
        let err = snapshot::verify::<Strings>(&file.path).unwrap_err();
        assert!(err.to_string().contains(said), "{name}: {err}");
        let refused = target.install_snapshot(&built.meta, file).await;
        assert!(refused.is_err(), "{name} installed");
        assert_eq!(
            keys_of(&target),
            ["old-1", "old-2"],
            "{name} touched the group"
        );
    }
    let copy = damaged(&good, tmp.path(), "intact", |_| {});
    target.install_snapshot(&built.meta, copy).await.unwrap();
    assert_eq!(keys_of(&target), new_keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn building_and_installing_at_once_lose_no_file() {
    let tmp = tempfile::tempdir().unwrap();
    let (source_db, mut source) = open_sm(&tmp.path().join("source"));
    let keys: Vec<String> = (0..2000).map(|i| format!("k-{i:05}")).collect();
    put(
        &source_db,
        &keys.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let built = source.build_snapshot().await.unwrap();
    let (target_db, target) = open_sm(&tmp.path().join("target"));
    put(&target_db, &["t"]);
    for round in 0..20 {
        let copy = damaged(
            &built.snapshot.path,
            tmp.path(),
            &format!("r{round}"),
            |_| {},
        );
        let (mut builder, mut installer) = (target.clone(), target.clone());
        let meta = built.meta.clone();
        let (b, i) = tokio::join!(
            tokio::spawn(async move { builder.build_snapshot().await.map(|_| ()) }),
            tokio::spawn(async move { installer.install_snapshot(&meta, copy).await }),
        );
        b.unwrap().expect("build");
        i.unwrap().expect("install");
        let mut current = target.clone();
        let snap = current
            .get_current_snapshot()
            .await
            .unwrap()
            .expect("a snapshot");
        snapshot::verify::<Strings>(&snap.snapshot.path).expect("the current snapshot is whole");
    }
    assert_eq!(keys_of(&target), keys);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_refuses_cut_and_corrupted_streams_and_catches_up_on_the_retry() {
    let mut cluster = Cluster::start(3, Options::purging_snapshots()).await;
    cluster.register_app(1, "snap", 1).await;
    let shard = goscheduler::shard::shard_of("snap", 0, SHARDS).0;
    let items = |n: usize| -> Vec<Value> {
        (0..n)
            .map(|i| one_time("snap", now() + 3600 + i as i64))
            .collect()
    };
    let mut ids = cluster.create_batch(1, &items(200)).await;
    let lagging = 3;
    cluster.kill(lagging);
    ids.extend(cluster.create_batch(1, &items(300)).await);
    let purged = cluster.snapshot_until_purged(&[1, 2], shard).await;

    // The first two snapshot streams node 3 receives are damaged: one cut, one flipped;
    // the third, whole, is delivered again once installed (a sender's retry).
    cluster.start_with_env(
        lagging,
        &[("GOSCHED_FAULT_SNAPSHOT_RECEIVE", "cut,flip,twice")],
    );
    cluster.wait_healthy(lagging, Duration::from_secs(60)).await;
    cluster
        .eventually(
            "the lagging node installs the shard's snapshot",
            Duration::from_secs(60),
            async || {
                let s = cluster.status(lagging).await;
                let g = group_on(&s, lagging, shard);
                g["applied_index"].as_u64().unwrap_or(0) >= purged
            },
        )
        .await;
    // Nothing of the refused streams (nor of the installed one) stays behind.
    let incoming = cluster.data_dir(lagging).join("snapshots").join("incoming");
    let left: Vec<_> = std::fs::read_dir(&incoming)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in {}: {left:?}", incoming.display());
    let logs = cluster.logs();
    assert!(
        logs.contains("snapshot stream ended after"),
        "no cut stream refused\n{logs}"
    );
    assert!(
        logs.contains("refused a received snapshot"),
        "no corrupted snapshot refused\n{logs}"
    );
    assert!(
        logs.contains("(Twice)"),
        "no stream delivered twice\n{logs}"
    );
    assert!(
        !logs.contains("Fatal") && !logs.contains("panicked"),
        "{logs}"
    );
    // Served from node 3's own state: it leads the shard and answers every schedule.
    let out = cluster
        .ctl(
            lagging,
            &[
                "transfer-leader",
                "--group",
                &shard.to_string(),
                "--to",
                &lagging.to_string(),
            ],
        )
        .await;
    assert!(out.contains("leader is now node 3"), "{out}");
    for id in &ids {
        let path = format!("/goscheduler/schedules/{id}");
        let (status, body) = cluster.call(lagging, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{id}: {body}");
    }
}
