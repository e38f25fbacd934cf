//! Claims and outcomes of runs in a shard. A leader claims due runs (moving them from the
//! time index `t` to the claim index `k`) and only then calls back; the outcome it commits
//! afterwards finishes the run. Claims whose deadline passed without an outcome may be
//! claimed again. Times come from the commands, never the clock.

use std::collections::HashMap;
use std::io;

use uuid::Uuid;

use super::keys;
use crate::cron::Overlap;
use crate::schedule::run::{Claim, Fence, Outcome, MAX_ATTEMPTS_KEPT};
use crate::schedule::{Schedule, Status};
use crate::store::txn::{SmReader, SmTxn};

/// Claims, for `node` until `deadline_ms`, each listed run that is pending and unclaimed or
/// whose claim expired by `at_ms`; `attempts[i]` is how many calls the claim of `ids[i]`
/// may make. Returns the runs claimed (others are skipped). A run claimed again numbers
/// its calls after every number the expired claim could have used, so attempt numbers
/// strictly increase across claimers.
pub fn claim(
    txn: &mut SmTxn,
    ids: &[Uuid],
    attempts: &[u32],
    node: u64,
    deadline_ms: u64,
    at_ms: u64,
) -> io::Result<Vec<Schedule>> {
    let mut claimed = Vec::with_capacity(ids.len());
    let mut crons = HashMap::new();
    for (i, id) in ids.iter().enumerate() {
        let Some(mut s) = txn.get::<Schedule>(&keys::schedule(id))? else {
            continue;
        };
        if s.status != Status::Scheduled || s.is_cron() {
            continue;
        }
        if s.claim.is_none() {
            match turn(txn, &mut crons, &s, at_ms)? {
                Turn::Now => {}
                Turn::Miss(why) => {
                    record(txn, &[Outcome::miss(*id, why)])?;
                    continue;
                }
                // It stays due; the previous run's outcome wakes the timer for it.
                Turn::Later => continue,
            }
        }
        let first_attempt = match s.claim {
            Some(c) if c.deadline_ms > at_ms => continue,
            Some(c) => {
                txn.delete(&keys::claim(c.deadline_ms, id));
                // Unknown (0) for claims recorded before their call count was: at least one.
                let used = c.first_attempt + c.attempts.max(1);
                used.max(s.attempt_count() + 1)
            }
            None => {
                txn.delete(&keys::due(s.due_time(), id));
                s.attempt_count() + 1
            }
        };
        s.claim = Some(Claim {
            node,
            deadline_ms,
            first_attempt,
            attempts: attempts.get(i).copied().unwrap_or(0),
        });
        txn.put(&keys::schedule(id), &s)?;
        txn.put(&keys::claim(deadline_ms, id), &())?;
        claimed.push(s);
    }
    super::cron_runs::inherit_payloads(&mut claimed, |id| txn.get(&keys::schedule(id)))?;
    Ok(claimed)
}

