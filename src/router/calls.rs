//! Typed calls: one method per command or query, each answering the type its caller needs.
//! Unpacking a [`CommandResult`] / [`QueryResult`] happens here and nowhere else.
//!
//! App state is read through here too: [`Router::app`] linearizably from the meta leader,
//! [`Router::app_replica`] / [`Router::apps_replica`] from this node's own replica (fast,
//! possibly behind).

use std::collections::BTreeMap;
use std::sync::Arc;

use uuid::Uuid;

use super::{GroupError, Router};
use crate::command::{
    Actor, AppPage, Command, CommandResult, CreateKey, Created, MetaCommand, MetaQuery, Query,
    QueryResult, Rejection, ShardCommand, ShardQuery,
};
use crate::ids::GroupId;
use crate::meta::app::{App, AppToken};
use crate::meta::bulk::BulkJob;
use crate::schedule::page::Cursor;
use crate::schedule::{Schedule, Status};
use crate::shard::audit::AuditEntry;

/// Why a typed write did not do what it was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// No leader served it (or it may or may not have applied).
    #[error(transparent)]
    Group(#[from] GroupError),
    /// Apply refused it, from the committed state.
    #[error("{}", .0.message)]
    Rejected(Rejection),
}

fn unexpected(what: impl std::fmt::Display, got: impl std::fmt::Debug) -> GroupError {
    GroupError::Internal(format!("{what} answered {got:?}"))
}

/// What a command answered, as `pick` wants it; apply's refusal and any other answer
/// become the call's error.
fn answer<T>(
    cmd: &str,
    r: CommandResult,
    pick: impl FnOnce(CommandResult) -> Result<T, CommandResult>,
) -> Result<T, CallError> {
    match pick(r) {
        Ok(value) => Ok(value),
        Err(CommandResult::Rejected(r)) => Err(CallError::Rejected(r)),
        Err(other) => Err(unexpected(cmd, other).into()),
    }
}

/// The answer of a command that returns one app.
pub fn app_of(cmd: &str, r: CommandResult) -> Result<App, CallError> {
    answer(cmd, r, |r| match r {
        CommandResult::App(app) => Ok(*app),
        other => Err(other),
    })
}

/// The answer of a command that returns schedules.
pub fn schedules_of(cmd: &str, r: CommandResult) -> Result<Vec<Schedule>, CallError> {
    answer(cmd, r, |r| match r {
        CommandResult::Schedules(s) => Ok(s),
        other => Err(other),
    })
}

/// The answer of a command that returns nothing.
pub fn done_of(cmd: &str, r: CommandResult) -> Result<(), CallError> {
    answer(cmd, r, |r| match r {
        CommandResult::None => Ok(()),
        other => Err(other),
    })
}

fn bulk_job_of(cmd: &str, r: CommandResult) -> Result<BulkJob, CallError> {
    answer(cmd, r, |r| match r {
        CommandResult::BulkJob(job) => Ok(job),
        other => Err(other),
    })
}

/// The answer of a query that returns apps.
pub fn apps_of(q: &str, r: QueryResult) -> Result<Vec<App>, GroupError> {
    match r {
        QueryResult::Apps(apps) => Ok(apps),
        other => Err(unexpected(q, other)),
    }
}

/// The answer of a query that returns schedules.
pub fn found_schedules(q: &str, r: QueryResult) -> Result<Vec<Schedule>, GroupError> {
    match r {
        QueryResult::Schedules(s) => Ok(s),
        other => Err(unexpected(q, other)),
    }
}

fn bulk_jobs_of(q: &str, r: QueryResult) -> Result<Vec<BulkJob>, GroupError> {
    match r {
        QueryResult::BulkJobs(jobs) => Ok(jobs),
        other => Err(unexpected(q, other)),
    }
}

impl Router {
    async fn meta(&self, cmd: MetaCommand) -> Result<CommandResult, GroupError> {
        self.write(GroupId::META, Command::Meta(cmd)).await
    }

    async fn meta_read(&self, q: MetaQuery) -> Result<QueryResult, GroupError> {
        self.read(GroupId::META, Query::Meta(q)).await
    }

