//! Cron runs in a shard: a cron's runs are materialised ahead as child schedules (so the
//! firing engine and `runs?when=future` see them), refilled as time passes, and removed
//! when the cron is deleted. Every time used comes from the command, never the clock.

use std::collections::BTreeSet;
use std::io;

use uuid::Uuid;

use super::index::{insert, remove};
use super::keys;
use crate::schedule::{id, Schedule, Status};
use crate::store::txn::SmTxn;

/// Runs are materialised at most this far ahead.
pub const RUN_WINDOW_SECS: i64 = 3600;
/// A cron is refilled once its runs reach less than this far ahead.
pub const REFILL_AHEAD_SECS: i64 = 300;
/// Most runs one refill of one cron adds.
pub const MAX_RUNS_PER_REFILL: usize = 120;
/// Runs a new cron gets in its create's entry; the refill worker (every second) adds the
/// rest, so a batch of crons costs its creates a bounded amount of work.
pub const FIRST_RUNS: usize = 10;

/// Materialises up to `max_runs` runs of `cron` after its horizon (or `now` for a new
/// cron), within the window, and moves its horizon. A run stores no payload: it shares its
/// cron's ([`inherit_payloads`]), so a run costs the same whatever the payload's size.
pub fn materialise(
    txn: &mut SmTxn,
    cron: &mut Schedule,
    now: i64,
    max_runs: usize,
) -> io::Result<usize> {
    plan(txn, cron, now, max_runs, &BTreeSet::new())
}

/// [`materialise`], leaving out the seconds in `kept` (runs of an earlier plan that stay:
/// claimed ones, whose records a new run of the same id would overwrite).
fn plan(
    txn: &mut SmTxn,
    cron: &mut Schedule,
    now: i64,
    max_runs: usize,
    kept: &BTreeSet<i64>,
) -> io::Result<usize> {
    let Some(spec) = &cron.cron else { return Ok(0) };
    let Ok(rule) = spec.rule() else { return Ok(0) };
    let from = cron.runs_until.unwrap_or(now);
    let window_end = now + RUN_WINDOW_SECS;
    let times = rule.upcoming(from, window_end, max_runs);
    let jitter = spec.jitter_seconds.unwrap_or(0);
    for &t in &times {
        let due = t + jitter_of(&cron.id, t, jitter);
        if !kept.contains(&due) {
            insert(txn, &run_of(cron, id::run_id(cron.id, t), due, now))?;
        }
    }
    // A full batch ends at its last run; otherwise nothing is due before the window's end.
    let until = match times.last() {
        Some(&last) if times.len() == max_runs => last,
        _ => window_end.max(from),
    };
    if let Some(old) = cron.runs_until {
        txn.delete(&keys::horizon(old, &cron.id));
    }
    cron.runs_until = Some(until);
    // A rule whose window has ended needs no more refills.
    if !rule.ended_by(until) {
        txn.put(&keys::horizon(until, &cron.id), &())?;
    }
    txn.put(&keys::schedule(&cron.id), &*cron)?;
    Ok(times.len())
}

/// The fixed offset in `[0, jitter)` seconds of `cron`'s run at `t`: a hash of both, so
/// every replica (and every plan of the same rule) computes the same.
fn jitter_of(cron: &Uuid, t: i64, jitter: u32) -> i64 {
    if jitter == 0 {
        return 0;
    }
    let id = cron.as_u128();
    let mut x = (id as u64) ^ ((id >> 64) as u64) ^ (t as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    // splitmix64's finaliser.
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x % u64::from(jitter)) as i64
}

/// A run of `cron` due at `t` with id `run_id`, made at `now`. It stores no payload: it
/// shares its cron's ([`inherit_payloads`]).
fn run_of(cron: &Schedule, run_id: Uuid, t: i64, now: i64) -> Schedule {
    Schedule {
        id: run_id,
        app_id: cron.app_id.clone(),
        partition: cron.partition,
        payload: String::new(),
        schedule_time: t,
        cron: None,
        parent: Some(cron.id),
        runs_until: None,
        due_at: None,
        callback: cron.callback.clone(),
        status: Status::Scheduled,
        error_message: None,
        created_at_ms: (now as u64) * 1000,
        claim: None,
        attempts: vec![],
    }
}

/// One extra run of `cron` due at `now` with its own id `run_id` (trigger-now); the
/// cron's plan is left as it is.
pub fn trigger(txn: &mut SmTxn, cron: &Schedule, run_id: Uuid, now: i64) -> io::Result<Schedule> {
    let run = run_of(cron, run_id, now, now);
    insert(txn, &run)?;
    Ok(run)
}

/// Refills up to `limit` crons whose runs reach less than [`REFILL_AHEAD_SECS`] past `now`.
pub fn refill(txn: &mut SmTxn, now: i64, limit: usize) -> io::Result<usize> {
    let mut due = Vec::new();
    let stop = keys::horizon(now + REFILL_AHEAD_SECS, &Uuid::nil());
    txn.scan_from(&[keys::HORIZON], |k, _| {
        if k >= stop.as_slice() || due.len() >= limit {
            return Ok(false);
        }
        due.push(keys::trailing_id(k));
        Ok(true)
    })?;
    let mut runs = 0;
    for cron_id in due {
        if let Some(mut cron) = txn.get::<Schedule>(&keys::schedule(&cron_id))? {
            runs += materialise(txn, &mut cron, now, MAX_RUNS_PER_REFILL)?;
        }
    }
    Ok(runs)
}

