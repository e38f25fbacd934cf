//! Key layout of a shard's state machine (after the group prefix).
//!
//! - `s` ‖ id → the schedule
//! - `t` ‖ time ‖ id → nothing: the time index of pending runs (the firing engine's queue)
//! - `a` ‖ app ‖ 0 ‖ time ‖ id → nothing: the (app, time) index for app queries
//! - `p` ‖ cron id ‖ time ‖ run id → nothing: the runs of a cron
//! - `c` ‖ app ‖ 0 ‖ cron id → nothing: the crons of an app
//! - `h` ‖ time ‖ cron id → nothing: crons by how far their runs are materialised
//! - `k` ‖ deadline ms ‖ run id → nothing: claimed runs by claim deadline (out of `t`
//!   while claimed; the firing engine's list of calls in flight)
//! - `i` ‖ app ‖ 0 ‖ idempotency key → which schedule that key created, and when
//! - `j` ‖ created ms ‖ app ‖ 0 ‖ idempotency key → nothing: keys by age, for purging
//! - `n` ‖ app ‖ 0 ‖ partition → how many of its schedules and runs are pending
//! - `f` ‖ cron id → the run of that cron claimed last (for its overlap policy)
//! - `w` ‖ cron id → the run of that cron waiting for the last claimed one (BUFFER_ONE)
//! - `l` ‖ schedule id ‖ at ms ‖ seq → an entry of the schedule's audit log
//! - `m` ‖ at ms ‖ schedule id ‖ seq → its app: audit entries by age, for purging
//! - `u` → the newest id a create stored (see `newest`)
//!
//! Times are epoch seconds, encoded so that byte order is numeric order (sign bit flipped).

use uuid::Uuid;

pub const SCHEDULE: u8 = b's';
pub const TIME: u8 = b't';
pub const APP: u8 = b'a';
pub const RUNS: u8 = b'p';
pub const CRONS: u8 = b'c';
pub const HORIZON: u8 = b'h';
pub const CLAIM: u8 = b'k';
pub const IDEMPOTENCY: u8 = b'i';
pub const IDEMPOTENCY_AGE: u8 = b'j';
pub const PENDING: u8 = b'n';
pub const AUDIT: u8 = b'l';
pub const LAST_CLAIMED: u8 = b'f';
pub const WAITING: u8 = b'w';
pub const AUDIT_AGE: u8 = b'm';
/// The newest id a create stored: written by builds of 2026-12-05 only, read by none
/// since (creates say whether they need a lookup, `proposed_once`). Not to be reused.
#[allow(dead_code)]
pub const NEWEST_CREATED: u8 = b'u';