    /// Writes `cmd` to `shard` (any node; forwarded to its leader).
    pub async fn shard(
        &self,
        shard: GroupId,
        cmd: ShardCommand,
    ) -> Result<CommandResult, GroupError> {
        self.write(shard, Command::Shard(cmd)).await
    }

    /// Reads `q` from `shard`'s leader.
    pub async fn shard_read(
        &self,
        shard: GroupId,
        q: ShardQuery,
    ) -> Result<Vec<Schedule>, GroupError> {
        found_schedules("shard query", self.read(shard, Query::Shard(q)).await?)
    }

    pub async fn register_app(&self, app: App) -> Result<App, CallError> {
        app_of(
            "RegisterApp",
            self.meta(MetaCommand::RegisterApp { app }).await?,
        )
    }

    /// Gives `app_id` the new signing `secret`; the current one stays valid `overlap_ms`.
    pub async fn rotate_signing_secret(
        &self,
        app_id: String,
        secret: String,
        overlap_ms: u64,
    ) -> Result<App, CallError> {
        let cmd = MetaCommand::RotateSigningSecret {
            app_id,
            secret,
            at_ms: crate::schedule::time::now_ms(),
            overlap_ms,
        };
        app_of("RotateSigningSecret", self.meta(cmd).await?)
    }

    /// Gives `app_id` one more API token.
    pub async fn issue_app_token(&self, app_id: String, token: AppToken) -> Result<App, CallError> {
        let cmd = MetaCommand::IssueAppToken { app_id, token };
        app_of("IssueAppToken", self.meta(cmd).await?)
    }

    /// Revokes one of `app_id`'s API tokens.
    pub async fn revoke_app_token(&self, app_id: String, token_id: Uuid) -> Result<App, CallError> {
        let cmd = MetaCommand::RevokeAppToken { app_id, token_id };
        app_of("RevokeAppToken", self.meta(cmd).await?)
    }

    pub async fn set_app_active(
        &self,
        app_id: String,
        active: bool,
        by: Actor,
    ) -> Result<App, CallError> {
        let by = Some(by);
        let cmd = MetaCommand::SetAppActive { app_id, active, by };
        app_of("SetAppActive", self.meta(cmd).await?)
    }

    /// An app's activations and deactivations, newest first, read linearizably.
    pub async fn app_events(&self, app_id: String) -> Result<Vec<AuditEntry>, GroupError> {
        match self.meta_read(MetaQuery::AppEvents { app_id }).await? {
            QueryResult::Audit(entries) => Ok(entries),
            other => Err(unexpected("AppEvents", other)),
        }
    }

    /// One app, read linearizably.
    pub async fn app(&self, app_id: &str) -> Result<Option<App>, GroupError> {
        let q = MetaQuery::GetApp {
            app_id: app_id.to_string(),
        };
        Ok(apps_of("GetApp", self.meta_read(q).await?)?.pop())
    }

    /// The first `limit` apps after `after` (by id), read linearizably.
    pub async fn apps(&self, after: Option<String>, limit: usize) -> Result<Vec<App>, GroupError> {
        let q = MetaQuery::ListAppsAfter { after, limit };
        apps_of("ListAppsAfter", self.meta_read(q).await?)
    }

    /// One app as this node's meta replica has it (no round trip; may be behind). Read
    /// inline: one small, hot key, served from RocksDB's memtable or block cache, costs
    /// less than a hop to the blocking pool (which cost 8–19 % of single creates/s on this
    /// box: docs/BENCHMARKS.md).
    pub fn app_replica(&self, app_id: &str) -> Result<Option<Arc<App>>, GroupError> {
        let sm = &self.groups.meta().sm;
        self.apps.get(sm.generation(), app_id, || {
            let q = MetaQuery::GetApp {
                app_id: app_id.to_string(),
            };
            let found = sm.read(|r| crate::meta::logic::query(r, &q))?;
            Ok(apps_of("GetApp", found)?.pop())
        })
    }

