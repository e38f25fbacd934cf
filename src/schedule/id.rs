//! Schedule ids: UUIDv7 (time-ordered) whose 12 `rand_a` bits carry the shard, so an id
//! alone leads to the one shard group holding it, with no fan-out.

use uuid::Uuid;

use crate::ids::{GroupId, GroupKind};

/// Most shards an id can name (12 bits).
pub const MAX_SHARDS: u32 = 1 << 12;

/// A new id for a schedule stored in `shard`, made from the proposer's clock.
pub fn new_id(shard: GroupId, now_ms: u64) -> Uuid {
    let GroupKind::Shard(s) = shard.kind() else {
        panic!("schedule ids name shard groups, not {shard}");
    };
    let mut bytes = *Uuid::now_v7().as_bytes();
    bytes[..6].copy_from_slice(&now_ms.to_be_bytes()[2..]);
    set_shard(&mut bytes, s);
    Uuid::from_bytes(bytes)
}

/// The id of the run of cron `parent` due at `due` (seconds): derived, so every replica
/// materialises the same run with the same id.
pub fn run_id(parent: Uuid, due: i64) -> Uuid {
    let mut bytes = *Uuid::new_v5(&parent, &due.to_be_bytes()).as_bytes();
    let shard = shard_bits(parent.as_bytes());
    bytes[..6].copy_from_slice(&((due as u64) * 1000).to_be_bytes()[2..]);
    set_shard(&mut bytes, shard);
    Uuid::from_bytes(bytes)
}

fn set_shard(bytes: &mut [u8; 16], shard: u32) {
    assert!(shard < MAX_SHARDS, "shard {shard} does not fit in an id");
    // Version 7 in the high nibble of byte 6, then the 12 shard bits.
    bytes[6] = 0x70 | ((shard >> 8) as u8 & 0x0f);
    bytes[7] = shard as u8;
    // RFC 4122 variant.
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
}

fn shard_bits(bytes: &[u8; 16]) -> u32 {
    (((bytes[6] & 0x0f) as u32) << 8) | bytes[7] as u32
}

/// The shard group holding schedule `id`, if it is one of ours in a cluster of `shards`.
pub fn shard_of_id(id: &Uuid, shards: u32) -> Option<GroupId> {
    let bytes = id.as_bytes();
    if bytes[6] >> 4 != 7 {
        return None;
    }
    let shard = shard_bits(bytes);
    (shard < shards).then(|| GroupId::shard(shard))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_shard_and_sort_by_time() {
        for s in [0u32, 1, 7, 255, 4095] {
            let id = new_id(GroupId::shard(s), 1_700_000_000_000);
            assert_eq!(shard_of_id(&id, MAX_SHARDS), Some(GroupId::shard(s)));
            assert_eq!(id.get_version_num(), 7);
        }
        let a = new_id(GroupId::shard(3), 1_000);
        let b = new_id(GroupId::shard(0), 2_000);
        assert!(a < b, "later ids sort after earlier ones");
        assert_eq!(
            shard_of_id(&a, 3),
            None,
            "shard 3 does not exist in a 3-shard cluster"
        );
        assert_eq!(
            shard_of_id(&Uuid::new_v4(), 8),
            None,
            "foreign ids name no shard"
        );
    }

    #[test]
    fn run_ids_are_deterministic_and_stay_in_the_parent_shard() {
        let parent = new_id(GroupId::shard(5), 1_000);
        assert_eq!(run_id(parent, 60), run_id(parent, 60));
        assert_ne!(run_id(parent, 60), run_id(parent, 120));
        assert_eq!(shard_of_id(&run_id(parent, 60), 8), Some(GroupId::shard(5)));
    }
}
