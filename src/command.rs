//! What goes into a Raft log and what applying it answers.
//!
//! A [`Command`] is proposed by a group's leader and applied by every replica; everything
//! apply needs (ids, times) is stamped into it by the proposer, so applying is
//! deterministic. A [`Query`] is a linearizable read served by the leader. Both name the
//! kind of group they are for: [`MetaCommand`] / [`MetaQuery`] for the meta group,
//! [`ShardCommand`] / [`ShardQuery`] for a shard. [`SchedulerLog`] gives them to the
//! Raft layer as its [`LogTypes`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use uuid::Uuid;

use crate::meta::app::{App, AppToken};
use crate::meta::bulk::BulkJob;
use crate::raft::LogTypes;
use crate::schedule::change::ScheduleChange;
use crate::schedule::page::Cursor;
use crate::schedule::run::Outcome;
use crate::schedule::{Schedule, Status};

/// What every group's log carries: commands and their replies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct SchedulerLog;

impl LogTypes for SchedulerLog {
    type Command = Command;
    type Reply = CommandResult;
}

/// A group of this node, and all of them.
pub type Group = crate::raft::Group<SchedulerLog>;
pub type Groups = crate::raft::Groups<SchedulerLog>;

/// A state change, proposed to one group's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Command {
    Meta(MetaCommand),
    Shard(ShardCommand),
}

/// A state change of the meta group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetaCommand {
    /// Register an app, or re-register it with the same partitions (idempotent).
    RegisterApp { app: App },
    /// Activate (`active = true`) or deactivate an app; `by` is recorded for its
    /// schedules' audit logs.
    SetAppActive {
        app_id: String,
        active: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<Actor>,
    },
    /// Record a new bulk job.
    StartBulkJob { job: BulkJob },
    /// Record a bulk job's progress: `processed` more, now after `cursor`.
    AdvanceBulkJob {
        job_id: Uuid,
        cursor: Option<Cursor>,
        processed: u64,
        done: bool,
        at_ms: u64,
    },
    /// A node started with the data dir of incarnation `incarnation` (proposed by the node
    /// at every start). A node whose id is recorded here and that finds its data dir empty
    /// lost its data: it refuses to take part until removed (which forgets it).
    RecordNode { node_id: u64, incarnation: Uuid },
    /// The node was removed from the cluster: it may join again with an empty data dir.
    ForgetNode { node_id: u64 },
    /// Give an app a new callback signing secret (made by the proposer); the current one
    /// stays valid for `overlap_ms` after `at_ms` (both signatures are sent meanwhile).
    RotateSigningSecret {
        app_id: String,
        secret: String,
        at_ms: u64,
        overlap_ms: u64,
    },
    /// Give an app one more API token (its hash; the proposer made the secret).
    IssueAppToken { app_id: String, token: AppToken },
    /// Revoke one of an app's API tokens.
    RevokeAppToken { app_id: String, token_id: Uuid },
}

/// A state change of one shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShardCommand {
    /// Store new schedules in a shard (ids, partitions and times stamped by the proposer).
    /// `keys[i]`, when given, is schedule i's idempotency key: a create whose key was used
    /// in the last 24 h answers the schedule created then instead (empty in older entries).
    CreateSchedules {
        schedules: Vec<Schedule>,
        #[serde(default)]
        keys: Vec<Option<CreateKey>>,
        /// How many runs of a new cron this entry materialises (the refill worker adds the
        /// rest in bounded entries). Absent in older entries: 120, as they were applied.
        #[serde(default)]
        first_runs: Option<usize>,
        /// The most pending schedules each app's partition may hold (its share of
        /// `limits.max_pending_per_app`): a one-time create beyond it is refused. Empty in
        /// older entries: no cap.
        #[serde(default)]
        pending_caps: BTreeMap<String, u64>,
        /// Set by a proposer that never proposes these schedules again (a create without
        /// idempotency keys is not retried once its fate is unknown), so an item without a
        /// key is stored without looking for an earlier apply of the same create. False in
        /// older entries: every item is looked for.
        #[serde(default)]
        proposed_once: bool,
    },
    /// Delete a schedule (`at_ms`: the proposer's clock; a cron's runs after it go).
    DeleteSchedule { id: Uuid, at_ms: u64 },
    /// Materialise more runs of up to `limit` crons whose runs end soon after `now`.
    RefillCrons { now: i64, limit: usize },
    /// Delete schedules of one shard (ids that are gone already are skipped).
    DeleteSchedules { ids: Vec<Uuid>, at_ms: u64 },
    /// Make finished runs of one shard due again at `at` (epoch seconds).
    ReconcileSchedules { ids: Vec<Uuid>, at: i64 },
    /// Remove finished runs older than their app's cutoff (epoch seconds), looking at no
    /// more than `limit` entries.
    PurgeFinished {
        cutoffs: Vec<(String, i64)>,
        limit: usize,
        /// Forget idempotency keys used before this (epoch ms; 0 in older entries: none).
        #[serde(default)]
        keys_before_ms: u64,
    },
    /// Claim due runs of one shard for `node` until `deadline_ms` (`at_ms`: the proposer's
    /// clock, which decides whether an earlier claim has expired).
    ClaimRuns {
        ids: Vec<Uuid>,
        node: u64,
        deadline_ms: u64,
        at_ms: u64,
        /// The calls each claim may make (its app's retries + 1), in the order of `ids`;
        /// empty in entries written before this was recorded.
        #[serde(default)]
        attempts: Vec<u32>,
    },
    /// One extra run `run_id` of cron `id`, due at `at` (trigger-now; the plan is untouched).
    TriggerRun { id: Uuid, run_id: Uuid, at: i64 },
    /// Pause (`paused`) or resume cron `id` at `at` (epoch seconds, the proposer's clock).
    /// A resume with `catch_up_from` plans the runs missed while paused from then on.
    SetPaused {
        id: Uuid,
        paused: bool,
        at: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        catch_up_from: Option<i64>,
    },
    /// Change schedule `id` in place at `at` (epoch seconds, the proposer's clock).
    UpdateSchedule {
        id: Uuid,
        change: ScheduleChange,
        at: i64,
    },
    /// Finish runs of one shard: SUCCESS / FAILURE after their calls, or MISS.
    RecordOutcomes { outcomes: Vec<Outcome> },
    /// `cmd` (a change a client asked for), recorded in the audit log of each schedule it
    /// changes, as done by `by`.
    Audited { by: Actor, cmd: Box<ShardCommand> },
}

