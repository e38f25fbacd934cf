//! The shard state machine with hand-built commands: no Raft, no network.

use uuid::Uuid;

use super::{cron_runs, keys, logic::apply, query::query};
use crate::command::{
    AppPage, CommandResult, Created, QueryResult, RejectReason, ShardCommand as Command,
    ShardQuery as Query, When,
};
use crate::cron::CronSpec;
use crate::ids::GroupId;
use crate::schedule::page::Cursor;
use crate::schedule::{id, HttpCallback, Schedule, Status};
use crate::store::txn::{SmReader, SmTxn};
use crate::store::{self, CF_SM};

const SHARD: GroupId = GroupId(1);
/// 2024-01-01 00:00:00 UTC.
const T0: i64 = 1_704_067_200;

fn one_time(n: u128, time: i64) -> Schedule {
    crate::schedule::one_time_for_test(Uuid::from_u128(n), time)
}

fn cron(expr: &str, created: i64) -> Schedule {
    Schedule {
        id: id::new_id(GroupId::shard(0), (created as u64) * 1000),
        cron: Some(CronSpec {
            expression: expr.into(),
            timezone: None,
            ..Default::default()
        }),
        schedule_time: created,
        created_at_ms: (created as u64) * 1000,
        ..one_time(0, created)
    }
}

/// A create of `schedules` without idempotency keys.
fn create(schedules: Vec<Schedule>) -> Command {
    Command::CreateSchedules {
        schedules,
        keys: vec![],
        first_runs: None,
        pending_caps: Default::default(),
        proposed_once: true,
    }
}

fn commit(db: &rocksdb::DB, cmds: &[Command]) -> Vec<CommandResult> {
    let mut txn = SmTxn::new(db, SHARD);
    let out = cmds.iter().map(|c| apply(&mut txn, c).unwrap()).collect();
    let mut batch = rocksdb::WriteBatch::default();
    txn.write_into(&mut batch).unwrap();
    db.write(batch).unwrap();
    out
}

fn count(db: &rocksdb::DB, prefix: u8) -> usize {
    let cf = db.cf_handle(CF_SM).unwrap();
    db.prefix_iterator_cf(cf, store::keys::sm_key(SHARD, &[prefix]))
        .take_while(|kv| {
            kv.as_ref().unwrap().0[..8] == SHARD.prefix() && kv.as_ref().unwrap().0[8] == prefix
        })
        .count()
}

fn get(db: &rocksdb::DB, q: Query) -> Vec<Schedule> {
    match query(&SmReader::new(db, SHARD), &q).unwrap() {
        QueryResult::Schedules(s)
        | QueryResult::Page { schedules: s, .. }
        | QueryResult::CronPage { crons: s, .. } => s,
        other => panic!("{other:?}"),
    }
}

/// A paged query's answer: how many schedules, and where the shard stopped early.
fn page_of(db: &rocksdb::DB, q: Query) -> (usize, Option<Cursor>) {
    match query(&SmReader::new(db, SHARD), &q).unwrap() {
        QueryResult::Page {
            schedules,
            examined_to,
        } => (schedules.len(), examined_to),
        other => panic!("{other:?}"),
    }
}

fn runs(db: &rocksdb::DB, id: Uuid, when: When, now: i64, before: Option<Cursor>) -> Vec<i64> {
    let q = Query::ScheduleRuns {
        id,
        when,
        now,
        before,
        limit: 1000,
    };
    get(db, q).iter().map(|s| s.schedule_time).collect()
}

#[test]
fn create_is_idempotent_and_delete_removes_every_index_entry() {
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let (a, b) = (one_time(1, 100), one_time(2, 200));
    let first = commit(&db, &[create(vec![a.clone(), b.clone()])]);
    assert_eq!(
        first[0],
        CommandResult::Created(vec![Created::New(a.clone()), Created::New(b.clone())])
    );
    // The same id again (a retried request) returns what is stored and changes nothing.
    let again = commit(&db, &[older_create(vec![one_time(1, 999)])]);
    assert_eq!(
        again[0],
        CommandResult::Created(vec![Created::New(a.clone())])
    );
    assert_eq!(
        (
            count(&db, keys::SCHEDULE),
            count(&db, keys::TIME),
            count(&db, keys::APP)
        ),
        (2, 2, 2)
    );
    assert_eq!(get(&db, Query::GetSchedule { id: a.id }), vec![a.clone()]);

    let del = |id| Command::DeleteSchedule { id, at_ms: 0 };
    let deleted = commit(&db, &[del(a.id), del(a.id)]);
    assert_eq!(deleted[0], CommandResult::Schedules(vec![a.clone()]));
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
    assert!(get(&db, Query::GetSchedule { id: a.id }).is_empty());
}

#[test]
fn app_queries_page_by_time_then_id_within_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let all: Vec<Schedule> = (1..=6).map(|n| one_time(n, 100 + (n as i64 % 3))).collect();
    commit(&db, &[create(all)]);
    let page = |after: Option<Cursor>, limit| {
        let q = Query::AppSchedules(AppPage {
            app_id: "revamp".into(),
            start: 100,
            end: 101,
            after,
            status: None,
            limit,
        });
        get(&db, q)
            .iter()
            .map(|s| (s.schedule_time, s.id.as_u128()))
            .collect::<Vec<_>>()
    };
    assert_eq!(page(None, 10), vec![(100, 3), (100, 6), (101, 1), (101, 4)]);
    let cursor = Cursor {
        time: 100,
        id: Uuid::from_u128(6),
    };
    assert_eq!(page(Some(cursor), 1), vec![(101, 1)]);
}

