//! Disk full is an answer, not an outage: node 2's data dir on a small tmpfs fills up →
//! its healthcheck and every write through it answer 503 naming the storage error, the
//! cluster keeps serving through nodes 1 and 3; once space is freed node 2 restarts itself,
//! catches up, and nothing acknowledged is lost.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{bytes_in, group_on, now, one_time, Cluster, Options, SHARDS};

/// A tmpfs mounted over a directory for the life of the guard (lazily unmounted on drop).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, bytes: u64) -> Tmpfs {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .status()
            .expect("run mount")
            .success();
        assert!(ok, "mount a tmpfs (this test needs root, as CI has)");
        Tmpfs(dir.to_path_buf())
    }

    fn grow(&self, bytes: u64) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={bytes}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "grow the tmpfs");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

async fn health(cluster: &Cluster, node: u64) -> (u16, Value) {
    cluster
        .call(node, Method::GET, "/goscheduler/healthcheck", None)
        .await
}

/// A batch of `n` schedules of app `full` with 20 KB payloads.
fn batch(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let mut s = one_time("full", now() + 3600 + i as i64);
            s["payload"] = json!("f".repeat(20_000));
            s
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_and_the_node_recovers_once_space_is_freed() {
    let mut cluster = Cluster::start(3, Options::default()).await;
    // Node 2's data dir moves onto a tmpfs with about 48 MB to spare.
    cluster.kill(2);
    let dir = cluster.data_dir(2);
    let moved = dir.with_extension("moved");
    std::fs::rename(&dir, &moved).unwrap();
    std::fs::create_dir(&dir).unwrap();
    let tmpfs = Tmpfs::mount(&dir, bytes_in(&moved) + (48 << 20));
    let copied = Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", moved.display()))
        .arg(&dir)
        .status()
        .unwrap();
    assert!(copied.success());
    cluster.restart(2).await;
    let limits = json!({"payloadSize": 65536});
    cluster.register_app_with(1, "full", 8, Some(limits)).await;

    // Fill it through node 1: every batch is acknowledged by the quorum of nodes 1 and 3.
    let mut acked: Vec<String> = Vec::new();
    let mut full = None;
    for _ in 0..60 {
        acked.extend(cluster.create_batch(1, &batch(100)).await);
        let (status, body) = health(&cluster, 2).await;
        if status == 503 && body["storage"] != "ok" {
            full = Some(body);
            break;
        }
    }
    let full = full.expect("node 2's storage never failed");
    let why = full["storage"].as_str().unwrap().to_string();
    assert!(why.contains("No space left on device"), "{full}");
    println!("node 2 full after {} schedules: {why}", acked.len());

    // Writes through node 2 are refused naming the storage error; nodes 1 and 3 serve on.
    let one = one_time("full", now() + 3600).to_string();
    let (status, body) = cluster
        .call(2, Method::POST, "/goscheduler/schedules", Some(&one))
        .await;
    assert_eq!(status, 503, "{body}");
    let said = body["status"]["statusMessage"].as_str().unwrap();
    assert!(said.contains("storage error on node 2"), "{said}");
    for node in [1, 3] {
        acked.extend(cluster.create_batch(node, &batch(10)).await);
    }

    // Space freed: node 2 restarts itself (same process id: an exec), serves and catches up.
    tmpfs.grow(2 << 30);
    cluster.wait_healthy(2, Duration::from_secs(120)).await;
    assert!(
        cluster.exited(2).is_none(),
        "node 2 exited instead of restarting"
    );
    assert!(
        cluster.logs().contains("restarting this node"),
        "{}",
        cluster.logs()
    );
    cluster
        .eventually(
            "node 2 catches up with every group",
            Duration::from_secs(60),
            async || {
                let s = cluster.status(2).await;
                (0..=SHARDS as u64).all(|g| {
                    let mine = group_on(&s, 2, g);
                    let leader = mine["leader"].as_u64().unwrap_or(0);
                    leader != 0
                        && mine["applied_index"].as_u64()
                            == group_on(&s, leader, g)["applied_index"].as_u64()
                })
            },
        )
        .await;
    acked.extend(cluster.create_batch(2, &batch(10)).await);
    for id in &acked {
        let path = format!("/goscheduler/schedules/{id}");
        let (status, body) = cluster.call(2, Method::GET, &path, None).await;
        assert_eq!(status, 200, "acknowledged {id} lost: {body}");
    }
}