/// Whether a run of a cron may be claimed now, under the cron's overlap policy.
enum Turn {
    Now,
    /// Not at all: it ends MISS with this reason.
    Miss(&'static str),
    /// Once the cron's previous run has finished (BUFFER_ONE).
    Later,
}

/// The turn of run `s`, about to be claimed at `at_ms`, under its cron's overlap policy:
/// while the cron's last claimed run is in flight (claimed, unfinished, its claim not
/// expired), SKIP makes it MISS and BUFFER_ONE lets it wait — one run at most: a second
/// one falling due meanwhile is MISS. A run claimed becomes its cron's last claimed run.
/// Crons are read once per claim entry (`crons`).
fn turn(
    txn: &mut SmTxn,
    crons: &mut HashMap<Uuid, Overlap>,
    s: &Schedule,
    at_ms: u64,
) -> io::Result<Turn> {
    let Some(cron) = s.parent else {
        return Ok(Turn::Now);
    };
    let policy = match crons.get(&cron) {
        Some(p) => *p,
        None => {
            let c = txn.get::<Schedule>(&keys::schedule(&cron))?;
            let p = c.and_then(|c| c.cron).map(|spec| spec.overlap_policy);
            *crons.entry(cron).or_insert(p.unwrap_or_default())
        }
    };
    if policy == Overlap::Allow {
        return Ok(Turn::Now);
    }
    let last = keys::last_claimed(&cron);
    let in_flight = |id: &Uuid| -> io::Result<bool> {
        let prev = txn.get::<Schedule>(&keys::schedule(id))?;
        Ok(prev.is_some_and(|p| {
            p.status == Status::Scheduled && p.claim.is_some_and(|c| c.deadline_ms > at_ms)
        }))
    };
    let busy = match txn.get::<Uuid>(&last)?.filter(|p| *p != s.id) {
        Some(previous) => in_flight(&previous)?,
        None => false,
    };
    let waiting = keys::waiting(&cron);
    if !busy {
        txn.put(&last, &s.id)?;
        if txn.get::<Uuid>(&waiting)? == Some(s.id) {
            txn.delete(&waiting);
        }
        return Ok(Turn::Now);
    }
    if policy == Overlap::Skip {
        return Ok(Turn::Miss(
            "previous run still in flight (overlapPolicy SKIP)",
        ));
    }
    if let Some(other) = txn.get::<Uuid>(&waiting)?.filter(|w| *w != s.id) {
        let still = txn.get::<Schedule>(&keys::schedule(&other))?;
        if still.is_some_and(|w| w.status == Status::Scheduled && w.claim.is_none()) {
            return Ok(Turn::Miss(
                "another run is already waiting for the previous one (overlapPolicy BUFFER_ONE)",
            ));
        }
    }
    txn.put(&waiting, &s.id)?;
    Ok(Turn::Later)
}

/// When run `s` of a cron has finished: the cron's run waiting for it (BUFFER_ONE), if
/// any, is written to the time index again, which wakes the timer for it.
fn wake_waiting(txn: &mut SmTxn, s: &Schedule) -> io::Result<()> {
    let Some(cron) = s.parent else {
        return Ok(());
    };
    let Some(w) = txn.get::<Uuid>(&keys::waiting(&cron))? else {
        return Ok(());
    };
    if let Some(run) = txn.get::<Schedule>(&keys::schedule(&w))? {
        if run.status == Status::Scheduled && run.claim.is_none() {
            txn.put(&keys::due(run.due_time(), &w), &())?;
        }
    }
    Ok(())
}

/// Whether outcome `o` may finish run `s` (pending): only in the state its fence names —
/// under the claim it was made for, or (a MISS) while nobody has claimed the run.
fn admits(o: &Outcome, s: &Schedule) -> bool {
    match o.fence {
        Fence::Unfenced => s.claim.is_some() || o.status == Status::Miss,
        Fence::Unclaimed => s.claim.is_none() && o.status == Status::Miss,
        fence @ Fence::Claim { .. } => s.claim.map(|c| c.fence()) == Some(fence),
    }
}

/// Finishes runs whose outcome's fence matches their state (see [`admits`]). Runs already
/// finished, deleted, re-armed or claimed again are left alone. Returns how many ended.
pub fn record(txn: &mut SmTxn, outcomes: &[Outcome]) -> io::Result<usize> {
    let mut ended = 0;
    for o in outcomes {
        let Some(mut s) = txn.get::<Schedule>(&keys::schedule(&o.id))? else {
            continue;
        };
        if s.status != Status::Scheduled || s.is_cron() || !admits(o, &s) {
            continue;
        }
        match s.claim.take() {
            Some(c) => txn.delete(&keys::claim(c.deadline_ms, &o.id)),
            None => txn.delete(&keys::due(s.due_time(), &o.id)),
        }
        s.status = o.status;
        if !super::pending::counts(&s) {
            super::pending::add(txn, &s, -1)?;
        }
        s.error_message = o.reason.clone();
        s.attempts.extend(o.attempts.iter().cloned());
        let excess = s.attempts.len().saturating_sub(MAX_ATTEMPTS_KEPT);
        s.attempts.drain(..excess);
        txn.put(&keys::schedule(&o.id), &s)?;
        wake_waiting(txn, &s)?;
        ended += 1;
    }
    Ok(ended)
}

/// Up to `limit` pending runs due at or before `until` (epoch seconds), from `from` on,
/// in time order.
pub fn due_runs(
    reader: &SmReader,
    from: i64,
    until: i64,
    limit: usize,
) -> io::Result<Vec<(i64, Uuid)>> {
    let mut out = Vec::new();
    let stop = keys::due(until.saturating_add(1), &Uuid::nil());
    reader.scan_from(&keys::due(from, &Uuid::nil()), |k, _| {
        if k >= stop.as_slice() || k.first() != Some(&keys::TIME) || out.len() >= limit {
            return Ok(false);
        }
        out.push(keys::time_and_id(k));
        Ok(true)
    })?;
    Ok(out)
}

/// Up to `limit` claimed runs whose claim deadline is in `[from_ms, until_ms]`.
pub fn expired_claims(
    reader: &SmReader,
    from_ms: u64,
    until_ms: u64,
    limit: usize,
) -> io::Result<Vec<Uuid>> {
    let mut out = Vec::new();
    reader.scan_from(&keys::claim(from_ms, &Uuid::nil()), |k, _| {
        if k.first() != Some(&keys::CLAIM) || out.len() >= limit {
            return Ok(false);
        }
        let (deadline, id) = keys::claim_deadline_and_id(k);
        if deadline > until_ms {
            return Ok(false);
        }
        out.push(id);
        Ok(true)
    })?;
    Ok(out)
}
