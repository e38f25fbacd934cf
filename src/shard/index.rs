//! A schedule's record and its index entries in its shard, kept together in one place:
//! nothing else in the shard writes or deletes index entries of a schedule.

use std::io;

use super::{keys, pending};
use crate::schedule::{Schedule, Status};
use crate::store::txn::SmTxn;

/// Stores `s` with its index entries: a cron in its app's cron index; a one-time schedule
/// or run in the (app, time) index and, while pending, in the time index; a run also in
/// its cron's run index.
pub fn insert(txn: &mut SmTxn, s: &Schedule) -> io::Result<()> {
    txn.put(&keys::schedule(&s.id), s)?;
    if pending::counts(s) {
        pending::add(txn, s, 1)?;
    }
    if s.is_cron() {
        return txn.put(&keys::app_cron(&s.app_id, &s.id), &());
    }
    if let Some(cron) = s.parent {
        txn.put(&keys::run(&cron, s.schedule_time, &s.id), &())?;
    }
    if s.status == Status::Scheduled {
        txn.put(&keys::due(s.due_time(), &s.id), &())?;
    }
    txn.put(&keys::app_time(&s.app_id, s.schedule_time, &s.id), &())
}

/// Removes `s` and its index entries.
pub fn remove(txn: &mut SmTxn, s: &Schedule) -> io::Result<()> {
    txn.delete(&keys::schedule(&s.id));
    if pending::counts(s) {
        pending::add(txn, s, -1)?;
    }
    if s.is_cron() {
        txn.delete(&keys::app_cron(&s.app_id, &s.id));
        return Ok(());
    }
    match s.claim {
        Some(c) => txn.delete(&keys::claim(c.deadline_ms, &s.id)),
        None => txn.delete(&keys::due(s.due_time(), &s.id)),
    }
    if let Some(cron) = s.parent {
        txn.delete(&keys::run(&cron, s.schedule_time, &s.id));
    }
    txn.delete(&keys::app_time(&s.app_id, s.schedule_time, &s.id));
    Ok(())
}

/// Makes a finished one-time schedule or run due again at `at`; others are left alone.
/// Returns whether it was re-armed.
pub fn rearm(txn: &mut SmTxn, s: &mut Schedule, at: i64) -> io::Result<bool> {
    if s.is_cron() || !matches!(s.status, Status::Success | Status::Failure | Status::Miss) {
        return Ok(false);
    }
    s.status = Status::Scheduled;
    s.error_message = None;
    s.claim = None;
    s.due_at = Some(at);
    txn.put(&keys::schedule(&s.id), &*s)?;
    txn.put(&keys::due(at, &s.id), &())?;
    pending::add(txn, s, 1)?;
    Ok(true)
}
