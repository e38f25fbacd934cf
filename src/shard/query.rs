//! Answering shard queries from the applied state (the caller makes them linearizable).

use std::io;

use uuid::Uuid;

use super::{audit, keys};
use crate::command::{AppPage, QueryResult, ShardQuery, When};
use crate::schedule::page::Cursor;
use crate::schedule::{Schedule, Status};
use crate::store::txn::SmReader;

pub fn query(reader: &SmReader, q: &ShardQuery) -> io::Result<QueryResult> {
    Ok(match q {
        ShardQuery::GetSchedule { id } => {
            let mut found: Vec<Schedule> = reader.get(&keys::schedule(id))?.into_iter().collect();
            super::cron_runs::inherit_payloads(&mut found, |cron| {
                reader.get(&keys::schedule(cron))
            })?;
            QueryResult::Schedules(found)
        }
        ShardQuery::AppSchedules(page) => app_schedules(reader, page)?,
        ShardQuery::ScheduleRuns {
            id,
            when,
            now,
            before,
            limit,
        } => {
            let (schedules, examined_to) = runs(reader, id, *when, *now, *before, *limit)?;
            QueryResult::Page {
                schedules,
                examined_to,
            }
        }
        ShardQuery::AppCrons {
            app_id,
            status,
            limit,
            after,
        } => {
            let (mut crons, mut bytes) = (Vec::new(), 0);
            let mut examined_to =
                each_cron(reader, app_id, *status, *after, PAGE_KEYS_BUDGET, |c| {
                    bytes += c.payload.len();
                    crons.push(c);
                    crons.len() < *limit && bytes < PAGE_BYTES_BUDGET
                })?;
            if bytes >= PAGE_BYTES_BUDGET {
                examined_to = crons.last().map(|c| c.id);
            }
            QueryResult::CronPage { crons, examined_to }
        }
        ShardQuery::CountAppCrons { app_id, limit } => {
            // A paused cron keeps its place: resuming it must not exceed the limit.
            let mut n = 0;
            each_cron(reader, app_id, None, None, usize::MAX, |c| {
                n += usize::from(matches!(c.status, Status::Scheduled | Status::Paused));
                n < *limit
            })?;
            QueryResult::Count(n)
        }
        ShardQuery::AuditLog { id, app_id, limit } => {
            QueryResult::Audit(audit::log(reader, id, app_id, *limit)?)
        }
    })
}

/// Most index keys one shard looks at for one page (a status filter may match few).
const PAGE_KEYS_BUDGET: usize = 20_000;
/// Most bytes of schedules one shard answers for one page (payloads included).
const PAGE_BYTES_BUDGET: usize = 8 << 20;

/// The schedules of `page` in this shard: time in `[start, end]`, by (time, id), strictly
/// after `after`, at most `limit` — or fewer when [`PAGE_KEYS_BUDGET`] keys were looked at
/// or [`PAGE_BYTES_BUDGET`] bytes gathered, saying where it stopped (`examined_to`).
fn app_schedules(reader: &SmReader, page: &AppPage) -> io::Result<QueryResult> {
    let &AppPage {
        ref app_id,
        start,
        end,
        after,
        status,
        limit,
    } = page;
    let prefix = keys::app_prefix(app_id);
    let from = match after {
        // Strictly after the cursor: the smallest key greater than its own.
        Some(c) if c.time >= start => [keys::app_time(app_id, c.time, &c.id), vec![0]].concat(),
        _ => keys::app_time(app_id, start, &Uuid::nil()),
    };
    let (mut out, mut looked, mut bytes) = (Vec::new(), 0, 0);
    let mut examined_to = None;
    let mut payloads = super::cron_runs::CronPayloads::default();
    reader.scan_from(&from, |k, _| {
        if !k.starts_with(&prefix) || out.len() >= limit {
            return Ok(false);
        }
        let (time, id) = keys::time_and_id(k);
        if time > end {
            return Ok(false);
        }
        if let Some(mut s) = reader.get::<Schedule>(&keys::schedule(&id))? {
            if status.is_none_or(|st| st == s.status) {
                payloads.fill(&mut s, |cron| reader.get(&keys::schedule(cron)))?;
                bytes += s.payload.len() + 512;
                out.push(s);
            }
        }
        looked += 1;
        if out.len() < limit && (looked >= PAGE_KEYS_BUDGET || bytes >= PAGE_BYTES_BUDGET) {
            examined_to = Some(Cursor { time, id });
            return Ok(false);
        }
        Ok(true)
    })?;
    Ok(QueryResult::Page {
        schedules: out,
        examined_to,
    })
}

