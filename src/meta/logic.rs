//! Applying meta commands and answering meta queries. Pure functions of the committed
//! state and the command: no clock, no randomness, no I/O beyond the state machine.

use std::io;

use uuid::Uuid;

use super::app::{App, Signing, MAX_TOKENS_PER_APP};
use super::bulk::{BulkJob, JobState};
use crate::command::{
    Command, CommandResult, MetaCommand, MetaQuery, QueryResult, RejectReason, Rejection,
    SchedulerLog,
};
use crate::raft::GroupLogic;
use crate::store::txn::{SmReader, SmTxn};

const APP_PREFIX: &[u8] = b"app/";
const JOB_PREFIX: &[u8] = b"job/";
const RUNNING_PREFIX: &[u8] = b"running/";
const NODE_PREFIX: &[u8] = b"node/";
const REMOVED_PREFIX: &[u8] = b"removed/";
/// More nodes than any cluster has.
const MAX_NODES: usize = 1024;

fn node_key(id: u64) -> Vec<u8> {
    [NODE_PREFIX, &id.to_be_bytes()].concat()
}

fn removed_key((id, incarnation): (u64, Uuid)) -> Vec<u8> {
    [REMOVED_PREFIX, &id.to_be_bytes(), incarnation.as_bytes()].concat()
}

fn app_key(app_id: &str) -> Vec<u8> {
    [APP_PREFIX, app_id.as_bytes()].concat()
}

fn job_key(id: &Uuid) -> Vec<u8> {
    [JOB_PREFIX, id.as_bytes()].concat()
}

fn running_key(id: &Uuid) -> Vec<u8> {
    [RUNNING_PREFIX, id.as_bytes()].concat()
}

/// Most running bulk jobs one read returns.
const MAX_JOBS_LISTED: usize = 10_000;

/// The meta group's logic: apps and bulk jobs.
pub struct MetaLogic;

impl GroupLogic<SchedulerLog> for MetaLogic {
    fn apply(&self, txn: &mut SmTxn, cmd: &Command) -> io::Result<CommandResult> {
        match cmd {
            Command::Meta(cmd) => apply(txn, cmd),
            other => Ok(reject(
                RejectReason::Conflict,
                &format!("command {other} is not for the meta group"),
            )),
        }
    }
}