/// Who changed a schedule, for its audit log: the node whose gateway took the request,
/// the caller its token names (none when the cluster has no admin token), and when
/// (the node's clock, epoch ms).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub node: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caller: Option<String>,
    pub at_ms: u64,
}

/// A create's `Idempotency-Key` and a digest of what it asked for (a retry must ask the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateKey {
    pub key: String,
    pub digest: Uuid,
}

/// What a create did with one schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Created {
    /// Stored now.
    New(Schedule),
    /// Its idempotency key had created this schedule already: nothing new was stored.
    Replayed(Schedule),
    /// Refused (e.g. its key was used for a different request).
    Refused(Rejection),
}

impl Command {
    /// Whether proposing this again, after an attempt whose fate is unknown, answers as
    /// the first attempt would have: a create whose every schedule carries an idempotency
    /// key replays what the first attempt stored. The router retries such writes itself.
    pub fn repeatable(&self) -> bool {
        match self {
            Command::Shard(ShardCommand::CreateSchedules {
                schedules, keys, ..
            }) => keys.len() == schedules.len() && keys.iter().all(Option::is_some),
            _ => false,
        }
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::Meta(MetaCommand::IssueAppToken { app_id, token }) => {
                write!(f, "IssueAppToken({app_id}, {})", token.token_id)
            }
            Command::Meta(MetaCommand::RevokeAppToken { app_id, token_id }) => {
                write!(f, "RevokeAppToken({app_id}, {token_id})")
            }
            Command::Meta(MetaCommand::RotateSigningSecret { app_id, .. }) => {
                write!(f, "RotateSigningSecret({app_id})")
            }
            Command::Meta(MetaCommand::RegisterApp { app }) => {
                write!(f, "RegisterApp({})", app.app_id)
            }
            Command::Meta(MetaCommand::SetAppActive { app_id, active, .. }) => {
                write!(f, "SetAppActive({app_id}, {active})")
            }
            Command::Meta(MetaCommand::StartBulkJob { job }) => {
                write!(f, "StartBulkJob({})", job.job_id)
            }
            Command::Meta(MetaCommand::AdvanceBulkJob { job_id, .. }) => {
                write!(f, "AdvanceBulkJob({job_id})")
            }
            Command::Meta(MetaCommand::RecordNode {
                node_id,
                incarnation,
            }) => write!(f, "RecordNode({node_id}, {incarnation})"),
            Command::Meta(MetaCommand::ForgetNode { node_id }) => {
                write!(f, "ForgetNode({node_id})")
            }
            Command::Shard(c) => c.fmt(f),
        }
    }
}

impl std::fmt::Display for ShardCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShardCommand::CreateSchedules { schedules, .. } => {
                write!(f, "CreateSchedules({} schedules)", schedules.len())
            }
            ShardCommand::DeleteSchedule { id, .. } => write!(f, "DeleteSchedule({id})"),
            ShardCommand::RefillCrons { now, .. } => write!(f, "RefillCrons({now})"),
            ShardCommand::DeleteSchedules { ids, .. } => {
                write!(f, "DeleteSchedules({})", ids.len())
            }
            ShardCommand::ReconcileSchedules { ids, .. } => {
                write!(f, "ReconcileSchedules({})", ids.len())
            }
            ShardCommand::PurgeFinished { cutoffs, .. } => {
                write!(f, "PurgeFinished({} apps)", cutoffs.len())
            }
            ShardCommand::ClaimRuns { ids, .. } => write!(f, "ClaimRuns({})", ids.len()),
            ShardCommand::TriggerRun { id, .. } => write!(f, "TriggerRun({id})"),
            ShardCommand::SetPaused { id, paused, .. } => {
                write!(f, "SetPaused({id}, {paused})")
            }
            ShardCommand::UpdateSchedule { id, .. } => write!(f, "UpdateSchedule({id})"),
            ShardCommand::Audited { cmd, .. } => write!(f, "Audited({cmd})"),
            ShardCommand::RecordOutcomes { outcomes } => {
                write!(f, "RecordOutcomes({})", outcomes.len())
            }
        }
    }
}