/// Whether some cron of this shard needs a refill at `now` (a cheap look at the first
/// horizon entry, for the leader deciding whether to propose one).
pub fn refill_due(reader: &crate::store::txn::SmReader, now: i64) -> io::Result<bool> {
    let stop = keys::horizon(now + REFILL_AHEAD_SECS, &Uuid::nil());
    let mut due = false;
    reader.scan_from(&[keys::HORIZON], |k, _| {
        due = k.first() == Some(&keys::HORIZON) && k < stop.as_slice();
        Ok(false)
    })?;
    Ok(due)
}

/// Soft-deletes `cron` at `now`: status DELETED, no more refills, and its runs not yet due
/// are removed (runs at or before `now` stay, with their outcomes).
pub fn delete(txn: &mut SmTxn, cron: &mut Schedule, now: i64) -> io::Result<()> {
    txn.delete(&keys::last_claimed(&cron.id));
    txn.delete(&keys::waiting(&cron.id));
    stop(txn, cron, now, Status::Deleted, |_| true).map(|_| ())
}

/// Pauses `cron` at `now`: status PAUSED, no more refills, its runs not yet due and not
/// claimed are removed (a claimed run finishes as it was).
pub fn pause(txn: &mut SmTxn, cron: &mut Schedule, now: i64) -> io::Result<()> {
    stop(txn, cron, now, Status::Paused, |run| run.claim.is_none()).map(|_| ())
}

/// Resumes a paused `cron` at `now`: SCHEDULED again, its runs planned from now on — or,
/// to catch up, from `catch_up_from` (the runs it missed while paused since then fall due
/// at once; runs made before the pause are not made again). With jitter, a catch-up may
/// leave out a second whose run would have fallen due after the latest run made.
pub fn resume(
    txn: &mut SmTxn,
    cron: &mut Schedule,
    now: i64,
    catch_up_from: Option<i64>,
) -> io::Result<()> {
    let from = catch_up_from.map_or(now, |f| f.min(now));
    // The runs made before the pause (and any claimed as it landed) stay; the plan goes
    // on after the latest of them, so refills never make one of them again.
    let made: BTreeSet<i64> = future_runs(txn, &cron.id, from)?
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    cron.status = Status::Scheduled;
    cron.runs_until = Some(made.last().copied().unwrap_or(from).max(from));
    plan(txn, cron, now, FIRST_RUNS, &made).map(|_| ())
}

/// Plans a changed `cron` again from `now`: its future runs not yet claimed are replaced
/// by the new plan's (claimed ones finish as they were).
pub fn replan(txn: &mut SmTxn, cron: &mut Schedule, now: i64) -> io::Result<()> {
    let kept = stop(txn, cron, now, Status::Scheduled, |run| run.claim.is_none())?;
    plan(txn, cron, now, FIRST_RUNS, &kept).map(|_| ())
}

/// The runs of cron `id` due after `now`: (time, run id), soonest first.
fn future_runs(txn: &SmTxn, id: &Uuid, now: i64) -> io::Result<Vec<(i64, Uuid)>> {
    let mut future = Vec::new();
    let from = keys::run(id, now + 1, &Uuid::nil());
    let prefix = keys::runs_prefix(id);
    txn.scan_from(&from, |k, _| {
        if !k.starts_with(&prefix) {
            return Ok(false);
        }
        future.push(keys::time_and_id(k));
        Ok(true)
    })?;
    Ok(future)
}

/// Ends `cron`'s plan at `now` with `status`: no more refills; its runs after `now` still
/// SCHEDULED and `removable` are removed. Answers the seconds of the future runs kept.
fn stop(
    txn: &mut SmTxn,
    cron: &mut Schedule,
    now: i64,
    status: Status,
    removable: impl Fn(&Schedule) -> bool,
) -> io::Result<BTreeSet<i64>> {
    let mut kept = BTreeSet::new();
    for (t, run_id) in future_runs(txn, &cron.id, now)? {
        if let Some(run) = txn.get::<Schedule>(&keys::schedule(&run_id))? {
            if run.status == Status::Scheduled && removable(&run) {
                remove(txn, &run)?;
            } else {
                kept.insert(t);
            }
        }
    }
    if let Some(until) = cron.runs_until.take() {
        txn.delete(&keys::horizon(until, &cron.id));
    }
    cron.status = status;
    txn.put(&keys::schedule(&cron.id), &*cron)?;
    Ok(kept)
}

/// Cron payloads read once each, for runs stored without one.
#[derive(Default)]
pub struct CronPayloads(std::collections::HashMap<Uuid, Option<String>>);

impl CronPayloads {
    /// Gives `run`, if stored without a payload, its cron's (read through `cron_of` once
    /// per cron).
    pub fn fill(
        &mut self,
        run: &mut Schedule,
        cron_of: impl FnOnce(&Uuid) -> io::Result<Option<Schedule>>,
    ) -> io::Result<()> {
        let Some(cron) = run.parent.filter(|_| run.payload.is_empty()) else {
            return Ok(());
        };
        let payload = match self.0.entry(cron) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(new) => {
                new.insert(cron_of(&cron)?.map(|c| c.payload))
            }
        };
        if let Some(p) = payload {
            run.payload = p.clone();
        }
        Ok(())
    }
}

/// Gives each run stored without a payload its cron's (read through `cron_of`, once per
/// cron). Runs materialised before runs shared their cron's payload keep their own copy.
pub fn inherit_payloads(
    runs: &mut [Schedule],
    mut cron_of: impl FnMut(&Uuid) -> io::Result<Option<Schedule>>,
) -> io::Result<()> {
    let mut payloads = CronPayloads::default();
    for run in runs.iter_mut() {
        payloads.fill(run, &mut cron_of)?;
    }
    Ok(())
}
