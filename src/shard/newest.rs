//! The newest id a create stored in this shard, so a create with a newer id skips the
//! point read that looks for an earlier apply of the same create.
//!
//! Ids are time-ordered (UUIDv7 stamped with the proposer's clock), so nearly every create
//! carries an id newer than any stored: that read found nothing, yet it cost a RocksDB
//! lookup through the memtable and every level's filter — a third of applying a batch of
//! creates (perf). An id at or below the newest (a create proposed again, or one from a node
//! whose clock is behind) is still looked up.
//!
//! Applying stays deterministic: the newest id is state-machine data (in snapshots too),
//! read and written in the apply batch. A shard without it that holds no schedule starts
//! from nothing (every id is newer); one that holds schedules stored before this key
//! existed (an older build) starts it [`BEFORE_KEPT_MS`] after the first create that finds
//! it absent, so ids made before then are always looked up.

use std::io;

use uuid::Uuid;

use super::keys;
use crate::store::txn::SmTxn;

/// How far ahead of the first create that finds no newest id the first kept one starts:
/// ids made before the key existed were stamped by clocks within the nodes' allowed offset
/// (`max_clock_offset_ms`, well below this) of that create's proposer.
pub const BEFORE_KEPT_MS: u64 = 10 * 60 * 1000;

/// The shard's newest created id during one apply batch.
pub struct NewestCreated {
    id: Uuid,
    changed: bool,
}

impl NewestCreated {
    /// The shard's newest created id; when absent, started from `now_ms` (the command's)
    /// if the shard holds schedules.
    pub fn load(txn: &SmTxn, now_ms: u64) -> io::Result<Self> {
        if let Some(id) = txn.get::<Uuid>(&keys::newest_created())? {
            return Ok(NewestCreated { id, changed: false });
        }
        let id = if holds_schedules(txn)? {
            latest_id_at(now_ms.saturating_add(BEFORE_KEPT_MS))
        } else {
            Uuid::nil()
        };
        Ok(NewestCreated { id, changed: true })
    }

    /// Whether `id` is newer than every id a create stored here: no such schedule exists.
    pub fn is_newer(&self, id: &Uuid) -> bool {
        *id > self.id
    }

    /// A create stored `id`.
    pub fn stored(&mut self, id: Uuid) {
        if id > self.id {
            self.id = id;
            self.changed = true;
        }
    }

    /// Writes it back into the batch, if it changed.
    pub fn save(self, txn: &mut SmTxn) -> io::Result<()> {
        if self.changed {
            txn.put(&keys::newest_created(), &self.id)?;
        }
        Ok(())
    }
}

/// Whether the shard holds any schedule (one seek, once per shard: the key is written then).
fn holds_schedules(txn: &SmTxn) -> io::Result<bool> {
    let mut found = false;
    txn.scan_from(&[keys::SCHEDULE], |k, _| {
        found = k.first() == Some(&keys::SCHEDULE);
        Ok(false)
    })?;
    Ok(found)
}

/// The greatest id stamped at `ms`: every id made at or before `ms` sorts at or below it.
fn latest_id_at(ms: u64) -> Uuid {
    let mut bytes = [0xff; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    Uuid::from_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::GroupId;
    use crate::schedule::id::new_id;

    #[test]
    fn the_latest_id_at_a_time_bounds_every_id_made_until_then() {
        let at = 1_700_000_000_000;
        let bound = latest_id_at(at);
        for s in [0, 7, 4095] {
            assert!(new_id(GroupId::shard(s), at) < bound);
            assert!(new_id(GroupId::shard(s), at - 1) < bound);
            assert!(new_id(GroupId::shard(s), at + 1) > bound);
        }
    }
}