    /// The first `limit` apps after `after` (by id), as this node's meta replica has them.
    pub async fn apps_after_replica(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<App>, GroupError> {
        let q = MetaQuery::ListAppsAfter { after, limit };
        apps_of("ListAppsAfter", self.meta_replica(q).await?)
    }

    /// Every bulk job still running, as this node's meta replica has it.
    pub async fn running_bulk_jobs_replica(&self) -> Result<Vec<BulkJob>, GroupError> {
        let r = self.meta_replica(MetaQuery::RunningBulkJobs).await?;
        bulk_jobs_of("RunningBulkJobs", r)
    }

    /// The nodes recorded in the meta group with their incarnations, as this node's
    /// replica has them.
    pub async fn nodes_replica(&self) -> Result<Vec<(u64, Uuid)>, GroupError> {
        self.node_list(MetaQuery::Nodes).await
    }

    /// The incarnations of removed nodes, as this node's meta replica has them.
    pub async fn removed_nodes_replica(&self) -> Result<Vec<(u64, Uuid)>, GroupError> {
        self.node_list(MetaQuery::RemovedNodes).await
    }

    async fn node_list(&self, q: MetaQuery) -> Result<Vec<(u64, Uuid)>, GroupError> {
        match self.meta_replica(q).await? {
            QueryResult::Nodes(nodes) => Ok(nodes),
            other => Err(unexpected("Nodes", other)),
        }
    }

    /// Records that node `node_id` runs on the data dir of `incarnation`.
    pub async fn record_node(&self, node_id: u64, incarnation: Uuid) -> Result<(), CallError> {
        let cmd = MetaCommand::RecordNode {
            node_id,
            incarnation,
        };
        done_of("RecordNode", self.meta(cmd).await?)
    }

    /// Forgets node `node_id` (it was removed; it may join again with an empty data dir).
    pub async fn forget_node(&self, node_id: u64) -> Result<(), CallError> {
        done_of(
            "ForgetNode",
            self.meta(MetaCommand::ForgetNode { node_id }).await?,
        )
    }

    async fn meta_replica(&self, q: MetaQuery) -> Result<QueryResult, GroupError> {
        let meta = self.groups.meta();
        meta.read_applied(move |r| crate::meta::logic::query(r, &q))
            .await
    }

    pub async fn start_bulk_job(&self, job: BulkJob) -> Result<BulkJob, CallError> {
        bulk_job_of(
            "StartBulkJob",
            self.meta(MetaCommand::StartBulkJob { job }).await?,
        )
    }

    pub async fn advance_bulk_job(&self, cmd: MetaCommand) -> Result<BulkJob, CallError> {
        bulk_job_of("AdvanceBulkJob", self.meta(cmd).await?)
    }

    pub async fn bulk_job(&self, job_id: Uuid) -> Result<Option<BulkJob>, GroupError> {
        let r = self.meta_read(MetaQuery::GetBulkJob { job_id }).await?;
        Ok(bulk_jobs_of("GetBulkJob", r)?.pop())
    }

    /// Stores new schedules in `shard`; answers them as stored, in order. `pending_caps`:
    /// the most pending schedules a partition of each app may hold.
    pub async fn create_schedules(
        &self,
        shard: GroupId,
        schedules: Vec<Schedule>,
        keys: Vec<Option<CreateKey>>,
        pending_caps: BTreeMap<String, u64>,
    ) -> Result<Vec<Created>, CallError> {
        let n = schedules.len();
        let cmd = ShardCommand::CreateSchedules {
            schedules,
            keys,
            first_runs: Some(crate::shard::cron_runs::FIRST_RUNS),
            pending_caps,
            // The router retries a write whose fate is unknown only if it is repeatable:
            // every item keyed (and keyed items are looked for anyway).
            proposed_once: true,
        };
        let created = answer(
            "CreateSchedules",
            self.shard(shard, cmd).await?,
            |r| match r {
                CommandResult::Created(c) => Ok(c),
                other => Err(other),
            },
        )?;
        if created.len() != n {
            let what = format!("{} answers to {n} creates", created.len());
            return Err(unexpected("CreateSchedules", what).into());
        }
        Ok(created)
    }

    /// Deletes one schedule; answers it as it was (a cron: DELETED).
    pub async fn delete_schedule(
        &self,
        shard: GroupId,
        id: Uuid,
        by: Actor,
    ) -> Result<Schedule, CallError> {
        let at_ms = by.at_ms;
        let cmd = audited(by, ShardCommand::DeleteSchedule { id, at_ms });
        self.one_schedule("DeleteSchedule", shard, cmd).await
    }

    /// Pauses (`paused`) or resumes cron `id` in `shard` (catching up from `catch_up_from`).
    pub async fn set_paused(
        &self,
        shard: GroupId,
        id: Uuid,
        paused: bool,
        catch_up_from: Option<i64>,
        by: Actor,
    ) -> Result<Schedule, CallError> {
        let at = (by.at_ms / 1000) as i64;
        let cmd = ShardCommand::SetPaused {
            id,
            paused,
            at,
            catch_up_from,
        };
        let cmd = audited(by, cmd);
        self.one_schedule("SetPaused", shard, cmd).await
    }

    /// Changes schedule `id` in `shard` in place at `at` (epoch seconds).
    pub async fn update_schedule(
        &self,
        shard: GroupId,
        id: Uuid,
        change: crate::schedule::change::ScheduleChange,
        by: Actor,
    ) -> Result<Schedule, CallError> {
        let at = (by.at_ms / 1000) as i64;
        let cmd = audited(by, ShardCommand::UpdateSchedule { id, change, at });
        self.one_schedule("UpdateSchedule", shard, cmd).await
    }

    /// One extra run of cron `id` in `shard`, due at `at` (epoch seconds), with a new id.
    pub async fn trigger_run(
        &self,
        shard: GroupId,
        id: Uuid,
        by: Actor,
    ) -> Result<Schedule, CallError> {
        let run_id = crate::schedule::id::new_id(shard, by.at_ms);
        let at = (by.at_ms / 1000) as i64;
        let cmd = audited(by, ShardCommand::TriggerRun { id, run_id, at });
        self.one_schedule("TriggerRun", shard, cmd).await
    }

    /// The newest `limit` entries of the audit log of schedule `id` of `app_id`, newest first.
    pub async fn audit_log(
        &self,
        shard: GroupId,
        id: Uuid,
        app_id: String,
        limit: usize,
    ) -> Result<Vec<AuditEntry>, GroupError> {
        let q = Query::Shard(ShardQuery::AuditLog { id, app_id, limit });
        match self.read(shard, q).await? {
            QueryResult::Audit(entries) => Ok(entries),
            other => Err(unexpected("AuditLog", other)),
        }
    }

    /// Runs `cmd`, which answers exactly one schedule.
    async fn one_schedule(
        &self,
        what: &str,
        shard: GroupId,
        cmd: ShardCommand,
    ) -> Result<Schedule, CallError> {
        let mut answered = schedules_of(what, self.shard(shard, cmd).await?)?;
        match answered.len() {
            1 => Ok(answered.remove(0)),
            n => Err(unexpected(what, format!("{n} schedules")).into()),
        }
    }

    /// Finishes runs of `shard` (through its current leader, wherever it is).
    pub async fn record_outcomes(
        &self,
        shard: GroupId,
        outcomes: Vec<crate::schedule::run::Outcome>,
    ) -> Result<(), CallError> {
        let cmd = ShardCommand::RecordOutcomes { outcomes };
        done_of("RecordOutcomes", self.shard(shard, cmd).await?)
    }

    /// One schedule by id, if `shard` holds it.
    pub async fn schedule(&self, shard: GroupId, id: Uuid) -> Result<Option<Schedule>, GroupError> {
        Ok(self
            .shard_read(shard, ShardQuery::GetSchedule { id })
            .await?
            .pop())
    }
}

impl Router {
    /// `query` asked of every shard in `shards` at once; their answers, in order.
    async fn ask_shards(
        &self,
        shards: &[GroupId],
        query: impl Fn() -> ShardQuery,
    ) -> Vec<Result<QueryResult, GroupError>> {
        let reads = shards
            .iter()
            .map(|shard| self.read(*shard, Query::Shard(query())));
        futures::future::join_all(reads).await
    }

