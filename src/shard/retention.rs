//! Retention: finished runs (SUCCESS, FAILURE, MISS) older than their app's retention are
//! removed through Raft, in bounded batches. The proposer stamps each app's cutoff (from
//! the app's configuration and its clock), so every replica removes the same runs.

use std::io;

use uuid::Uuid;

use super::index::remove;
use super::keys;
use crate::schedule::{Schedule, Status};
use crate::store::txn::SmTxn;

/// Whether a schedule has finished (and may be purged once old enough).
pub fn is_finished(s: &Schedule) -> bool {
    matches!(s.status, Status::Success | Status::Failure | Status::Miss)
}

/// Removes finished schedules with time before each app's cutoff, looking at no more than
/// `limit` index entries in all. Returns how many it removed.
pub fn purge(txn: &mut SmTxn, cutoffs: &[(String, i64)], limit: usize) -> io::Result<usize> {
    let mut looked = 0;
    let mut removed = 0;
    for (app_id, cutoff) in cutoffs {
        if looked >= limit {
            break;
        }
        let prefix = keys::app_prefix(app_id);
        let mut old = Vec::new();
        txn.scan_from(&keys::app_time(app_id, i64::MIN, &Uuid::nil()), |k, _| {
            if !k.starts_with(&prefix) || looked >= limit {
                return Ok(false);
            }
            let (time, id) = keys::time_and_id(k);
            if time >= *cutoff {
                return Ok(false);
            }
            looked += 1;
            old.push(id);
            Ok(true)
        })?;
        for id in old {
            let Some(s) = txn.get::<Schedule>(&keys::schedule(&id))? else {
                continue;
            };
            if is_finished(&s) {
                remove(txn, &s)?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}