#[test]
fn a_page_stops_at_its_work_budget_and_says_where() {
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    // 25,000 pending schedules, then a query for finished ones: none match.
    for chunk in 0..25u128 {
        let batch = (0..1000)
            .map(|n| one_time(1 + chunk * 1000 + n, 100))
            .collect();
        commit(&db, &[create(batch)]);
    }
    let page = |after: Option<Cursor>, status: Option<Status>, limit| {
        let q = Query::AppSchedules(AppPage {
            app_id: "revamp".into(),
            start: 100,
            end: 100,
            after,
            status,
            limit,
        });
        page_of(&db, q)
    };
    let (found, stopped) = page(None, Some(Status::Success), 10);
    let stopped = stopped.expect("stopped at the key budget");
    assert_eq!((found, stopped.id), (0, Uuid::from_u128(20_000)));
    // Going on from there reaches the end of the range: no more to say.
    assert_eq!(page(Some(stopped), Some(Status::Success), 10), (0, None));
    // Unfiltered, the limit ends the page first.
    assert_eq!(page(None, None, 1000), (1000, None));

    // Large payloads stop a page at the byte budget.
    let big: Vec<Schedule> = (0..200u128)
        .map(|n| Schedule {
            payload: "x".repeat(60_000),
            ..one_time(100_000 + n, 200)
        })
        .collect();
    commit(&db, &[create(big)]);
    let q = Query::AppSchedules(AppPage {
        app_id: "revamp".into(),
        start: 200,
        end: 200,
        after: None,
        status: None,
        limit: 1000,
    });
    match query(&SmReader::new(&db, SHARD), &q).unwrap() {
        QueryResult::Page {
            schedules,
            examined_to,
        } => {
            assert!(
                schedules.len() < 200 && schedules.len() > 100,
                "{}",
                schedules.len()
            );
            let last = schedules.last().unwrap();
            assert_eq!(examined_to.map(|c| c.id), Some(last.id));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_cron_materialises_runs_refills_them_and_its_delete_removes_future_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let c = cron("*/10 * * * *", T0);
    let created = commit(&db, &[create(vec![c.clone()])]);
    let CommandResult::Created(created) = &created[0] else {
        panic!("{created:?}")
    };
    let [Created::New(created)] = &created[..] else {
        panic!("{created:?}")
    };
    assert_eq!(created.runs_until, Some(T0 + cron_runs::RUN_WINDOW_SECS));
    // Runs every 10 minutes for the next hour: 6 of them, soonest first, linked to the cron.
    let future = runs(&db, c.id, When::Future, T0, None);
    assert_eq!(future, (1..=6).map(|i| T0 + i * 600).collect::<Vec<_>>());
    // Paged: each page goes on after the last run of the one before, in the same order.
    let first = runs(&db, c.id, When::Future, T0, None);
    let cursor = Cursor {
        time: first[1],
        id: id::run_id(c.id, first[1]),
    };
    let rest = runs(&db, c.id, When::Future, T0, Some(cursor));
    assert_eq!(rest, (3..=6).map(|i| T0 + i * 600).collect::<Vec<_>>());
    let run = &get(
        &db,
        Query::GetSchedule {
            id: id::run_id(c.id, T0 + 600),
        },
    )[0];
    assert_eq!((run.parent, run.status), (Some(c.id), Status::Scheduled));
    assert_eq!(count(&db, keys::TIME), 6);
    assert_eq!(
        get(
            &db,
            Query::AppCrons {
                app_id: "revamp".into(),
                status: None,
                limit: 10,
                after: None,
            }
        )
        .len(),
        1
    );

    // Not due for a refill until its runs end within REFILL_AHEAD of now.
    let reader = SmReader::new(&db, SHARD);
    assert!(!cron_runs::refill_due(&reader, T0).unwrap());
    let later = T0 + cron_runs::RUN_WINDOW_SECS - cron_runs::REFILL_AHEAD_SECS + 1;
    assert!(cron_runs::refill_due(&reader, later).unwrap());
    commit(
        &db,
        &[Command::RefillCrons {
            now: later,
            limit: 10,
        }],
    );
    assert_eq!(
        runs(&db, c.id, When::All, later, None).len(),
        6 + 5,
        "up to later + 1 h"
    );
    assert!(!cron_runs::refill_due(&SmReader::new(&db, SHARD), later).unwrap());

    // Paging runs newest first with a cursor.
    let all = runs(&db, c.id, When::All, later, None);
    let cursor = Cursor {
        time: all[2],
        id: id::run_id(c.id, all[2]),
    };
    assert_eq!(
        runs(&db, c.id, When::All, later, Some(cursor)),
        all[3..].to_vec()
    );
    // Past and future split at the end of the current second: a run due now is past.
    let now = T0 + 1800;
    assert_eq!(
        runs(&db, c.id, When::Past, now, None),
        vec![T0 + 1800, T0 + 1200, T0 + 600]
    );
    assert_eq!(runs(&db, c.id, When::Future, now, None)[0], T0 + 2400);
    assert_eq!(
        runs(&db, c.id, When::Past, now - 1, None),
        vec![T0 + 1200, T0 + 600]
    );
    assert_eq!(runs(&db, c.id, When::Future, now - 1, None)[0], T0 + 1800);

    // Delete at `now`: DELETED, runs after now removed, runs before kept; a second delete 404s.
    let del = Command::DeleteSchedule {
        id: c.id,
        at_ms: (now as u64) * 1000,
    };
    let out = commit(&db, &[del.clone(), del]);
    assert!(matches!(&out[0], CommandResult::Schedules(s) if s[0].status == Status::Deleted));
    assert!(matches!(&out[1], CommandResult::Rejected(r) if r.reason == RejectReason::NotFound));
    assert_eq!(
        runs(&db, c.id, When::All, now, None),
        vec![T0 + 1800, T0 + 1200, T0 + 600]
    );
    assert_eq!(count(&db, keys::TIME), 3);
    assert_eq!(
        count(&db, keys::HORIZON),
        0,
        "a deleted cron is never refilled"
    );
    let deleted = Query::AppCrons {
        app_id: "revamp".into(),
        status: Some(Status::Deleted),
        limit: 10,
        after: None,
    };
    assert_eq!(get(&db, deleted).len(), 1);
}

#[test]
fn a_dense_cron_is_refilled_in_bounded_steps() {
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let c = cron("* * * * * *", T0);
    commit(&db, &[create(vec![c.clone()])]);
    assert_eq!(
        runs(&db, c.id, When::All, T0, None).len(),
        cron_runs::MAX_RUNS_PER_REFILL
    );
    // Refills ahead of time until the runs reach REFILL_AHEAD past now, each bounded.
    for _ in 0..10 {
        commit(&db, &[Command::RefillCrons { now: T0, limit: 10 }]);
    }
    let n = runs(&db, c.id, When::All, T0, None).len() as i64;
    assert!(
        n >= cron_runs::REFILL_AHEAD_SECS
            && n <= cron_runs::REFILL_AHEAD_SECS + 2 * cron_runs::MAX_RUNS_PER_REFILL as i64,
        "{n} runs"
    );
}

#[test]
fn a_cron_costs_its_create_a_few_runs_and_its_runs_share_its_payload() {
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let c = Schedule {
        payload: "p".repeat(65_000),
        ..cron("* * * * * *", T0)
    };
    commit(
        &db,
        &[Command::CreateSchedules {
            schedules: vec![c.clone()],
            keys: vec![],
            first_runs: Some(cron_runs::FIRST_RUNS),
            pending_caps: Default::default(),
            proposed_once: true,
        }],
    );
    let times = runs(&db, c.id, When::All, T0, None);
    assert_eq!(times.len(), cron_runs::FIRST_RUNS);
    // Stored without a payload: the runs' records are small whatever the cron's payload.
    let first = id::run_id(c.id, times[times.len() - 1]);
    let raw: Schedule = SmReader::new(&db, SHARD)
        .get(&keys::schedule(&first))
        .unwrap()
        .unwrap();
    assert!(raw.payload.is_empty());
    assert!(raw.encoded_len() < 1000, "{} bytes", raw.encoded_len());
    // Every read and every claim answers the cron's payload.
    assert_eq!(stored(&db, first).payload, c.payload);
    let listed = get(
        &db,
        Query::ScheduleRuns {
            id: c.id,
            when: When::All,
            now: T0,
            before: None,
            limit: 100,
        },
    );
    assert!(listed.iter().all(|r| r.payload == c.payload));
    match &commit(&db, &[claim(&[first], 1, 5_000, 1_000)])[0] {
        CommandResult::Schedules(claimed) => assert_eq!(claimed[0].payload, c.payload),
        other => panic!("{other:?}"),
    }
    // The refill worker adds the rest in bounded entries.
    commit(&db, &[Command::RefillCrons { now: T0, limit: 10 }]);
    // 130 runs of a 65,000-byte payload: a page holds what fits in 8 MiB (128) and says
    // where it stopped; the next page has the rest.
    let page = |before: Option<Cursor>| {
        let q = Query::ScheduleRuns {
            id: c.id,
            when: When::All,
            now: T0,
            before,
            limit: 1000,
        };
        page_of(&db, q)
    };
    let (first, stopped) = page(None);
    assert_eq!(first, (8 << 20) / (65_000 + 512));
    let (rest, end) = page(stopped);
    assert_eq!(
        (first + rest, end),
        (cron_runs::FIRST_RUNS + cron_runs::MAX_RUNS_PER_REFILL, None)
    );
}

#[test]
fn retention_purges_old_finished_runs_only_in_bounded_steps() {
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let with = |n: u128, time: i64, status: Status| Schedule {
        status,
        ..one_time(n, time)
    };
    let mut all = vec![];
    for n in 0..10u128 {
        all.push(with(n, 100 + n as i64, Status::Success)); // old and finished
    }
    all.push(with(20, 105, Status::Scheduled)); // old but pending: kept
    all.push(with(21, 106, Status::Failure)); // old, finished
    all.push(with(22, 500, Status::Miss)); // finished but recent: kept
    let other_app = Schedule {
        app_id: "other".into(),
        ..with(30, 100, Status::Success)
    };
    all.push(other_app);
    commit(&db, &[create(all)]);
    assert_eq!(count(&db, keys::SCHEDULE), 14);

    let purge = |limit| Command::PurgeFinished {
        keys_before_ms: 0,
        cutoffs: vec![("revamp".into(), 200)],
        limit,
    };
    // A bounded step looks at 4 entries only.
    commit(&db, &[purge(4)]);
    assert_eq!(count(&db, keys::SCHEDULE), 10);
    commit(&db, &[purge(1000)]);
    let left: Vec<u128> = {
        let q = Query::AppSchedules(AppPage {
            app_id: "revamp".into(),
            start: 0,
            end: 1000,
            after: None,
            status: None,
            limit: 100,
        });
        get(&db, q).iter().map(|s| s.id.as_u128()).collect()
    };
    assert_eq!(left, vec![20, 22], "pending and recent runs stay");
    assert_eq!(
        count(&db, keys::SCHEDULE),
        3,
        "another app's runs are not this cutoff's"
    );
}

fn claim(ids: &[Uuid], node: u64, deadline_ms: u64, at_ms: u64) -> Command {
    Command::ClaimRuns {
        ids: ids.to_vec(),
        node,
        deadline_ms,
        at_ms,
        attempts: vec![],
    }
}

fn claimed_ids(r: &CommandResult) -> Vec<Uuid> {
    match r {
        CommandResult::Schedules(s) => s.iter().map(|s| s.id).collect(),
        other => panic!("{other:?}"),
    }
}

fn stored(db: &rocksdb::DB, id: Uuid) -> Schedule {
    get(db, Query::GetSchedule { id }).pop().expect("stored")
}

fn attempt(n: u32, status: u16) -> crate::schedule::run::Attempt {
    crate::schedule::run::Attempt {
        attempt: n,
        fired_at: 1,
        http_status: Some(status),
        latency_ms: 1,
        error: (status >= 300).then(|| format!("HTTP {status}")),
    }
}

#[test]
fn a_claim_moves_runs_out_of_the_time_index_until_its_deadline() {
    use crate::schedule::run::Outcome;
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let (a, b) = (one_time(1, 100), one_time(2, 200));
    commit(&db, &[create(vec![a.clone(), b.clone()])]);
    let reader = SmReader::new(&db, SHARD);
    assert_eq!(
        super::claims::due_runs(&reader, i64::MIN, 150, 10).unwrap(),
        vec![(100, a.id)]
    );
    // Claimed once: out of the time index, into the claim index; a second claim before
    // the deadline takes nothing.
    let out = commit(&db, &[claim(&[a.id], 1, 5_000, 1_000)]);
    assert_eq!(claimed_ids(&out[0]), vec![a.id]);
    assert!(super::claims::due_runs(&reader, i64::MIN, 150, 10)
        .unwrap()
        .is_empty());
    let out = commit(&db, &[claim(&[a.id], 2, 9_000, 4_999)]);
    assert!(claimed_ids(&out[0]).is_empty());
    assert_eq!(stored(&db, a.id).claim.unwrap().node, 1);
    // After the deadline another node may claim it again.
    assert_eq!(
        super::claims::expired_claims(&reader, 0, 5_000, 10).unwrap(),
        vec![a.id]
    );
    let out = commit(&db, &[claim(&[a.id], 2, 9_000, 5_000)]);
    assert_eq!(claimed_ids(&out[0]), vec![a.id]);
    // The first claimer may have called once: the re-send is at least attempt 2.
    assert_eq!(stored(&db, a.id).claim.unwrap().first_attempt, 2);
    assert_eq!(count(&db, keys::CLAIM), 1);
    // An outcome ends it; a second outcome (the first claimer's, late) changes nothing.
    let success = Outcome::of_attempts(a.id, vec![attempt(1, 500), attempt(2, 200)]);
    commit(
        &db,
        &[Command::RecordOutcomes {
            outcomes: vec![success],
        }],
    );
    let late = Outcome::of_attempts(a.id, vec![attempt(1, 503)]);
    commit(
        &db,
        &[Command::RecordOutcomes {
            outcomes: vec![late],
        }],
    );
    let done = stored(&db, a.id);
    assert_eq!(done.status, Status::Success);
    assert_eq!(done.attempts.len(), 2);
    assert_eq!(done.attempt_count(), 2);
    assert!(done.claim.is_none());
    assert_eq!(count(&db, keys::CLAIM), 0);
    // A SUCCESS for a run never claimed is refused; a MISS is taken.
    let unclaimed = Outcome::of_attempts(b.id, vec![attempt(1, 200)]);
    commit(
        &db,
        &[Command::RecordOutcomes {
            outcomes: vec![unclaimed],
        }],
    );
    assert_eq!(stored(&db, b.id).status, Status::Scheduled);
    commit(
        &db,
        &[Command::RecordOutcomes {
            outcomes: vec![Outcome::miss(b.id, "app deactivated")],
        }],
    );
    let missed = stored(&db, b.id);
    assert_eq!(missed.status, Status::Miss);
    assert_eq!(missed.error_message.as_deref(), Some("app deactivated"));
    assert_eq!(count(&db, keys::TIME), 0);
    // Reconcile makes it due again; its next claim continues the attempt count.
    commit(
        &db,
        &[Command::ReconcileSchedules {
            ids: vec![a.id],
            at: 300,
        }],
    );
    assert_eq!(
        super::claims::due_runs(&reader, i64::MIN, 300, 10).unwrap(),
        vec![(300, a.id)]
    );
    let out = commit(&db, &[claim(&[a.id], 3, 20_000, 10_000)]);
    match &out[0] {
        CommandResult::Schedules(s) => assert_eq!(s[0].claim.unwrap().first_attempt, 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn deleting_a_claimed_run_clears_its_claim_entry() {
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let a = one_time(1, 100);
    commit(
        &db,
        &[
            create(vec![a.clone()]),
            claim(&[a.id], 1, 5_000, 1_000),
            Command::DeleteSchedule {
                id: a.id,
                at_ms: 1_000,
            },
        ],
    );
    assert_eq!(count(&db, keys::CLAIM), 0);
    assert_eq!(count(&db, keys::SCHEDULE), 0);
}

#[test]
fn only_an_outcome_of_the_current_claim_finishes_a_run() {
    use crate::schedule::run::{Fence, Outcome};
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let a = one_time(1, 100);
    commit(
        &db,
        &[create(vec![a.clone()]), claim(&[a.id], 1, 5_000, 1_000)],
    );
    let first = stored(&db, a.id).claim.unwrap().fence();
    let record = |o: Outcome| Command::RecordOutcomes { outcomes: vec![o] };
    // A MISS meant for an unclaimed run does not end a claimed one.
    let miss = Outcome::miss(a.id, "found late").fenced(Fence::Unclaimed);
    commit(&db, &[record(miss)]);
    assert_eq!(stored(&db, a.id).status, Status::Scheduled);
    // The first claim expires and node 2 claims again: node 1's late outcome is stale.
    commit(&db, &[claim(&[a.id], 2, 9_000, 5_000)]);
    let second = stored(&db, a.id).claim.unwrap().fence();
    assert_ne!(first, second);
    let stale = Outcome::of_attempts(a.id, vec![attempt(1, 500)]).fenced(first);
    commit(&db, &[record(stale)]);
    let s = stored(&db, a.id);
    assert_eq!((s.status, s.attempts.len()), (Status::Scheduled, 0));
    assert_eq!(s.claim.unwrap().node, 2);
    assert_eq!(count(&db, keys::CLAIM), 1);
    // The current claim's outcome ends it.
    let current = Outcome::of_attempts(a.id, vec![attempt(2, 200)]).fenced(second);
    commit(&db, &[record(current.clone())]);
    let s = stored(&db, a.id);
    assert_eq!((s.status, s.attempts.len()), (Status::Success, 1));
    assert_eq!(count(&db, keys::CLAIM), 0);
    // Re-armed by a reconcile, the run is pending and unclaimed again: an outcome of its
    // old claim arriving now is stale too; a MISS fenced for an unclaimed run is taken.
    commit(
        &db,
        &[Command::ReconcileSchedules {
            ids: vec![a.id],
            at: 300,
        }],
    );
    commit(&db, &[record(current)]);
    assert_eq!(stored(&db, a.id).status, Status::Scheduled);
    let miss = Outcome::miss(a.id, "app deactivated").fenced(Fence::Unclaimed);
    commit(&db, &[record(miss)]);
    assert_eq!(stored(&db, a.id).status, Status::Miss);
    assert_eq!(count(&db, keys::TIME), 0);
}

#[test]
fn a_run_claimed_again_numbers_its_calls_after_every_number_the_expired_claim_could_use() {
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let a = one_time(1, 100);
    let create_a = create(vec![a.clone()]);
    let claim_with = |node, deadline_ms, at_ms| Command::ClaimRuns {
        ids: vec![a.id],
        node,
        deadline_ms,
        at_ms,
        attempts: vec![4],
    };
    commit(&db, &[create_a, claim_with(1, 5_000, 1_000)]);
    let first = stored(&db, a.id).claim.unwrap();
    assert_eq!((first.first_attempt, first.attempts), (1, 4));
    // Node 1 may have made calls 1..=4 before it vanished: node 2 starts at 5.
    commit(&db, &[claim_with(2, 9_000, 5_000)]);
    assert_eq!(stored(&db, a.id).claim.unwrap().first_attempt, 5);
    // And a third claimer after node 2's calls 5..=8.
    commit(&db, &[claim_with(3, 20_000, 9_000)]);
    assert_eq!(stored(&db, a.id).claim.unwrap().first_attempt, 9);
}

#[test]
fn an_idempotency_key_answers_its_first_create_for_its_window_then_is_forgotten() {
    use super::idempotency::WINDOW_MS;
    use crate::command::CreateKey;
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let key = |digest: u128| CreateKey {
        key: "order-42".into(),
        digest: Uuid::from_u128(digest),
    };
    let created_at = |n: u128, ms: u64| Schedule {
        created_at_ms: ms,
        ..one_time(n, 100)
    };
    let create_keyed = |s: Schedule, k: CreateKey| Command::CreateSchedules {
        schedules: vec![s],
        keys: vec![Some(k)],
        first_runs: None,
        pending_caps: Default::default(),
        proposed_once: true,
    };
    let only = |r: Vec<CommandResult>| match r.into_iter().next() {
        Some(CommandResult::Created(mut c)) => c.remove(0),
        other => panic!("{other:?}"),
    };
    let t = 1_000_000;
    // The first create stores schedule 1; a retry (new id 2, same request) answers 1.
    assert!(
        matches!(only(commit(&db, &[create_keyed(created_at(1, t), key(7))])), Created::New(s) if s.id == Uuid::from_u128(1))
    );
    let retry = only(commit(&db, &[create_keyed(created_at(2, t + 5), key(7))]));
    assert!(
        matches!(&retry, Created::Replayed(s) if s.id == Uuid::from_u128(1)),
        "{retry:?}"
    );
    assert!(get(
        &db,
        Query::GetSchedule {
            id: Uuid::from_u128(2)
        }
    )
    .is_empty());
    // Within one entry too: the second of two creates with one key is the first's.
    let both = commit(
        &db,
        &[Command::CreateSchedules {
            schedules: vec![created_at(3, t), created_at(4, t)],
            keys: vec![
                Some(CreateKey {
                    key: "k2".into(),
                    digest: Uuid::from_u128(9),
                }),
                Some(CreateKey {
                    key: "k2".into(),
                    digest: Uuid::from_u128(9),
                }),
            ],
            first_runs: None,
            pending_caps: Default::default(),
            proposed_once: true,
        }],
    );
    assert!(
        matches!(&both[0], CommandResult::Created(c) if matches!(&c[1], Created::Replayed(s) if s.id == Uuid::from_u128(3))),
        "{both:?}"
    );
    // The same key for a different request is refused, and stores nothing.
    let other = only(commit(&db, &[create_keyed(created_at(5, t + 9), key(8))]));
    assert!(
        matches!(&other, Created::Refused(r) if r.reason == RejectReason::KeyReused),
        "{other:?}"
    );
    // Its schedule deleted, the key is spent: refused, not created again.
    commit(
        &db,
        &[Command::DeleteSchedule {
            id: Uuid::from_u128(1),
            at_ms: t + 10,
        }],
    );
    let spent = only(commit(&db, &[create_keyed(created_at(6, t + 20), key(7))]));
    assert!(
        matches!(&spent, Created::Refused(r) if r.reason == RejectReason::KeySpent),
        "{spent:?}"
    );
    // After the window the key is new again.
    let later = only(commit(
        &db,
        &[create_keyed(created_at(7, t + WINDOW_MS), key(7))],
    ));
    assert!(
        matches!(&later, Created::New(s) if s.id == Uuid::from_u128(7)),
        "{later:?}"
    );
    // Retention forgets keys used before its cut-off: k2 (used at t) goes, order-42's
    // renewed use (at t + WINDOW_MS) stays.
    assert_eq!(count(&db, keys::IDEMPOTENCY), 2);
    commit(
        &db,
        &[Command::PurgeFinished {
            cutoffs: vec![],
            limit: 100,
            keys_before_ms: t + 1000,
        }],
    );
    assert_eq!(
        (
            count(&db, keys::IDEMPOTENCY),
            count(&db, keys::IDEMPOTENCY_AGE)
        ),
        (1, 1)
    );
}

#[test]
fn only_a_create_keyed_in_every_schedule_may_be_proposed_again() {
    use crate::command::{Command as Any, CreateKey};
    let key = || {
        Some(CreateKey {
            key: "k".into(),
            digest: Uuid::from_u128(1),
        })
    };
    let create = |keys: Vec<Option<CreateKey>>| {
        Any::Shard(Command::CreateSchedules {
            schedules: vec![one_time(1, T0), one_time(2, T0)],
            keys,
            first_runs: None,
            pending_caps: Default::default(),
            proposed_once: true,
        })
    };
    assert!(create(vec![key(), key()]).repeatable());
    assert!(!create(vec![key(), None]).repeatable());
    assert!(!create(vec![]).repeatable());
    let delete = Any::Shard(Command::DeleteSchedule {
        id: Uuid::from_u128(1),
        at_ms: 1,
    });
    assert!(!delete.repeatable());
}

#[test]
fn pending_counts_follow_every_change_and_cap_one_time_creates() {
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let pending =
        |db: &rocksdb::DB| super::pending::of(&SmTxn::new(db, SHARD), "revamp", 0).unwrap();
    let capped = |schedules: Vec<Schedule>, cap: u64| Command::CreateSchedules {
        schedules,
        keys: vec![],
        first_runs: Some(5),
        pending_caps: [("revamp".to_string(), cap)].into(),
        proposed_once: true,
    };
    let refused = |r: &CommandResult| match r {
        CommandResult::Created(c) => {
            matches!(&c[0], Created::Refused(r) if r.reason == RejectReason::TooMany)
        }
        _ => false,
    };
    let (a, b, c) = (one_time(1, T0), one_time(2, T0), one_time(3, T0));
    commit(&db, &[capped(vec![a.clone(), b.clone()], 2)]);
    assert_eq!(pending(&db), 2);
    // Full: a third is refused and nothing is stored.
    assert!(refused(&commit(&db, &[capped(vec![c.clone()], 2)])[0]));
    assert_eq!(count(&db, keys::SCHEDULE), 2);
    // A MISS finishes one: room again.
    let miss = crate::schedule::run::Outcome::miss(a.id, "app deactivated");
    commit(
        &db,
        &[Command::RecordOutcomes {
            outcomes: vec![miss],
        }],
    );
    assert_eq!(pending(&db), 1);
    assert!(!refused(&commit(&db, &[capped(vec![c.clone()], 2)])[0]));
    assert_eq!(pending(&db), 2);
    // Reconcile re-arms a (3); deleting pending ones lowers the count.
    let rearm = Command::ReconcileSchedules {
        ids: vec![a.id],
        at: T0,
    };
    commit(&db, &[rearm]);
    assert_eq!(pending(&db), 3);
    let delete = |id: Uuid| Command::DeleteSchedules {
        ids: vec![id],
        at_ms: 1,
    };
    commit(&db, &[delete(b.id), delete(a.id)]);
    assert_eq!(pending(&db), 1);
    // A cron is never refused by the cap (crons have theirs); its runs count while pending
    // and go with it.
    let every_second = cron("* * * * * *", T0);
    assert!(!refused(
        &commit(&db, &[capped(vec![every_second.clone()], 1)])[0]
    ));
    assert_eq!(pending(&db), 1 + 5);
    commit(&db, &[delete(every_second.id)]);
    assert_eq!(pending(&db), 1);
    commit(&db, &[delete(c.id)]);
    assert_eq!(pending(&db), 0);
    assert_eq!(count(&db, keys::PENDING), 0, "a zero count is not stored");
}

#[test]
fn crons_are_listed_by_id_a_page_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let crons: Vec<Schedule> = (0..5).map(|i| cron("0 * * * * *", T0 + i)).collect();
    commit(&db, &[create(crons.clone())]);
    let page = |after: Option<Uuid>, limit: usize| {
        let q = Query::AppCrons {
            app_id: "revamp".into(),
            status: None,
            limit,
            after,
        };
        get(&db, q).iter().map(|s| s.id).collect::<Vec<_>>()
    };
    let ids: Vec<Uuid> = crons.iter().map(|c| c.id).collect();
    assert_eq!(page(None, 2), ids[..2]);
    assert_eq!(page(Some(ids[1]), 2), ids[2..4]);
    assert_eq!(page(Some(ids[3]), 2), ids[4..]);
    assert!(page(Some(ids[4]), 2).is_empty());
    assert_eq!(page(None, 100), ids);
}

#[test]
fn a_paused_cron_loses_its_unclaimed_future_runs_and_resumes_from_then() {
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let c = cron("*/10 * * * *", T0);
    let once = one_time(7, T0 + 100);
    commit(&db, &[create(vec![c.clone(), once.clone()])]);
    let set = |paused: bool, at: i64| Command::SetPaused {
        id: c.id,
        paused,
        at,
        catch_up_from: None,
    };
    let results = commit(&db, &[set(true, T0 + 5), set(true, T0 + 6)]);
    for r in &results {
        let CommandResult::Schedules(s) = r else {
            panic!("{r:?}")
        };
        assert_eq!(s[0].status, Status::Paused);
        assert_eq!(s[0].runs_until, None, "no more refills");
    }
    assert!(runs(&db, c.id, When::Future, T0 + 5, None).is_empty());
    // The refill of a later second leaves it alone.
    commit(
        &db,
        &[Command::RefillCrons {
            now: T0 + 1200,
            limit: 100,
        }],
    );
    assert!(runs(&db, c.id, When::Future, T0 + 1200, None).is_empty());
    // Resumed at T0 + 1800: runs from then on only.
    let resumed = commit(&db, &[set(false, T0 + 1800)]);
    let CommandResult::Schedules(s) = &resumed[0] else {
        panic!("{resumed:?}")
    };
    assert_eq!(s[0].status, Status::Scheduled);
    let future = runs(&db, c.id, When::Future, T0 + 1800, None);
    assert_eq!(future.first(), Some(&(T0 + 2400)), "{future:?}");
    // Not a cron, or gone: refused, nothing changed.
    for (id, paused) in [(once.id, true), (Uuid::from_u128(99), false)] {
        let cmd = Command::SetPaused {
            id,
            paused,
            at: T0,
            catch_up_from: None,
        };
        let r = commit(&db, &[cmd]);
        assert!(matches!(r[0], CommandResult::Rejected(_)), "{r:?}");
    }
}

#[test]
fn an_update_plans_a_cron_again_keeping_claimed_runs_and_moves_a_one_time_schedule() {
    use crate::schedule::change::ScheduleChange;
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let c = cron("*/10 * * * *", T0);
    let once = one_time(7, T0 + 100);
    commit(&db, &[create(vec![c.clone(), once.clone()])]);
    let update =
        |id: Uuid, change: ScheduleChange, at: i64| Command::UpdateSchedule { id, change, at };
    // The cron's first run is claimed; then its rule and payload change.
    let first = id::run_id(c.id, T0 + 600);
    commit(
        &db,
        &[claim(
            &[first],
            1,
            (T0 as u64 + 700) * 1000,
            (T0 as u64 + 590) * 1000,
        )],
    );
    let change = ScheduleChange {
        expression: Some("*/5 * * * *".into()),
        payload: Some("new".into()),
        ..Default::default()
    };
    let out = commit(&db, &[update(c.id, change, T0 + 590)]);
    let CommandResult::Schedules(s) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(s[0].cron.as_ref().unwrap().expression, "*/5 * * * *");
    assert_eq!(s[0].payload, "new");
    // The claimed run stays as it was (its claim too); the rest follow the new rule.
    let future = runs(&db, c.id, When::Future, T0 + 590, None);
    assert_eq!(&future[..3], &[T0 + 600, T0 + 900, T0 + 1200], "{future:?}");
    assert_eq!(stored(&db, first).claim.unwrap().node, 1);
    assert_eq!(count(&db, keys::CLAIM), 1);
    // A rule that does not parse, a scheduleTime on a cron: refused, nothing changed.
    for change in [
        ScheduleChange {
            expression: Some("61 * * * *".into()),
            ..Default::default()
        },
        ScheduleChange {
            schedule_time: Some(T0 + 1000),
            ..Default::default()
        },
    ] {
        let out = commit(&db, &[update(c.id, change, T0 + 591)]);
        assert!(
            matches!(&out[0], CommandResult::Rejected(r) if r.message.starts_with("validation errors")),
            "{out:?}"
        );
    }
    assert_eq!(runs(&db, c.id, When::Future, T0 + 590, None), future);
    // A one-time schedule moves in the time index.
    let moved = ScheduleChange {
        schedule_time: Some(T0 + 200),
        ..Default::default()
    };
    commit(&db, &[update(once.id, moved.clone(), T0 + 50)]);
    let reader = SmReader::new(&db, SHARD);
    let due = |to| super::claims::due_runs(&reader, i64::MIN, to, 10).unwrap();
    assert!(due(T0 + 150).is_empty());
    assert_eq!(due(T0 + 250), vec![(T0 + 200, once.id)]);
    // Refused: a rule on a one-time schedule, a claimed one, a run of a cron, an unknown id.
    let rule = ScheduleChange {
        expression: Some("* * * * *".into()),
        ..Default::default()
    };
    commit(
        &db,
        &[claim(
            &[once.id],
            1,
            (T0 as u64 + 300) * 1000,
            (T0 as u64 + 199) * 1000,
        )],
    );
    for (id, change, reason) in [
        (once.id, rule, "being fired"),
        (first, moved.clone(), "is a run of recurring schedule"),
        (Uuid::from_u128(99), moved, "not found"),
    ] {
        let out = commit(&db, &[update(id, change, T0 + 199)]);
        assert!(
            matches!(&out[0], CommandResult::Rejected(r) if r.message.contains(reason)),
            "{out:?}"
        );
    }
}

#[test]
fn jitter_spreads_runs_by_a_fixed_offset_and_a_window_ends_refills() {
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let mut jittered = cron("0 * * * * *", T0);
    jittered.cron.as_mut().unwrap().jitter_seconds = Some(10);
    let mut windowed = cron("* * * * * *", T0);
    windowed.id = id::new_id(GroupId::shard(0), (T0 as u64) * 1000 + 1);
    windowed.cron.as_mut().unwrap().end_time = Some(T0 + 5);
    commit(&db, &[create(vec![jittered.clone(), windowed.clone()])]);
    let times = runs(&db, jittered.id, When::Future, T0, None);
    assert_eq!(times.len(), 60, "one per minute for the hour ahead");
    let offsets: Vec<i64> = times.iter().map(|t| t.rem_euclid(60)).collect();
    assert!(offsets.iter().all(|o| (0..10).contains(o)), "{offsets:?}");
    assert!(offsets.iter().any(|o| *o != offsets[0]), "{offsets:?}");
    // Each run keeps its id (from its minute) and its offset across a new plan.
    let change = crate::schedule::change::ScheduleChange {
        callback: Some(HttpCallback {
            url: "http://127.0.0.1:2/cb".into(),
            ..one_time(0, 0).callback
        }),
        ..Default::default()
    };
    commit(
        &db,
        &[Command::UpdateSchedule {
            id: jittered.id,
            change,
            at: T0,
        }],
    );
    // (A new plan makes its first 10 runs at once; refills add the rest.)
    assert_eq!(runs(&db, jittered.id, When::Future, T0, None), times[..10]);
    // A window's end: five runs, then no horizon left to refill.
    assert_eq!(
        runs(&db, windowed.id, When::Future, T0, None),
        (1..=5).map(|s| T0 + s).collect::<Vec<_>>()
    );
    assert_eq!(
        count(&db, keys::HORIZON),
        1,
        "only the unbounded cron is refilled"
    );
}

#[test]
fn audited_changes_are_logged_newest_first_and_purged_with_their_apps_retention() {
    use crate::command::{Actor, QueryResult};
    use crate::shard::audit::AuditAction;
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let c = cron("0 * * * *", T0);
    commit(&db, &[create(vec![c.clone()])]);
    let by = |at_s: i64| Actor {
        node: 2,
        caller: Some("admin".into()),
        at_ms: at_s as u64 * 1000,
    };
    let audited = |at_s: i64, cmd: Command| Command::Audited {
        by: by(at_s),
        cmd: Box::new(cmd),
    };
    let pause = |paused, at| Command::SetPaused {
        id: c.id,
        paused,
        at,
        catch_up_from: None,
    };
    // Two pauses in the same millisecond: the second changes nothing and logs nothing.
    commit(
        &db,
        &[
            audited(T0 + 10, pause(true, T0 + 10)),
            audited(T0 + 10, pause(true, T0 + 10)),
            audited(T0 + 20, pause(false, T0 + 20)),
        ],
    );
    let log = |app: &str| match query(
        &SmReader::new(&db, SHARD),
        &Query::AuditLog {
            id: c.id,
            app_id: app.into(),
            limit: 10,
        },
    )
    .unwrap()
    {
        QueryResult::Audit(entries) => entries.iter().map(|e| e.action).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    use AuditAction::{Create, Pause, Resume};
    assert_eq!(log("revamp"), [Resume, Pause, Create]);
    assert!(log("another").is_empty(), "another app's id finds nothing");
    // Retention: entries before the cutoff go, the create (the record itself) stays.
    let purge = |cutoff: i64| Command::PurgeFinished {
        cutoffs: vec![("revamp".into(), cutoff)],
        limit: 100,
        keys_before_ms: 0,
    };
    commit(&db, &[purge(T0 + 15)]);
    assert_eq!(log("revamp"), [Resume, Create]);
    commit(&db, &[purge(T0 + 100)]);
    assert_eq!(log("revamp"), [Create]);
    assert_eq!(count(&db, keys::AUDIT) + count(&db, keys::AUDIT_AGE), 0);
}

/// A create as builds before `proposed_once` proposed it: every item is looked for.
fn older_create(schedules: Vec<Schedule>) -> Command {
    match create(schedules) {
        Command::CreateSchedules {
            schedules,
            keys,
            first_runs,
            pending_caps,
            ..
        } => Command::CreateSchedules {
            schedules,
            keys,
            first_runs,
            pending_caps,
            proposed_once: false,
        },
        other => other,
    }
}

#[test]
fn only_creates_that_may_have_been_applied_before_are_looked_for() {
    use crate::command::CreateKey;
    let dir = tempfile::tempdir().unwrap();
    let db = store::open(dir.path()).unwrap();
    let created = |cmd: Command| match &commit(&db, &[cmd])[0] {
        CommandResult::Created(c) => c.clone(),
        other => panic!("not created: {other:?}"),
    };
    let changed = |s: &Schedule| Schedule {
        payload: "changed".into(),
        ..s.clone()
    };
    // Proposed once, without a key: not looked for. Shown with a schedule planted under
    // its id behind the state machine's back (no create can store one): overwritten.
    let a = one_time(1, 100);
    let mut txn = SmTxn::new(&db, SHARD);
    txn.put(&keys::schedule(&a.id), &changed(&a)).unwrap();
    let mut batch = rocksdb::WriteBatch::default();
    txn.write_into(&mut batch).unwrap();
    db.write(batch).unwrap();
    assert_eq!(
        created(create(vec![a.clone()])),
        vec![Created::New(a.clone())]
    );
    assert_eq!(get(&db, Query::GetSchedule { id: a.id }), vec![a.clone()]);

    // An entry of an older build: looked for, answered as stored, nothing changed.
    assert_eq!(
        created(older_create(vec![changed(&a)])),
        vec![Created::New(a.clone())]
    );
    // A keyed create (the router retries those): looked for too.
    let keyed = Command::CreateSchedules {
        schedules: vec![changed(&a)],
        keys: vec![Some(CreateKey {
            key: "k".into(),
            digest: Uuid::from_u128(5),
        })],
        first_runs: None,
        pending_caps: Default::default(),
        proposed_once: true,
    };
    assert_eq!(created(keyed), vec![Created::New(a.clone())]);
    assert_eq!(get(&db, Query::GetSchedule { id: a.id }), vec![a.clone()]);
    assert_eq!((count(&db, keys::SCHEDULE), count(&db, keys::TIME)), (1, 1));
}