    /// A page of `q` (a shard query answered by pages) and where the shard stopped early.
    pub async fn shard_page(
        &self,
        shard: GroupId,
        q: ShardQuery,
    ) -> Result<(Vec<Schedule>, Option<Cursor>), GroupError> {
        match self.read(shard, Query::Shard(q)).await? {
            QueryResult::Page {
                schedules,
                examined_to,
            } => Ok((schedules, examined_to)),
            other => Err(unexpected("shard page", other)),
        }
    }

    /// How many SCHEDULED crons app `app_id` has over `shards` (its shards), counting each
    /// shard no further than `limit`.
    pub async fn count_crons(
        &self,
        shards: &[GroupId],
        app_id: &str,
        limit: usize,
    ) -> Result<usize, GroupError> {
        let count = || ShardQuery::CountAppCrons {
            app_id: app_id.to_string(),
            limit,
        };
        let mut total = 0;
        for answer in self.ask_shards(shards, count).await {
            match answer? {
                QueryResult::Count(n) => total += n,
                other => return Err(unexpected("CountAppCrons", other)),
            }
        }
        Ok(total)
    }

    /// The first `limit` schedules of `page` over `shards` (an app's), in (time, id) order,
    /// and, when a shard stopped early at its work budget, the position up to which every
    /// shard was looked at: the page holds nothing after it, and the next one starts there.
    pub async fn app_schedules(
        &self,
        shards: &[GroupId],
        page: &AppPage,
    ) -> Result<(Vec<Schedule>, Option<Cursor>), GroupError> {
        let query = || ShardQuery::AppSchedules(page.clone());
        let mut pages = vec![];
        for answer in self.ask_shards(shards, query).await {
            match answer? {
                QueryResult::Page {
                    schedules,
                    examined_to,
                } => pages.push((schedules, examined_to)),
                other => return Err(unexpected("AppSchedules", other)),
            }
        }
        Ok(merge_pages(pages, Cursor::of, page.limit))
    }

