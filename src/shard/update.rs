//! Changing a schedule in place. A cron (SCHEDULED or PAUSED) may get a new expression,
//! zone, payload or callback; a SCHEDULED one is planned again in the same entry, so no
//! run of the old plan that was not yet claimed fires after the change is acknowledged
//! (claimed runs finish as they were). A one-time schedule, while SCHEDULED and not yet
//! claimed, may get a new time, payload or callback.

use std::io;

use uuid::Uuid;

use super::index::{insert, remove};
use super::{cron_runs, keys};
use crate::command::{CommandResult, RejectReason, Rejection};
use crate::schedule::change::{self, ScheduleChange};
use crate::schedule::{Schedule, Status};
use crate::store::txn::SmTxn;

/// Applies `change` to schedule `id` at `now` (epoch seconds, the proposer's clock);
/// answers the schedule as it is now, or the refusal. (The audit log diffs the fields.)
pub fn update(
    txn: &mut SmTxn,
    id: &Uuid,
    change: &ScheduleChange,
    now: i64,
) -> io::Result<Result<Schedule, CommandResult>> {
    let refuse = |reason, message: String| {
        Ok(Err(CommandResult::Rejected(Rejection::new(
            reason, message,
        ))))
    };
    let Some(mut s) = txn.get::<Schedule>(&keys::schedule(id))? else {
        return refuse(
            RejectReason::NotFound,
            format!("Schedule with id: {id} not found"),
        );
    };
    if let Some(cron) = s.parent {
        let message = format!(
            "Schedule with id: {id} is a run of recurring schedule {cron}: change the schedule itself"
        );
        return refuse(RejectReason::WrongState, message);
    }
    let changeable = s.status == Status::Scheduled || (s.is_cron() && s.status == Status::Paused);
    if !changeable {
        let message = format!("Schedule with id: {id} is not in Scheduled state");
        return refuse(RejectReason::WrongState, message);
    }
    if s.claim.is_some() {
        let message = format!("Schedule with id: {id} is being fired: it can no longer be changed");
        return refuse(RejectReason::WrongState, message);
    }
    let before = s.clone();
    if let Err(e) = change.apply_to(&mut s) {
        return refuse(RejectReason::WrongState, format!("validation errors: {e}"));
    }
    if change::diff(&before, &s).is_empty() {
        return Ok(Ok(s));
    }
    if !s.is_cron() {
        remove(txn, &before)?;
        insert(txn, &s)?;
    } else if s.status == Status::Scheduled
        && (s.cron != before.cron || s.callback != before.callback)
    {
        // Runs share their cron's payload; a new rule or callback needs a new plan.
        cron_runs::replan(txn, &mut s, now)?;
    } else {
        txn.put(&keys::schedule(id), &s)?;
    }
    Ok(Ok(s))
}