pub fn apply(txn: &mut SmTxn, cmd: &MetaCommand) -> io::Result<CommandResult> {
    match cmd {
        MetaCommand::RegisterApp { app } => register(txn, app),
        MetaCommand::SetAppActive { app_id, active, by } => {
            let result = set_active(txn, app_id, *active)?;
            if let (CommandResult::App(_), Some(by)) = (&result, by) {
                super::app_events::record(txn, app_id, *active, by)?;
            }
            Ok(result)
        }
        MetaCommand::StartBulkJob { job } => {
            if let Some(existing) = txn.get::<BulkJob>(&job_key(&job.job_id))? {
                return Ok(CommandResult::BulkJob(existing));
            }
            txn.put(&job_key(&job.job_id), job)?;
            txn.put(&running_key(&job.job_id), &job.job_id)?;
            Ok(CommandResult::BulkJob(job.clone()))
        }
        MetaCommand::AdvanceBulkJob {
            job_id,
            cursor,
            processed,
            done,
            at_ms,
        } => {
            let Some(mut job) = txn.get::<BulkJob>(&job_key(job_id))? else {
                return Ok(reject(RejectReason::NotFound, "no such bulk job"));
            };
            if job.state == JobState::Done {
                return Ok(CommandResult::BulkJob(job));
            }
            job.cursor = *cursor;
            job.processed += processed;
            job.updated_at_ms = *at_ms;
            if *done {
                job.state = JobState::Done;
                txn.delete(&running_key(job_id));
            }
            txn.put(&job_key(job_id), &job)?;
            Ok(CommandResult::BulkJob(job))
        }
        MetaCommand::RecordNode {
            node_id,
            incarnation,
        } => {
            txn.put(&node_key(*node_id), &(*node_id, *incarnation))?;
            Ok(CommandResult::None)
        }
        MetaCommand::ForgetNode { node_id } => {
            // Its incarnation stays refused: the removed node may still run, with a valid
            // certificate; only a new incarnation (an empty data dir) may join again.
            if let Some(recorded) = txn.get::<(u64, Uuid)>(&node_key(*node_id))? {
                txn.put(&removed_key(recorded), &recorded)?;
            }
            txn.delete(&node_key(*node_id));
            Ok(CommandResult::None)
        }
        MetaCommand::RotateSigningSecret {
            app_id,
            secret,
            at_ms,
            overlap_ms,
        } => update_app(txn, app_id, |app| {
            app.signing = Some(Signing {
                secret: secret.clone(),
                previous: app.signing.take().map(|s| s.secret),
                previous_until_ms: at_ms.saturating_add(*overlap_ms),
            });
            Ok(())
        }),
        MetaCommand::IssueAppToken { app_id, token } => update_app(txn, app_id, |app| {
            if app.tokens.len() >= MAX_TOKENS_PER_APP {
                return Err(Rejection::new(
                    RejectReason::TooMany,
                    format!(
                        "app {app_id} holds {MAX_TOKENS_PER_APP} tokens, the most allowed: revoke one first"
                    ),
                ));
            }
            app.tokens.push(token.clone());
            Ok(())
        }),
        MetaCommand::RevokeAppToken { app_id, token_id } => update_app(txn, app_id, |app| {
            let before = app.tokens.len();
            app.tokens.retain(|t| t.token_id != *token_id);
            if app.tokens.len() == before {
                return Err(Rejection::new(
                    RejectReason::NotFound,
                    format!("app {app_id} has no token {token_id}"),
                ));
            }
            Ok(())
        }),
    }
}

/// Changes registered app `app_id` with `change`, unless it refuses (or the app is unknown).
fn update_app(
    txn: &mut SmTxn,
    app_id: &str,
    change: impl FnOnce(&mut App) -> Result<(), Rejection>,
) -> io::Result<CommandResult> {
    let key = app_key(app_id);
    let Some(mut app) = txn.get::<App>(&key)? else {
        return Ok(reject(RejectReason::UnregisteredApp, "unregistered App"));
    };
    if let Err(refused) = change(&mut app) {
        return Ok(CommandResult::Rejected(refused));
    }
    txn.put(&key, &app)?;
    Ok(CommandResult::App(Box::new(app)))
}

fn register(txn: &mut SmTxn, app: &App) -> io::Result<CommandResult> {
    let key = app_key(&app.app_id);
    let mut app = app.clone();
    if let Some(existing) = txn.get::<App>(&key)? {
        // Registering again keeps the app's signing secrets (receivers hold them).
        app.signing = existing.signing.clone().or(app.signing);
        app.tokens = existing.tokens.clone();
        if existing.partitions != app.partitions {
            return Ok(CommandResult::Rejected(Rejection::new(
                RejectReason::Conflict,
                format!(
                    "app {} already has {} partitions: changing them to {} would orphan its schedules",
                    app.app_id, existing.partitions, app.partitions
                ),
            )));
        }
    }
    txn.put(&key, &app)?;
    Ok(CommandResult::App(Box::new(app)))
}

fn set_active(txn: &mut SmTxn, app_id: &str, active: bool) -> io::Result<CommandResult> {
    update_app(txn, app_id, |app| {
        if app.active == active {
            return Err(if active {
                Rejection::new(RejectReason::AlreadyActivated, "app is already activated")
            } else {
                Rejection::new(
                    RejectReason::AlreadyDeactivated,
                    "app is already deactivated",
                )
            });
        }
        app.active = active;
        Ok(())
    })
}

fn reject(reason: RejectReason, message: &str) -> CommandResult {
    CommandResult::Rejected(Rejection::new(reason, message))
}

