//! Shards: the data groups that hold schedules. An app's partition maps onto a shard
//! deterministically, so every node agrees where a partition's schedules live.

pub mod audit;
pub mod claims;
pub mod cron_runs;
pub mod due_signal;
pub mod idempotency;
pub mod index;
pub mod keys;
pub mod logic;
pub mod pending;
pub mod query;
pub mod retention;
pub mod update;

use crate::ids::GroupId;

/// The shard group holding partition `partition` of app `app_id` in a cluster of `shards`.
///
/// An app's consecutive partitions land on consecutive shards (offset by a stable hash
/// of the app id), so one app's load spreads over the shards and apps don't pile up.
pub fn shard_of(app_id: &str, partition: u32, shards: u32) -> GroupId {
    let offset = fnv1a(app_id.as_bytes());
    GroupId::shard((offset.wrapping_add(partition as u64) % shards as u64) as u32)
}

/// A partition of app `app_id` (of `partitions`) whose shard `local` says this node
/// leads, picked by `pick` among them (consecutive picks: consecutive such partitions);
/// `None` when no partition's shard is led here. A create without an idempotency key may
/// go to any partition: one led here is stored without forwarding it to another node.
pub fn local_partition(
    app_id: &str,
    partitions: u32,
    shards: u32,
    local: impl Fn(GroupId) -> bool,
    pick: u64,
) -> Option<u32> {
    let offset = fnv1a(app_id.as_bytes());
    let led: Vec<bool> = (0..shards).map(|s| local(GroupId::shard(s))).collect();
    let candidates: Vec<u32> = (0..partitions)
        .filter(|p| led[(offset.wrapping_add(*p as u64) % shards as u64) as usize])
        .collect();
    (!candidates.is_empty()).then(|| candidates[(pick % candidates.len() as u64) as usize])
}

/// The partition of app `app_id`'s schedule created with idempotency key `key`: the same
/// on every node and every retry, so the retry meets the key where the first create left it.
pub fn partition_of_key(app_id: &str, key: &str, partitions: u32) -> u32 {
    let h = fnv1a(&[app_id.as_bytes(), &[0], key.as_bytes()].concat());
    (h % partitions.max(1) as u64) as u32
}

/// The shards holding an app's partitions, in order, each once.
pub fn app_shards(app_id: &str, partitions: u32, shards: u32) -> Vec<GroupId> {
    let mut out: Vec<GroupId> = (0..partitions)
        .map(|p| shard_of(app_id, p, shards))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// FNV-1a, 64 bit: stable across versions and platforms (unlike std's hasher).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_partition_is_one_whose_shard_is_led_here() {
        for app in ["revamp", "a", "bench-vs-etcd"] {
            let local = |g: GroupId| g == GroupId::shard(2) || g == GroupId::shard(5);
            let mut seen = std::collections::BTreeSet::new();
            for pick in 0..64 {
                let p = local_partition(app, 16, 8, local, pick).unwrap();
                assert!(local(shard_of(app, p, 8)), "{app} partition {p}");
                seen.insert(p);
            }
            assert_eq!(seen.len(), 4, "{app}: each local partition is picked");
            let consecutive: std::collections::BTreeSet<_> = (100..104)
                .map(|pick| local_partition(app, 16, 8, local, pick).unwrap())
                .collect();
            assert_eq!(consecutive.len(), 4, "{app}: consecutive picks move on");
            assert_eq!(local_partition(app, 16, 8, |_| false, 7), None);
        }
    }
    use crate::ids::GroupKind;

    #[test]
    fn partitions_map_deterministically_and_spread() {
        assert_eq!(shard_of("revamp", 0, 8), shard_of("revamp", 0, 8));
        let shards: std::collections::BTreeSet<_> =
            (0..8).map(|p| shard_of("revamp", p, 8)).collect();
        assert_eq!(
            shards.len(),
            8,
            "8 partitions over 8 shards use every shard"
        );
        for p in 0..100 {
            assert!(matches!(shard_of("x", p, 3).kind(), GroupKind::Shard(s) if s < 3));
        }
        assert_eq!(app_shards("revamp", 1, 8).len(), 1);
        assert_eq!(app_shards("revamp", 8, 8).len(), 8);
        assert_eq!(app_shards("revamp", 100, 8).len(), 8);
        // Pinned: a change here would move existing schedules (FNV-1a test vectors).
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}

#[cfg(test)]
mod logic_tests;