/// The runs of schedule `id` — future ones soonest first, past (or all) ones latest first —
/// each page past `cursor` in that order: a cron's materialised runs (with its payload), or
/// a one-time schedule itself. A page of runs carrying the cron's payload holds no more
/// than [`PAGE_BYTES_BUDGET`] of them; cut there, it says after which run it stopped.
fn runs(
    reader: &SmReader,
    id: &Uuid,
    when: When,
    now: i64,
    cursor: Option<Cursor>,
    limit: usize,
) -> io::Result<(Vec<Schedule>, Option<Cursor>)> {
    let in_range = |t: i64| match when {
        // A run due in the current second is past: it fires now, and may have fired already.
        When::Past => t <= now,
        When::Future => t > now,
        When::All => true,
    };
    let Some(s) = reader.get::<Schedule>(&keys::schedule(id))? else {
        return Ok((vec![], None));
    };
    if !s.is_cron() {
        let past_cursor = cursor.is_none_or(|c| match when {
            When::Future => Cursor::of(&s) > c,
            _ => Cursor::of(&s) < c,
        });
        let found = (in_range(s.schedule_time) && past_cursor).then_some(s);
        return Ok((found.into_iter().collect(), None));
    }
    let fit = (PAGE_BYTES_BUDGET / (s.payload.len() + 512)).max(1);
    let cut_at = fit.min(limit);
    let prefix = keys::runs_prefix(id);
    let mut out: Vec<Schedule> = Vec::new();
    // Each run as read: runs share the cron's payload (read above) unless they kept a copy.
    let load = |run_id: Uuid| -> io::Result<Option<Schedule>> {
        let run = reader.get::<Schedule>(&keys::schedule(&run_id))?;
        Ok(run.map(|mut run| {
            if run.payload.is_empty() {
                run.payload.clone_from(&s.payload);
            }
            run
        }))
    };
    if when == When::Future {
        // Soonest first: from the next second (or past the cursor) forward. Run keys sort
        // by time, so every key from `start` on is future.
        let start = match cursor {
            Some(c) if c.time > now => keys::run(id, c.time, &c.id),
            _ => keys::run(id, now + 1, &Uuid::nil()),
        };
        reader.scan_from(&start, |k, _| {
            if !k.starts_with(&prefix) || out.len() >= cut_at {
                return Ok(false);
            }
            let (time, run_id) = keys::time_and_id(k);
            if cursor.is_some_and(|c| (time, run_id) <= (c.time, c.id)) {
                return Ok(true); // the cursor itself
            }
            out.extend(load(run_id)?);
            Ok(true)
        })?;
    } else {
        // Latest first: from the end (or before the cursor) backward.
        let start = match cursor {
            Some(c) => keys::run(id, c.time, &c.id),
            None => keys::run(id, i64::MAX, &Uuid::max()),
        };
        reader.scan_back_from(&start, |k, _| {
            if !k.starts_with(&prefix) || out.len() >= cut_at {
                return Ok(false);
            }
            let (time, run_id) = keys::time_and_id(k);
            if cursor.is_some_and(|c| (time, run_id) >= (c.time, c.id)) {
                return Ok(true); // the cursor itself
            }
            if in_range(time) {
                out.extend(load(run_id)?);
            }
            Ok(true)
        })?;
    }
    let cut = cut_at < limit && out.len() == cut_at;
    let examined_to = out.last().filter(|_| cut).map(Cursor::of);
    Ok((out, examined_to))
}

/// Calls `each` with the crons of an app with the given status (cron records only: no
/// runs), in id order, strictly after `after`, while it answers true. Looks at no more than
/// `key_budget` index keys; when it stops there, answers the last id it looked at.
fn each_cron(
    reader: &SmReader,
    app_id: &str,
    status: Option<Status>,
    after: Option<Uuid>,
    key_budget: usize,
    mut each: impl FnMut(Schedule) -> bool,
) -> io::Result<Option<Uuid>> {
    let prefix = keys::app_crons_prefix(app_id);
    let start = after.map_or_else(|| prefix.clone(), |id| keys::app_cron(app_id, &id));
    let (mut examined, mut stopped_at) = (0, None);
    reader.scan_from(&start, |k, _| {
        if !k.starts_with(&prefix) {
            return Ok(false);
        }
        if k == start.as_slice() && after.is_some() {
            return Ok(true);
        }
        let id = keys::trailing_id(k);
        examined += 1;
        if examined > key_budget {
            return Ok(false);
        }
        let mut go_on = true;
        if let Some(s) = reader.get::<Schedule>(&keys::schedule(&id))? {
            if status.is_none_or(|st| st == s.status) {
                go_on = each(s);
            }
        }
        if examined == key_budget {
            stopped_at = Some(id);
        }
        Ok(go_on)
    })?;
    Ok(stopped_at)
}