fn time_bytes(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

pub fn schedule(id: &Uuid) -> Vec<u8> {
    [&[SCHEDULE][..], id.as_bytes()].concat()
}

pub fn due(time: i64, id: &Uuid) -> Vec<u8> {
    [&[TIME][..], &time_bytes(time), id.as_bytes()].concat()
}

pub fn app_time(app_id: &str, time: i64, id: &Uuid) -> Vec<u8> {
    [&app_prefix(app_id)[..], &time_bytes(time), id.as_bytes()].concat()
}

pub fn run(parent: &Uuid, time: i64, run: &Uuid) -> Vec<u8> {
    [&runs_prefix(parent)[..], &time_bytes(time), run.as_bytes()].concat()
}

/// `p` ‖ cron id: the start of every run key of a cron.
pub fn runs_prefix(parent: &Uuid) -> Vec<u8> {
    [&[RUNS][..], parent.as_bytes()].concat()
}

pub fn app_cron(app_id: &str, id: &Uuid) -> Vec<u8> {
    [&app_crons_prefix(app_id)[..], id.as_bytes()].concat()
}

/// `c` ‖ app ‖ 0: the start of every cron key of an app.
pub fn app_crons_prefix(app_id: &str) -> Vec<u8> {
    [&[CRONS][..], app_id.as_bytes(), &[0]].concat()
}

pub fn pending(app_id: &str, partition: u32) -> Vec<u8> {
    [
        &[PENDING][..],
        app_id.as_bytes(),
        &[0],
        &partition.to_be_bytes(),
    ]
    .concat()
}

pub fn horizon(until: i64, id: &Uuid) -> Vec<u8> {
    [&[HORIZON][..], &time_bytes(until), id.as_bytes()].concat()
}

pub fn claim(deadline_ms: u64, id: &Uuid) -> Vec<u8> {
    [&[CLAIM][..], &deadline_ms.to_be_bytes(), id.as_bytes()].concat()
}

/// The (deadline ms, id) of a claim key.
pub fn claim_deadline_and_id(key: &[u8]) -> (u64, Uuid) {
    let (t, id) = time_and_id(key);
    ((t as u64) ^ (1 << 63), id)
}

pub fn idempotency(app_id: &str, key: &str) -> Vec<u8> {
    [&[IDEMPOTENCY][..], app_id.as_bytes(), &[0], key.as_bytes()].concat()
}

pub fn idempotency_age(created_ms: u64, app_id: &str, key: &str) -> Vec<u8> {
    [
        &[IDEMPOTENCY_AGE][..],
        &created_ms.to_be_bytes(),
        app_id.as_bytes(),
        &[0],
        key.as_bytes(),
    ]
    .concat()
}

/// The (created ms, app, key) of an `idempotency_age` key.
pub fn idempotency_age_parts(k: &[u8]) -> Option<(u64, String, String)> {
    let created = u64::from_be_bytes(k.get(1..9)?.try_into().ok()?);
    let rest = k.get(9..)?;
    let zero = rest.iter().position(|b| *b == 0)?;
    let app = String::from_utf8(rest[..zero].to_vec()).ok()?;
    let key = String::from_utf8(rest[zero + 1..].to_vec()).ok()?;
    Some((created, app, key))
}

pub fn last_claimed(cron: &Uuid) -> Vec<u8> {
    [&[LAST_CLAIMED][..], cron.as_bytes()].concat()
}

pub fn waiting(cron: &Uuid) -> Vec<u8> {
    [&[WAITING][..], cron.as_bytes()].concat()
}

/// `l` ‖ schedule id: the start of a schedule's audit log.
pub fn audit_prefix(id: &Uuid) -> Vec<u8> {
    [&[AUDIT][..], id.as_bytes()].concat()
}

pub fn audit(id: &Uuid, at_ms: u64, seq: u32) -> Vec<u8> {
    [
        &audit_prefix(id)[..],
        &at_ms.to_be_bytes(),
        &seq.to_be_bytes(),
    ]
    .concat()
}

pub fn audit_age(at_ms: u64, id: &Uuid, seq: u32) -> Vec<u8> {
    [
        &[AUDIT_AGE][..],
        &at_ms.to_be_bytes(),
        id.as_bytes(),
        &seq.to_be_bytes(),
    ]
    .concat()
}

/// The (at ms, schedule id, seq) of an `audit_age` key.
pub fn audit_age_parts(k: &[u8]) -> Option<(u64, Uuid, u32)> {
    let at = u64::from_be_bytes(k.get(1..9)?.try_into().ok()?);
    let id = Uuid::from_slice(k.get(9..25)?).ok()?;
    let seq = u32::from_be_bytes(k.get(25..29)?.try_into().ok()?);
    Some((at, id, seq))
}

/// The id at the end of a key.
pub fn trailing_id(key: &[u8]) -> Uuid {
    let mut id = [0u8; 16];
    id.copy_from_slice(&key[key.len() - 16..]);
    Uuid::from_bytes(id)
}

/// `a` ‖ app ‖ 0: the start of every (app, time) key of `app_id`.
pub fn app_prefix(app_id: &str) -> Vec<u8> {
    [&[APP][..], app_id.as_bytes(), &[0]].concat()
}

/// The (time, id) at the end of a time-ordered key (`due` or `app_time`).
pub fn time_and_id(key: &[u8]) -> (i64, Uuid) {
    let n = key.len();
    let mut t = [0u8; 8];
    t.copy_from_slice(&key[n - 24..n - 16]);
    let mut id = [0u8; 16];
    id.copy_from_slice(&key[n - 16..]);
    (
        (u64::from_be_bytes(t) ^ (1 << 63)) as i64,
        Uuid::from_bytes(id),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_numerically_even_before_1970() {
        let id = Uuid::nil();
        assert!(due(-5, &id) < due(0, &id));
        assert!(due(0, &id) < due(1, &id));
        assert!(due(255, &id) < due(256, &id));
        assert!(app_time("a", 10, &id) < app_time("a", 11, &id));
        // One app's keys never interleave with another's whose id extends it.
        assert!(app_time("a", i64::MAX, &id) < app_time("a-b", i64::MIN, &id));
        let id = Uuid::from_u128(7);
        assert_eq!(time_and_id(&app_time("app", -3, &id)), (-3, id));
        assert_eq!(time_and_id(&due(1_700_000_000, &id)), (1_700_000_000, id));
        assert!(claim(999, &id) < claim(1000, &id));
        assert_eq!(
            claim_deadline_and_id(&claim(1_700_000_000_123, &id)),
            (1_700_000_000_123, id)
        );
    }
}