pub fn query(reader: &SmReader, q: &MetaQuery) -> io::Result<QueryResult> {
    match q {
        MetaQuery::GetApp { app_id } => Ok(QueryResult::Apps(
            reader.get::<App>(&app_key(app_id))?.into_iter().collect(),
        )),
        MetaQuery::ListAppsAfter { after, limit } => Ok(QueryResult::Apps(apps_after(
            reader,
            after.as_deref(),
            *limit,
        )?)),
        MetaQuery::GetBulkJob { job_id } => Ok(QueryResult::BulkJobs(
            reader
                .get::<BulkJob>(&job_key(job_id))?
                .into_iter()
                .collect(),
        )),
        MetaQuery::RunningBulkJobs => {
            let ids: Vec<Uuid> = reader.scan_prefix(RUNNING_PREFIX, MAX_JOBS_LISTED)?;
            let mut jobs = Vec::with_capacity(ids.len());
            for id in ids {
                jobs.extend(reader.get::<BulkJob>(&job_key(&id))?);
            }
            Ok(QueryResult::BulkJobs(jobs))
        }
        MetaQuery::Nodes => Ok(QueryResult::Nodes(
            reader.scan_prefix(NODE_PREFIX, MAX_NODES)?,
        )),
        MetaQuery::AppEvents { app_id } => Ok(QueryResult::Audit(super::app_events::newest(
            reader, app_id,
        )?)),
        MetaQuery::RemovedNodes => Ok(QueryResult::Nodes(
            reader.scan_prefix(REMOVED_PREFIX, MAX_NODES)?,
        )),
    }
}