/// The answer of applying a command on the leader.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub enum CommandResult {
    /// Nothing to report (blank and membership entries).
    #[default]
    None,
    App(Box<App>),
    Schedules(Vec<Schedule>),
    /// One per schedule of a create, in order.
    Created(Vec<Created>),
    BulkJob(BulkJob),
    /// The command was valid to propose but the state it met refused it.
    Rejected(Rejection),
}

/// A refusal decided by apply from the committed state, the same on every replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    pub reason: RejectReason,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RejectReason {
    /// The app is not registered (API code 4001).
    UnregisteredApp,
    /// Deactivating an app that is not active (API code 4002).
    AlreadyDeactivated,
    /// Activating an app that is already active (API code 4003).
    AlreadyActivated,
    /// The request conflicts with what is stored (API code 400).
    Conflict,
    /// What the command names does not exist (API code 404).
    NotFound,
    /// An idempotency key reused for a different request (API code 422).
    KeyReused,
    /// An idempotency key whose schedule was created and has been deleted since (409).
    KeySpent,
    /// A limit on what an app may hold was reached (429).
    TooMany,
    /// The schedule is not in a state the request applies to (422).
    WrongState,
}

impl Rejection {
    pub fn new(reason: RejectReason, message: impl Into<String>) -> Self {
        Rejection {
            reason,
            message: message.into(),
        }
    }
}

/// A linearizable read of one group's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Query {
    Meta(MetaQuery),
    Shard(ShardQuery),
}

/// A read of the meta group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum MetaQuery {
    /// One app by id.
    GetApp { app_id: String },
    /// The first `limit` apps after `after` (by id): every app, a page at a time.
    ListAppsAfter { after: Option<String>, limit: usize },
    /// One bulk job.
    GetBulkJob { job_id: Uuid },
    /// Every bulk job still running.
    RunningBulkJobs,
    /// The nodes recorded with their data dirs' incarnations.
    Nodes,
    /// The incarnations of removed nodes (refused for good).
    RemovedNodes,
    /// An app's activations and deactivations, newest first.
    AppEvents { app_id: String },
}

/// A read of one shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ShardQuery {
    /// One schedule by id.
    GetSchedule { id: Uuid },
    /// The first schedules of `AppPage` that one shard holds.
    AppSchedules(AppPage),
    /// Up to `limit` runs of a schedule, newest first, strictly before `before`.
    ScheduleRuns {
        id: Uuid,
        when: When,
        now: i64,
        /// Where the previous page ended (future runs ascend, the others descend).
        before: Option<Cursor>,
        limit: usize,
    },
    /// The crons of an app in one shard, with the given status, by id, strictly after
    /// `after`, at most `limit` (fewer when the shard's work budget runs out).
    AppCrons {
        app_id: String,
        status: Option<Status>,
        limit: usize,
        #[serde(default)]
        after: Option<Uuid>,
    },
    /// How many crons of an app are SCHEDULED or PAUSED, counting no further than `limit`.
    CountAppCrons { app_id: String, limit: usize },
    /// The newest `limit` entries of the audit log of schedule `id` of app `app_id`,
    /// newest first.
    AuditLog {
        id: Uuid,
        app_id: String,
        limit: usize,
    },
}

/// Which of an app's schedules to read: time in `[start, end]`, the given status, strictly
/// after `after` in (time, id) order, at most `limit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppPage {
    pub app_id: String,
    pub start: i64,
    pub end: i64,
    pub after: Option<Cursor>,
    pub status: Option<Status>,
    pub limit: usize,
}

/// Which runs of a schedule: due by now (the current second included: those fire now, or
/// have fired), due after the current second, or all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum When {
    Past,
    Future,
    All,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum QueryResult {
    Count(usize),
    /// A shard's part of a page: its schedules, and where it stopped early when its work
    /// budget ran out (nothing after that key was looked at).
    Page {
        schedules: Vec<Schedule>,
        examined_to: Option<Cursor>,
    },
    /// A shard's part of a page of crons (by id), and where it stopped early.
    CronPage {
        crons: Vec<Schedule>,
        examined_to: Option<Uuid>,
    },
    Nodes(Vec<(u64, Uuid)>),
    Apps(Vec<App>),
    Schedules(Vec<Schedule>),
    BulkJobs(Vec<BulkJob>),
    Audit(Vec<crate::shard::audit::AuditEntry>),
}
