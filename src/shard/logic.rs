//! Applying shard commands: pure functions of the committed state and the command (no
//! clock, no randomness), so every replica holds the same bytes.

use std::io;
use std::sync::Arc;

use uuid::Uuid;

use super::due_signal::DueSignal;
use super::index::{insert, rearm, remove};
use super::{audit, claims, cron_runs, idempotency, keys, pending, retention, update};
use crate::command::{
    Command, CommandResult, CreateKey, Created, RejectReason, Rejection, SchedulerLog, ShardCommand,
};
use crate::raft::GroupLogic;
use crate::schedule::{Schedule, Status};
use crate::store::txn::SmTxn;

/// A shard's logic: schedules, runs, claims and outcomes. Tells the shard's timer (through
/// `due`) about runs it writes that fall due.
#[derive(Default)]
pub struct ShardLogic {
    pub due: Arc<DueSignal>,
}

impl GroupLogic<SchedulerLog> for ShardLogic {
    fn apply(&self, txn: &mut SmTxn, cmd: &Command) -> io::Result<CommandResult> {
        match cmd {
            Command::Shard(cmd) => apply(txn, cmd),
            other => Ok(CommandResult::Rejected(Rejection::new(
                RejectReason::Conflict,
                format!("command {other} is not for a shard"),
            ))),
        }
    }

    fn after_commit(&self, written: &SmTxn) {
        if let Some(k) = written.first_put_with_prefix(&[keys::TIME]) {
            let due = keys::time_and_id(k).0;
            self.due.written(due, chrono::Utc::now().timestamp());
        }
    }
}

pub fn apply(txn: &mut SmTxn, cmd: &ShardCommand) -> io::Result<CommandResult> {
    match cmd {
        ShardCommand::CreateSchedules {
            schedules,
            keys,
            first_runs,
            pending_caps,
            proposed_once,
        } => {
            let first_runs = first_runs.unwrap_or(cron_runs::MAX_RUNS_PER_REFILL);
            let mut created = Vec::with_capacity(schedules.len());
            for (i, s) in schedules.iter().enumerate() {
                let key = keys.get(i).and_then(Option::as_ref);
                let cap = pending_caps.get(&s.app_id).copied();
                let look = key.is_some() || !proposed_once;
                created.push(create(txn, s, look, key, first_runs, cap)?);
            }
            Ok(CommandResult::Created(created))
        }
        ShardCommand::DeleteSchedule { id, at_ms } => delete(txn, id, (*at_ms / 1000) as i64),
        ShardCommand::SetPaused {
            id,
            paused,
            at,
            catch_up_from,
        } => set_paused(txn, id, *paused, *at, *catch_up_from),
        ShardCommand::TriggerRun { id, run_id, at } => trigger(txn, id, run_id, *at),
        ShardCommand::UpdateSchedule { id, change, at } => {
            Ok(match update::update(txn, id, change, *at)? {
                Ok(updated) => CommandResult::Schedules(vec![updated]),
                Err(refused) => refused,
            })
        }
        ShardCommand::DeleteSchedules { ids, at_ms } => {
            let mut deleted = vec![];
            for id in ids {
                if let CommandResult::Schedules(s) = delete(txn, id, (*at_ms / 1000) as i64)? {
                    deleted.extend(s);
                }
            }
            Ok(CommandResult::Schedules(deleted))
        }
        ShardCommand::ReconcileSchedules { ids, at } => {
            let mut rearmed = vec![];
            for id in ids {
                if let Some(mut s) = txn.get::<Schedule>(&keys::schedule(id))? {
                    if rearm(txn, &mut s, *at)? {
                        rearmed.push(s);
                    }
                }
            }
            Ok(CommandResult::Schedules(rearmed))
        }
        ShardCommand::PurgeFinished {
            cutoffs,
            limit,
            keys_before_ms,
        } => {
            retention::purge(txn, cutoffs, *limit)?;
            audit::purge(txn, cutoffs, *limit)?;
            if *keys_before_ms > 0 {
                idempotency::forget(txn, *keys_before_ms, *limit)?;
            }
            Ok(CommandResult::None)
        }
        ShardCommand::RefillCrons { now, limit } => {
            cron_runs::refill(txn, *now, *limit)?;
            Ok(CommandResult::None)
        }
        ShardCommand::ClaimRuns {
            ids,
            node,
            deadline_ms,
            at_ms,
            attempts,
        } => Ok(CommandResult::Schedules(claims::claim(
            txn,
            ids,
            attempts,
            *node,
            *deadline_ms,
            *at_ms,
        )?)),
        ShardCommand::RecordOutcomes { outcomes } => {
            claims::record(txn, outcomes)?;
            Ok(CommandResult::None)
        }
        ShardCommand::Audited { by, cmd } => audit::audited(txn, by, cmd, apply),
    }
}