/// The first `limit` apps after `after` (by id; from the first app when `None`).
fn apps_after(reader: &SmReader, after: Option<&str>, limit: usize) -> io::Result<Vec<App>> {
    let from = match after {
        Some(id) => [app_key(id), vec![0]].concat(),
        None => APP_PREFIX.to_vec(),
    };
    let mut apps = Vec::new();
    reader.scan_from(&from, |k, v| {
        if !k.starts_with(APP_PREFIX) || apps.len() >= limit {
            return Ok(false);
        }
        apps.push(crate::store::decode(v)?);
        Ok(true)
    })?;
    Ok(apps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::Actor;
    use crate::ids::GroupId;
    use crate::shard::audit::AuditAction;
    use crate::store;

    fn app(id: &str, partitions: u32, active: bool) -> App {
        App {
            signing: None,
            tokens: vec![],
            app_id: id.into(),
            partitions,
            active,
            configuration: Default::default(),
        }
    }

    fn commit(db: &rocksdb::DB, cmds: &[MetaCommand]) -> Vec<CommandResult> {
        let mut txn = SmTxn::new(db, GroupId::META);
        let out = cmds.iter().map(|c| apply(&mut txn, c).unwrap()).collect();
        let mut batch = rocksdb::WriteBatch::default();
        txn.write_into(&mut batch).unwrap();
        db.write(batch).unwrap();
        out
    }

    #[test]
    fn register_activate_deactivate_follow_the_wiki() {
        let dir = tempfile::tempdir().unwrap();
        let db = store::open(dir.path()).unwrap();
        let results = commit(
            &db,
            &[
                MetaCommand::RegisterApp {
                    app: app("revamp", 2, true),
                },
                // Same body again: idempotent.
                MetaCommand::RegisterApp {
                    app: app("revamp", 2, true),
                },
                // Partition change: refused, nothing changes.
                MetaCommand::RegisterApp {
                    app: app("revamp", 3, true),
                },
                MetaCommand::SetAppActive {
                    app_id: "revamp".into(),
                    active: true,
                    by: None,
                },
                MetaCommand::SetAppActive {
                    app_id: "revamp".into(),
                    active: false,
                    by: Some(actor(7)),
                },
                MetaCommand::SetAppActive {
                    app_id: "revamp".into(),
                    active: false,
                    by: Some(actor(8)),
                },
                MetaCommand::SetAppActive {
                    app_id: "ghost".into(),
                    active: true,
                    by: None,
                },
            ],
        );
        assert_eq!(
            results[0],
            CommandResult::App(Box::new(app("revamp", 2, true)))
        );
        assert_eq!(
            results[1],
            CommandResult::App(Box::new(app("revamp", 2, true)))
        );
        let reason = |r: &CommandResult| match r {
            CommandResult::Rejected(r) => Some(r.reason),
            _ => None,
        };
        assert_eq!(reason(&results[2]), Some(RejectReason::Conflict));
        assert_eq!(reason(&results[3]), Some(RejectReason::AlreadyActivated));
        assert_eq!(
            results[4],
            CommandResult::App(Box::new(app("revamp", 2, false)))
        );
        assert_eq!(reason(&results[5]), Some(RejectReason::AlreadyDeactivated));
        assert_eq!(reason(&results[6]), Some(RejectReason::UnregisteredApp));
        // Only the deactivation that happened is in the app's events.
        let reader = SmReader::new(&db, GroupId::META);
        let events = query(
            &reader,
            &MetaQuery::AppEvents {
                app_id: "revamp".into(),
            },
        );
        let QueryResult::Audit(events) = events.unwrap() else {
            panic!("not audit entries");
        };
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].action, AuditAction::AppDeactivate);
        assert_eq!((events[0].at_ms, events[0].node), (7, Some(1)));

        let reader = SmReader::new(&db, GroupId::META);
        assert_eq!(
            query(
                &reader,
                &MetaQuery::ListAppsAfter {
                    after: None,
                    limit: 10
                }
            )
            .unwrap(),
            QueryResult::Apps(vec![app("revamp", 2, false)])
        );
        assert_eq!(
            query(
                &reader,
                &MetaQuery::GetApp {
                    app_id: "ghost".into()
                }
            )
            .unwrap(),
            QueryResult::Apps(vec![])
        );
    }

    #[test]
    fn every_app_is_listed_a_page_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::open(dir.path()).unwrap();
        let register: Vec<MetaCommand> = (0..25)
            .map(|i| MetaCommand::RegisterApp {
                app: app(&format!("app-{i:02}"), 1, true),
            })
            .collect();
        commit(&db, &register);
        let reader = SmReader::new(&db, GroupId::META);
        let (mut seen, mut after) = (vec![], None);
        loop {
            let q = MetaQuery::ListAppsAfter { after, limit: 10 };
            let QueryResult::Apps(page) = query(&reader, &q).unwrap() else {
                panic!("not apps")
            };
            seen.extend(page.iter().map(|a| a.app_id.clone()));
            if page.len() < 10 {
                break;
            }
            after = page.last().map(|a| a.app_id.clone());
        }
        let all: Vec<String> = (0..25).map(|i| format!("app-{i:02}")).collect();
        assert_eq!(seen, all);
    }

    fn actor(at_ms: u64) -> Actor {
        Actor {
            node: 1,
            caller: Some("admin".into()),
            at_ms,
        }
    }

    #[test]
    fn an_app_keeps_its_newest_events_only() {
        let dir = tempfile::tempdir().unwrap();
        let db = store::open(dir.path()).unwrap();
        let mut cmds = vec![MetaCommand::RegisterApp {
            app: app("busy", 1, true),
        }];
        cmds.extend((0..150u64).map(|i| MetaCommand::SetAppActive {
            app_id: "busy".into(),
            active: i % 2 == 1,
            by: Some(actor(1000 + i)),
        }));
        commit(&db, &cmds);
        let reader = SmReader::new(&db, GroupId::META);
        let QueryResult::Audit(events) = query(
            &reader,
            &MetaQuery::AppEvents {
                app_id: "busy".into(),
            },
        )
        .unwrap() else {
            panic!("not audit entries");
        };
        let at: Vec<u64> = events.iter().map(|e| e.at_ms).collect();
        assert_eq!(at, (1050..1150).rev().collect::<Vec<_>>());
        assert_eq!(events[0].action, AuditAction::AppActivate);
    }
}
