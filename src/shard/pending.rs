//! How many schedules and runs of each app partition wait to fire (`n` ‖ app ‖ 0 ‖
//! partition → count): kept by [`super::index`] and [`super::claims`] at every change into
//! or out of SCHEDULED, read by a create to hold `limits.max_pending_per_app`.

use std::io;

use super::keys;
use crate::schedule::{Schedule, Status};
use crate::store::txn::SmTxn;

/// Whether `s` counts as pending: a one-time schedule or a cron's run, not yet finished.
pub fn counts(s: &Schedule) -> bool {
    !s.is_cron() && s.status == Status::Scheduled
}

/// The pending schedules of `app_id`'s partition `partition` in this shard.
pub fn of(txn: &SmTxn, app_id: &str, partition: u32) -> io::Result<u64> {
    txn.counter(&keys::pending(app_id, partition))
}

/// Adds `delta` to the pending count of `s`'s partition (never below zero: schedules
/// stored before counts were kept are not in it).
pub fn add(txn: &mut SmTxn, s: &Schedule, delta: i64) -> io::Result<()> {
    let key = keys::pending(&s.app_id, s.partition);
    let n = txn.counter(&key)?.saturating_add_signed(delta);
    txn.set_counter(&key, n);
    Ok(())
}