/// Stores a new schedule (for a cron, with its first `first_runs` runs). When `look` says
/// a create of this id may have been applied before (a key, or a command from an older
/// build), the stored schedule is answered unchanged, so a retry of an unknown outcome is
/// harmless; the look costs a point read, and nearly all creates are proposed once and
/// skip it. A one-time schedule whose partition holds `pending_cap` pending schedules
/// already is refused.
fn create(
    txn: &mut SmTxn,
    s: &Schedule,
    look: bool,
    key: Option<&CreateKey>,
    first_runs: usize,
    pending_cap: Option<u64>,
) -> io::Result<Created> {
    if look {
        if let Some(existing) = txn.get::<Schedule>(&keys::schedule(&s.id))? {
            // The same create applied again (a retried write): answered as it was.
            return Ok(Created::New(existing));
        }
    }
    if let Some(key) = key {
        if let Some(answer) = idempotency::earlier_use(txn, &s.app_id, key, s.created_at_ms)? {
            return Ok(answer);
        }
    }
    if let Some(cap) = pending_cap.filter(|_| !s.is_cron()) {
        if pending::of(txn, &s.app_id, s.partition)? >= cap {
            return Ok(Created::Refused(Rejection::new(
                RejectReason::TooMany,
                format!(
                    "app {} has {cap} pending schedules in its partition {}, its share of \
                     limits.max_pending_per_app: delete some or let them fire first",
                    s.app_id, s.partition
                ),
            )));
        }
    }
    let mut s = s.clone();
    insert(txn, &s)?;
    if let Some(key) = key {
        idempotency::remember(txn, &s, key)?;
    }
    if s.is_cron() {
        let now = (s.created_at_ms / 1000) as i64;
        cron_runs::materialise(txn, &mut s, now, first_runs)?;
    }
    Ok(Created::New(s))
}

/// Adds run `run_id` of cron `id` (SCHEDULED or PAUSED), due at `now`; a repeat of the
/// command answers the run it made.
fn trigger(txn: &mut SmTxn, id: &Uuid, run_id: &Uuid, now: i64) -> io::Result<CommandResult> {
    if let Some(run) = txn.get::<Schedule>(&keys::schedule(run_id))? {
        return Ok(CommandResult::Schedules(vec![run]));
    }
    let cron = match cron_in_state(txn, id, &[Status::Scheduled, Status::Paused], "Scheduled")? {
        Ok(cron) => cron,
        Err(refused) => return Ok(refused),
    };
    let run = cron_runs::trigger(txn, &cron, *run_id, now)?;
    Ok(CommandResult::Schedules(vec![run]))
}

/// Cron `id` if it is in one of `states`; else the refusal (`state`: what it should be).
fn cron_in_state(
    txn: &SmTxn,
    id: &Uuid,
    states: &[Status],
    state: &str,
) -> io::Result<Result<Schedule, CommandResult>> {
    let refuse =
        |reason, message: String| Err(CommandResult::Rejected(Rejection::new(reason, message)));
    let Some(s) = txn.get::<Schedule>(&keys::schedule(id))? else {
        return Ok(refuse(
            RejectReason::NotFound,
            format!("Schedule with id: {id} not found"),
        ));
    };
    if !s.is_cron() {
        let message = format!("Schedule with id: {id} is not a recurring schedule");
        return Ok(refuse(RejectReason::WrongState, message));
    }
    if !states.contains(&s.status) {
        let message = format!("Schedule with id: {id} is not in {state} state");
        return Ok(refuse(RejectReason::WrongState, message));
    }
    Ok(Ok(s))
}

/// Pauses or resumes cron `id` at `now`. Pausing a paused cron (resuming a scheduled one)
/// changes nothing and answers it as it is.
fn set_paused(
    txn: &mut SmTxn,
    id: &Uuid,
    pause: bool,
    now: i64,
    catch_up_from: Option<i64>,
) -> io::Result<CommandResult> {
    let (from, to, state) = match pause {
        true => (Status::Scheduled, Status::Paused, "Scheduled"),
        false => (Status::Paused, Status::Scheduled, "Paused"),
    };
    let mut s = match cron_in_state(txn, id, &[from, to], state)? {
        Ok(cron) => cron,
        Err(refused) => return Ok(refused),
    };
    if s.status == from {
        if pause {
            cron_runs::pause(txn, &mut s, now)?;
        } else {
            cron_runs::resume(txn, &mut s, now, catch_up_from)?;
        }
    }
    Ok(CommandResult::Schedules(vec![s]))
}

/// Deletes a schedule: a one-time schedule (or run) is removed for good, so a second
/// delete is 404; a cron is soft-deleted (DELETED) and its runs not yet due removed.
fn delete(txn: &mut SmTxn, id: &Uuid, now: i64) -> io::Result<CommandResult> {
    let not_found = || CommandResult::Rejected(Rejection::new(RejectReason::NotFound, "not found"));
    let Some(mut s) = txn.get::<Schedule>(&keys::schedule(id))? else {
        return Ok(not_found());
    };
    if s.is_cron() {
        if s.status == Status::Deleted {
            return Ok(not_found());
        }
        cron_runs::delete(txn, &mut s, now)?;
    } else {
        remove(txn, &s)?;
    }
    Ok(CommandResult::Schedules(vec![s]))
}
