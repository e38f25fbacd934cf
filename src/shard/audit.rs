//! The audit log of each schedule: every change a client asked for (update, pause,
//! resume, trigger, delete, reconcile, by hand or by a bulk job), with when, through which
//! node and by whom, and for an update each changed field before and after. Entries are
//! written in the same entry as the change ([`ShardCommand::Audited`]), so the log and the
//! schedule never disagree; creates are not logged (the schedule's own record says when it
//! was made: the log shows it as its first entry), so creating costs nothing more. Entries
//! older than their app's retention are purged with its finished runs.

use std::collections::{HashMap, VecDeque};
use std::io;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys;
use crate::command::{Actor, CommandResult, ShardCommand};
use crate::schedule::change::{self, FieldChange};
use crate::schedule::Schedule;
use crate::store::txn::{SmReader, SmTxn};

/// What happened to a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum AuditAction {
    Create,
    Update,
    Pause,
    Resume,
    Trigger,
    Delete,
    Reconcile,
    /// Its app was deactivated: none of its runs fire until the app is activated.
    #[serde(rename = "APP_DEACTIVATE")]
    AppDeactivate,
    #[serde(rename = "APP_ACTIVATE")]
    AppActivate,
}

/// One entry of a schedule's audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub app_id: String,
    /// When (the clock of the node that took the request), epoch ms.
    pub at_ms: u64,
    pub action: AuditAction,
    /// The node whose gateway took the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<u64>,
    /// Who asked: `admin`, `app:<appId>` (an app token), `bulk-job:<jobId>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// What an update changed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<FieldChange>,
    /// The run a trigger made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<Uuid>,
}

/// Applies `cmd` for `by` (through `apply`) and logs what it changed.
pub fn audited(
    txn: &mut SmTxn,
    by: &Actor,
    cmd: &ShardCommand,
    apply: impl FnOnce(&mut SmTxn, &ShardCommand) -> io::Result<CommandResult>,
) -> io::Result<CommandResult> {
    let before = match cmd {
        ShardCommand::UpdateSchedule { id, .. } | ShardCommand::SetPaused { id, .. } => {
            txn.get::<Schedule>(&keys::schedule(id))?
        }
        _ => None,
    };
    let result = apply(txn, cmd)?;
    let CommandResult::Schedules(changed) = &result else {
        return Ok(result);
    };
    let entry = |s: &Schedule, action, changes, run_id| AuditEntry {
        app_id: s.app_id.clone(),
        at_ms: by.at_ms,
        action,
        node: Some(by.node),
        by: by.caller.clone(),
        changes,
        run_id,
    };
    match (cmd, before, changed.as_slice()) {
        (ShardCommand::UpdateSchedule { .. }, Some(before), [after]) => {
            let changes = change::diff(&before, after);
            if !changes.is_empty() {
                record(
                    txn,
                    after,
                    &entry(after, AuditAction::Update, changes, None),
                )?;
            }
        }
        (ShardCommand::SetPaused { paused, .. }, Some(before), [after])
            if before.status != after.status =>
        {
            let action = match paused {
                true => AuditAction::Pause,
                false => AuditAction::Resume,
            };
            record(txn, after, &entry(after, action, vec![], None))?;
        }
        (ShardCommand::TriggerRun { id, .. }, _, [run]) => {
            if let Some(cron) = txn.get::<Schedule>(&keys::schedule(id))? {
                let e = entry(&cron, AuditAction::Trigger, vec![], Some(run.id));
                record(txn, &cron, &e)?;
            }
        }
        (ShardCommand::DeleteSchedule { .. } | ShardCommand::DeleteSchedules { .. }, _, gone) => {
            for s in gone {
                record(txn, s, &entry(s, AuditAction::Delete, vec![], None))?;
            }
        }
        (ShardCommand::ReconcileSchedules { .. }, _, rearmed) => {
            for s in rearmed {
                record(txn, s, &entry(s, AuditAction::Reconcile, vec![], None))?;
            }
        }
        _ => {}
    }
    Ok(result)
}

/// Appends `entry` to `s`'s log (numbered after any entry of the same millisecond).
fn record(txn: &mut SmTxn, s: &Schedule, entry: &AuditEntry) -> io::Result<()> {
    let same_ms = [
        keys::audit_prefix(&s.id),
        entry.at_ms.to_be_bytes().to_vec(),
    ]
    .concat();
    let mut seq = 0u32;
    txn.scan_from(&same_ms, |k, _| {
        let more = k.starts_with(&same_ms);
        seq += u32::from(more);
        Ok(more)
    })?;
    txn.put(&keys::audit(&s.id, entry.at_ms, seq), entry)?;
    txn.put(&keys::audit_age(entry.at_ms, &s.id, seq), &s.app_id)
}

/// The newest `limit` entries of schedule `id` of app `app_id`, newest first; the
/// schedule's creation (from its record, while it has one) is the oldest. Empty for a
/// schedule of another app.
pub fn log(
    reader: &SmReader,
    id: &Uuid,
    app_id: &str,
    limit: usize,
) -> io::Result<Vec<AuditEntry>> {
    let mut newest = VecDeque::with_capacity(limit.min(1024) + 1);
    if let Some(s) = reader.get::<Schedule>(&keys::schedule(id))? {
        if s.app_id != app_id {
            return Ok(vec![]);
        }
        newest.push_back(AuditEntry {
            app_id: s.app_id,
            at_ms: s.created_at_ms,
            action: AuditAction::Create,
            node: None,
            by: None,
            changes: vec![],
            run_id: None,
        });
    }
    let prefix = keys::audit_prefix(id);
    reader.scan_from(&prefix, |k, v| {
        if !k.starts_with(&prefix) {
            return Ok(false);
        }
        let entry: AuditEntry = crate::store::decode(v)?;
        if entry.app_id == app_id {
            newest.push_back(entry);
        }
        if newest.len() > limit {
            newest.pop_front();
        }
        Ok(true)
    })?;
    newest.truncate(limit);
    Ok(newest.into_iter().rev().collect())
}

/// Removes entries older than their app's cutoff (epoch seconds), looking at no more than
/// `limit` entries (the oldest first). Entries of apps without a cutoff here are kept.
pub fn purge(txn: &mut SmTxn, cutoffs: &[(String, i64)], limit: usize) -> io::Result<usize> {
    let cutoffs: HashMap<&str, i64> = cutoffs.iter().map(|(a, c)| (a.as_str(), *c)).collect();
    let newest_cutoff = cutoffs.values().copied().max().unwrap_or(i64::MIN);
    let mut old = Vec::new();
    let mut looked = 0;
    txn.scan_from(&[keys::AUDIT_AGE], |k, v| {
        let Some((at_ms, id, seq)) = keys::audit_age_parts(k).filter(|_| k[0] == keys::AUDIT_AGE)
        else {
            return Ok(false);
        };
        let at = (at_ms / 1000) as i64;
        if looked >= limit || at >= newest_cutoff {
            return Ok(false);
        }
        looked += 1;
        let app: String = crate::store::decode(v)?;
        if cutoffs.get(app.as_str()).is_some_and(|c| at < *c) {
            old.push((at_ms, id, seq));
        }
        Ok(true)
    })?;
    for (at_ms, id, seq) in &old {
        txn.delete(&keys::audit(id, *at_ms, *seq));
        txn.delete(&keys::audit_age(*at_ms, id, *seq));
    }
    Ok(old.len())
}
