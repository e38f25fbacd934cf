//! Applying shard commands and answering shard queries: pure functions of the committed
//! state and the command (no clock, no randomness), so every replica holds the same bytes.

use std::io;

use uuid::Uuid;

use super::keys;
use crate::command::{Command, CommandResult, Query, QueryResult, RejectReason, Rejection};
use crate::schedule::{Schedule, Status};
use crate::store::txn::{SmReader, SmTxn};

pub fn apply(txn: &mut SmTxn, cmd: &Command) -> io::Result<CommandResult> {
    match cmd {
        Command::CreateSchedules { schedules } => {
            let mut created = Vec::with_capacity(schedules.len());
            for s in schedules {
                created.push(create(txn, s)?);
            }
            Ok(CommandResult::Schedules(created))
        }
        Command::DeleteSchedule { id } => delete(txn, id),
        other => Ok(CommandResult::Rejected(Rejection::new(
            RejectReason::Conflict,
            format!("command {other} is not for a shard"),
        ))),
    }
}

/// Stores a new schedule with its index entries. Creating an id that exists returns the
/// stored schedule unchanged, so a client's retry of an unknown outcome is harmless.
fn create(txn: &mut SmTxn, s: &Schedule) -> io::Result<Schedule> {
    let key = keys::schedule(&s.id);
    if let Some(existing) = txn.get::<Schedule>(&key)? {
        return Ok(existing);
    }
    txn.put(&key, s)?;
    if s.status == Status::Scheduled {
        txn.put(&keys::due(s.schedule_time, &s.id), &())?;
    }
    txn.put(&keys::app_time(&s.app_id, s.schedule_time, &s.id), &())?;
    Ok(s.clone())
}

/// Deletes a one-time schedule and its index entries (a hard delete: a second one is 404).
fn delete(txn: &mut SmTxn, id: &Uuid) -> io::Result<CommandResult> {
    let key = keys::schedule(id);
    let Some(s) = txn.get::<Schedule>(&key)? else {
        return Ok(CommandResult::Rejected(Rejection::new(
            RejectReason::NotFound,
            "not found",
        )));
    };
    txn.delete(&key);
    txn.delete(&keys::due(s.schedule_time, id));
    txn.delete(&keys::app_time(&s.app_id, s.schedule_time, id));
    Ok(CommandResult::Schedules(vec![s]))
}

pub fn query(reader: &SmReader, q: &Query) -> io::Result<QueryResult> {
    match q {
        Query::GetSchedule { id } => Ok(QueryResult::Schedules(
            reader
                .get::<Schedule>(&keys::schedule(id))?
                .into_iter()
                .collect(),
        )),
        Query::AppSchedules {
            app_id,
            start,
            end,
            after,
            status,
            limit,
        } => {
            let prefix = keys::app_prefix(app_id);
            let from = match after {
                // Strictly after the cursor: the smallest key greater than its own.
                Some(c) if c.time >= *start => {
                    [keys::app_time(app_id, c.time, &c.id), vec![0]].concat()
                }
                _ => keys::app_time(app_id, *start, &Uuid::nil()),
            };
            let mut out = Vec::new();
            reader.scan_from(&from, |k, _| {
                if !k.starts_with(&prefix) || out.len() >= *limit {
                    return Ok(false);
                }
                let (time, id) = keys::time_and_id(k);
                if time > *end {
                    return Ok(false);
                }
                if let Some(s) = reader.get::<Schedule>(&keys::schedule(&id))? {
                    if status.is_none_or(|st| st == s.status) {
                        out.push(s);
                    }
                }
                Ok(true)
            })?;
            Ok(QueryResult::Schedules(out))
        }
        other => Err(io::Error::other(format!(
            "query {other:?} is not for a shard"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::GroupId;
    use crate::schedule::HttpCallback;
    use crate::store;

    fn schedule(id: Uuid, time: i64) -> Schedule {
        Schedule {
            id,
            app_id: "revamp".into(),
            partition: 1,
            payload: "{}".into(),
            schedule_time: time,
            callback: HttpCallback {
                url: "http://127.0.0.1:1/cb".into(),
                method: "POST".into(),
                headers: Default::default(),
            },
            status: Status::Scheduled,
            error_message: None,
            created_at_ms: 1,
        }
    }

    fn commit(db: &rocksdb::DB, cmds: &[Command]) -> Vec<CommandResult> {
        let mut txn = SmTxn::new(db, GroupId(1));
        let out = cmds.iter().map(|c| apply(&mut txn, c).unwrap()).collect();
        let mut batch = rocksdb::WriteBatch::default();
        txn.write_into(&mut batch);
        db.write(batch).unwrap();
        out
    }

    fn count(db: &rocksdb::DB, prefix: u8) -> usize {
        let cf = db.cf_handle(store::CF_SM).unwrap();
        db.prefix_iterator_cf(cf, store::keys::sm_key(GroupId(1), &[prefix]))
            .take_while(|kv| kv.as_ref().unwrap().0[8] == prefix)
            .count()
    }

    #[test]
    fn create_is_idempotent_and_delete_removes_every_index_entry() {
        let dir = tempfile::tempdir().unwrap();
        let db = store::open(dir.path()).unwrap();
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let first = commit(
            &db,
            &[Command::CreateSchedules {
                schedules: vec![schedule(a, 100), schedule(b, 200)],
            }],
        );
        assert_eq!(
            first[0],
            CommandResult::Schedules(vec![schedule(a, 100), schedule(b, 200)])
        );
        // The same id again (a retried request) returns what is stored, changes nothing.
        let again = commit(
            &db,
            &[Command::CreateSchedules {
                schedules: vec![schedule(a, 999)],
            }],
        );
        assert_eq!(again[0], CommandResult::Schedules(vec![schedule(a, 100)]));
        assert_eq!(
            (
                count(&db, keys::SCHEDULE),
                count(&db, keys::TIME),
                count(&db, keys::APP)
            ),
            (2, 2, 2)
        );

        let reader = SmReader::new(&db, GroupId(1));
        assert_eq!(
            query(&reader, &Query::GetSchedule { id: a }).unwrap(),
            QueryResult::Schedules(vec![schedule(a, 100)])
        );
        let deleted = commit(
            &db,
            &[
                Command::DeleteSchedule { id: a },
                Command::DeleteSchedule { id: a },
            ],
        );
        assert_eq!(deleted[0], CommandResult::Schedules(vec![schedule(a, 100)]));
        assert!(
            matches!(&deleted[1], CommandResult::Rejected(r) if r.reason == RejectReason::NotFound)
        );
        assert_eq!(
            (
                count(&db, keys::SCHEDULE),
                count(&db, keys::TIME),
                count(&db, keys::APP)
            ),
            (1, 1, 1)
        );
        assert_eq!(
            query(&reader, &Query::GetSchedule { id: a }).unwrap(),
            QueryResult::Schedules(vec![])
        );
    }
}
