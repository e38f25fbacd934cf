//! What happened to an app that its schedules' audit logs show: its activation and
//! deactivation (no run of any of its schedules fires while it is deactivated), with when,
//! through which node and by whom. Written in the meta entry that changes the app; the
//! newest [`MAX_EVENTS`] per app are kept. A schedule's audit log merges the ones of its
//! lifetime (see `gateway::audit`).

use std::io;

use crate::command::Actor;
use crate::shard::audit::{AuditAction, AuditEntry};
use crate::store::txn::{SmReader, SmTxn};

const PREFIX: &[u8] = b"appev/";
/// Events kept per app.
pub const MAX_EVENTS: usize = 100;

/// The keys of `app_id`'s events (app ids have no `/`, so no app's prefix holds another's).
fn prefix(app_id: &str) -> Vec<u8> {
    [PREFIX, app_id.as_bytes(), b"/"].concat()
}

/// Records that `by` (de)activated `app_id`, dropping the oldest beyond [`MAX_EVENTS`].
pub fn record(txn: &mut SmTxn, app_id: &str, active: bool, by: &Actor) -> io::Result<()> {
    let prefix = prefix(app_id);
    let mut kept: Vec<Vec<u8>> = Vec::new();
    txn.scan_from(&prefix, |k, _| {
        let ours = k.starts_with(&prefix);
        if ours {
            kept.push(k.to_vec());
        }
        Ok(ours)
    })?;
    let seq = kept.last().map_or(0, |k| sequence(&k[prefix.len()..]) + 1);
    let entry = AuditEntry {
        app_id: app_id.to_string(),
        at_ms: by.at_ms,
        action: if active {
            AuditAction::AppActivate
        } else {
            AuditAction::AppDeactivate
        },
        node: Some(by.node),
        by: by.caller.clone(),
        changes: Vec::new(),
        run_id: None,
    };
    txn.put(&[prefix.as_slice(), &seq.to_be_bytes()].concat(), &entry)?;
    let excess = (kept.len() + 1).saturating_sub(MAX_EVENTS);
    kept.iter().take(excess).for_each(|k| txn.delete(k));
    Ok(())
}

fn sequence(suffix: &[u8]) -> u64 {
    suffix.try_into().map_or(0, u64::from_be_bytes)
}

/// `app_id`'s events, newest first.
pub fn newest(reader: &SmReader, app_id: &str) -> io::Result<Vec<AuditEntry>> {
    let mut events: Vec<AuditEntry> = reader.scan_prefix(&prefix(app_id), MAX_EVENTS)?;
    events.reverse();
    Ok(events)
}