    /// The first `limit` crons of `app_id` over `shards` with `status`, by id, after
    /// `after`; and, when a shard stopped early at its work budget, the id up to which
    /// every shard was looked at (as [`Router::app_schedules`]).
    pub async fn app_crons(
        &self,
        shards: &[GroupId],
        app_id: &str,
        status: Option<Status>,
        after: Option<Uuid>,
        limit: usize,
    ) -> Result<(Vec<Schedule>, Option<Uuid>), GroupError> {
        let query = || ShardQuery::AppCrons {
            app_id: app_id.to_string(),
            status,
            limit,
            after,
        };
        let mut pages = vec![];
        for answer in self.ask_shards(shards, query).await {
            match answer? {
                QueryResult::CronPage { crons, examined_to } => pages.push((crons, examined_to)),
                other => return Err(unexpected("AppCrons", other)),
            }
        }
        Ok(merge_pages(pages, |s| s.id, limit))
    }
}

/// Merges shards' pages (each in `key` order, each possibly stopped early at a key) into
/// the first `limit` schedules by `key`, none beyond the earliest stop, and that stop.
fn merge_pages<K: Ord + Copy>(
    pages: Vec<(Vec<Schedule>, Option<K>)>,
    key: impl Fn(&Schedule) -> K,
    limit: usize,
) -> (Vec<Schedule>, Option<K>) {
    let bound = pages.iter().filter_map(|(_, stop)| *stop).min();
    let mut all: Vec<Schedule> = pages.into_iter().flat_map(|(page, _)| page).collect();
    if let Some(b) = bound {
        all.retain(|s| key(s) <= b);
    }
    all.sort_by_key(&key);
    all.truncate(limit);
    (all, bound)
}

/// `cmd`, logged in the audit log of each schedule it changes as done by `by`.
fn audited(by: Actor, cmd: ShardCommand) -> ShardCommand {
    ShardCommand::Audited {
        by,
        cmd: Box::new(cmd),
    }
}
