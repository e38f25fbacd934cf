//! Idempotent creates: a create that carries an `Idempotency-Key` remembers, in the shard
//! that stores it, which schedule the key created. A retry with the same key within
//! [`WINDOW_MS`] (after an unknown outcome, through any node, after a failover) answers
//! that schedule instead of storing a second one. The gateway sends every create with the
//! same app and key to the same shard (the partition is derived from them), so the check
//! and the create are one apply: no race between two retries.

use std::io;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys;
use crate::command::{CreateKey, Created, RejectReason, Rejection};
use crate::schedule::Schedule;
use crate::store::txn::SmTxn;

/// How long a key is remembered.
pub const WINDOW_MS: u64 = 24 * 3600 * 1000;

/// What a key created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct KeyUse {
    id: Uuid,
    digest: Uuid,
    created_at_ms: u64,
}

/// The answer to a create with `key` at `now_ms` when the key was used within the window:
/// the schedule it created (or a refusal when the request differs or the schedule is gone).
/// `None`: the key is new (or forgotten), so the create goes ahead.
pub fn earlier_use(
    txn: &SmTxn,
    app_id: &str,
    key: &CreateKey,
    now_ms: u64,
) -> io::Result<Option<Created>> {
    let Some(used) = txn.get::<KeyUse>(&keys::idempotency(app_id, &key.key))? else {
        return Ok(None);
    };
    if used.created_at_ms.saturating_add(WINDOW_MS) <= now_ms {
        return Ok(None);
    }
    if used.digest != key.digest {
        let why = format!(
            "Idempotency-Key {} was used for a different request (schedule {})",
            key.key, used.id
        );
        return Ok(Some(Created::Refused(Rejection::new(
            RejectReason::KeyReused,
            why,
        ))));
    }
    Ok(Some(
        match txn.get::<Schedule>(&keys::schedule(&used.id))? {
            Some(s) => Created::Replayed(s),
            None => Created::Refused(Rejection::new(
                RejectReason::KeySpent,
                format!(
                    "Idempotency-Key {} created schedule {}, which has been deleted since",
                    key.key, used.id
                ),
            )),
        },
    ))
}

/// Remembers that `key` created `s`. A use of the key older than the window is simply
/// overwritten; its age entry is left for [`forget`], which knows it is stale.
pub fn remember(txn: &mut SmTxn, s: &Schedule, key: &CreateKey) -> io::Result<()> {
    let used = KeyUse {
        id: s.id,
        digest: key.digest,
        created_at_ms: s.created_at_ms,
    };
    txn.put(&keys::idempotency(&s.app_id, &key.key), &used)?;
    txn.put(
        &keys::idempotency_age(s.created_at_ms, &s.app_id, &key.key),
        &(),
    )
}

/// Forgets keys used before `before_ms`, looking at no more than `limit` age entries: each
/// age entry goes, and its key with it unless the key was used again since (then the entry
/// was stale). Returns how many age entries went.
pub fn forget(txn: &mut SmTxn, before_ms: u64, limit: usize) -> io::Result<usize> {
    let mut old = Vec::new();
    txn.scan_from(&[keys::IDEMPOTENCY_AGE], |k, _| {
        if k.first() != Some(&keys::IDEMPOTENCY_AGE) || old.len() >= limit {
            return Ok(false);
        }
        match keys::idempotency_age_parts(k) {
            Some(parts) if parts.0 < before_ms => {
                old.push((k.to_vec(), parts));
                Ok(true)
            }
            _ => Ok(false),
        }
    })?;
    for (age_key, (used_at, app_id, key)) in &old {
        txn.delete(age_key);
        let k = keys::idempotency(app_id, key);
        if txn
            .get::<KeyUse>(&k)?
            .is_some_and(|u| u.created_at_ms == *used_at)
        {
            txn.delete(&k);
        }
    }
    Ok(old.len())
}
