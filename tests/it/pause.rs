//! Pause and resume one cron (GoScheduler fork's endpoints): while paused nothing of it
//! fires and it has no future runs; pausing again and resuming twice answer "already";
//! resumed, it fires again from then on (the seconds it missed are not made up); one-time,
//! deleted and unknown schedules are refused with the fork's messages.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::firing::cron_calling;
use crate::harness::{now, Cluster, Options};
use goscheduler::bench::receiver::Receiver;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_cron_fires_nothing_until_resumed() {
    let cluster = Cluster::start(3, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster.register_app(1, "pausing", 2).await;
    let body = cron_calling("pausing", "* * * * * *", &rx.url("/ok/tick"));
    let id = cluster.create(1, &body).await;
    let fired = |since: i64| {
        rx.deliveries()
            .iter()
            .filter(|d| d.parent_schedule_id.as_deref() == Some(id.as_str()))
            .filter(|d| d.schedule_time > since)
            .count()
    };
    cluster
        .eventually("the cron fires", Duration::from_secs(15), async || {
            fired(0) >= 2
        })
        .await;

    let pause = format!("/goscheduler/schedules/{id}/pause");
    let (status, reply) = cluster.call(2, Method::PUT, &pause, None).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["status"]["statusMessage"],
        "Schedule paused successfully"
    );
    assert_eq!(reply["data"]["schedule"]["status"], "PAUSED");
    let paused_at = now();
    let (status, reply) = cluster.call(3, Method::POST, &pause, None).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["status"]["statusMessage"], "Schedule already paused");
    // No future runs but one claimed as the pause landed (it finishes as it was).
    let runs = format!("/goscheduler/schedules/{id}/runs?when=future");
    let (status, reply) = cluster.call(1, Method::GET, &runs, None).await;
    if status == 200 {
        for run in reply["data"]["schedules"].as_array().unwrap() {
            let time = run["scheduleTime"].as_i64().unwrap();
            assert!(
                time <= paused_at + 1,
                "a run of the paused cron at {time}: {reply}"
            );
        }
    }
    cluster
        .eventually("no future runs", Duration::from_secs(5), async || {
            cluster.call(1, Method::GET, &runs, None).await.0 == 404
        })
        .await;
    let crons = "/goscheduler/crons/schedules?app_id=pausing&status=PAUSED";
    let (status, reply) = cluster.call(3, Method::GET, crons, None).await;
    assert_eq!(
        (status, reply["data"][0]["scheduleId"].as_str()),
        (200, Some(id.as_str()))
    );
    // A run claimed as the pause landed may finish; nothing due later fires.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(fired(paused_at + 1), 0, "a paused cron fired");

    let resume = format!("/goscheduler/schedules/{id}/resume");
    let (status, reply) = cluster.call(3, Method::POST, &resume, None).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["status"]["statusMessage"],
        "Schedule resumed successfully"
    );
    assert_eq!(reply["data"]["schedule"]["status"], "SCHEDULED");
    let resumed_at = now();
    let (_, reply) = cluster.call(1, Method::PUT, &resume, None).await;
    assert_eq!(reply["status"]["statusMessage"], "Schedule already resumed");
    cluster
        .eventually("it fires again", Duration::from_secs(15), async || {
            fired(resumed_at) >= 2
        })
        .await;
    let missed = (paused_at + 2..resumed_at - 1)
        .filter(|t| rx.deliveries().iter().any(|d| d.schedule_time == *t))
        .count();
    assert_eq!(missed, 0, "seconds missed while paused were made up");

    // Refusals: a one-time schedule, a deleted cron, an unknown id.
    let once = json!({"appId": "pausing", "payload": "{}", "scheduleTime": now() + 3600,
        "callback": {"type": "http", "details": {"url": rx.url("/ok/once"), "method": "POST"}}});
    let once = cluster.create(1, &once).await;
    let (status, reply) = cluster
        .call(
            1,
            Method::PUT,
            &format!("/goscheduler/schedules/{once}/pause"),
            None,
        )
        .await;
    assert_eq!(status, 422, "{reply}");
    assert_eq!(
        reply["status"]["statusMessage"],
        format!("Schedule with id: {once} is not a recurring schedule")
    );
    let path = format!("/goscheduler/schedules/{id}");
    assert_eq!(cluster.call(2, Method::DELETE, &path, None).await.0, 200);
    let (status, reply) = cluster.call(2, Method::PUT, &pause, None).await;
    assert_eq!(status, 422, "{reply}");
    assert_eq!(
        reply["status"]["statusMessage"],
        format!("Schedule with id: {id} is not in Scheduled state")
    );
    let unknown = format!("/goscheduler/schedules/{}/pause", uuid::Uuid::now_v7());
    assert_eq!(cluster.call(3, Method::PUT, &unknown, None).await.0, 404);
}

/// The future run times of `id` through node `via` (empty on 404).
async fn future(cluster: &Cluster, via: u64, id: &str) -> Vec<i64> {
    let path = format!("/goscheduler/schedules/{id}/runs?when=future&size=100");
    let (status, reply) = cluster.call(via, Method::GET, &path, None).await;
    if status == 404 {
        return vec![];
    }
    assert_eq!(status, 200, "{reply}");
    let runs = reply["data"]["schedules"].as_array().unwrap();
    runs.iter()
        .map(|r| r["scheduleTime"].as_i64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trigger_now_fires_one_extra_run_and_leaves_the_plan() {
    let cluster = Cluster::start(3, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster.register_app(1, "triggered", 2).await;
    let body = json!({"appId": "triggered", "payload": "{\"n\":7}", "cronExpression": "*/30 * * * *",
        "callback": {"type": "http", "details": {"url": rx.url("/ok/now"), "method": "POST"}}});
    let cron = cluster.create(1, &body).await;
    let planned = future(&cluster, 2, &cron).await;

    let path = format!("/goscheduler/schedules/{cron}/trigger");
    let (status, reply) = cluster.call(2, Method::POST, &path, None).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["status"]["statusMessage"],
        "Schedule triggered successfully"
    );
    let run = &reply["data"]["schedule"];
    assert_eq!(run["parentScheduleId"], cron.as_str(), "{reply}");
    assert_ne!(run["scheduleId"], cron.as_str());
    let run_id = run["scheduleId"].as_str().unwrap().to_string();
    let done = crate::firing::finished(&cluster, 3, &run_id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    let delivered: Vec<_> = rx
        .deliveries()
        .into_iter()
        .filter(|d| d.parent_schedule_id.as_deref() == Some(cron.as_str()))
        .collect();
    assert_eq!(delivered.len(), 1, "exactly the triggered run was called");
    assert_eq!(delivered[0].schedule_id, run_id);
    assert_eq!(
        delivered[0].body, "{\"n\":7}",
        "the run carries the cron's payload"
    );
    // The plan is as it was (runs that came due meanwhile aside).
    let soon = now() + 5;
    let still: Vec<i64> = future(&cluster, 1, &cron).await;
    let expected: Vec<i64> = planned.into_iter().filter(|t| *t > soon).collect();
    assert!(
        expected.iter().all(|t| still.contains(t)),
        "{expected:?} vs {still:?}"
    );

    // A one-time schedule and an unknown id are refused.
    let once = json!({"appId": "triggered", "payload": "{}", "scheduleTime": now() + 3600,
        "callback": {"type": "http", "details": {"url": rx.url("/ok/once"), "method": "POST"}}});
    let once = cluster.create(1, &once).await;
    let path = format!("/goscheduler/schedules/{once}/trigger");
    let (status, reply) = cluster.call(3, Method::POST, &path, None).await;
    assert_eq!(status, 422, "{reply}");
    let unknown = format!("/goscheduler/schedules/{}/trigger", uuid::Uuid::now_v7());
    assert_eq!(cluster.call(1, Method::POST, &unknown, None).await.0, 404);
}

/// Resumed with `catchUp=true`, an every-second cron fires each second it missed while
/// paused, once each, then goes on; no second is fired twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_with_catch_up_fires_each_paused_second_once() {
    let cluster = Cluster::start(3, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster.register_app(1, "catching", 2).await;
    let body = cron_calling("catching", "* * * * * *", &rx.url("/ok/tick"));
    let id = cluster.create(1, &body).await;
    cluster
        .eventually("the cron fires", Duration::from_secs(15), async || {
            rx.count() >= 2
        })
        .await;
    let path = |what: &str| format!("/goscheduler/schedules/{id}/{what}");
    let (status, _) = cluster.call(2, Method::PUT, &path("pause"), None).await;
    assert_eq!(status, 200);
    let paused_at = now();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (status, reply) = cluster
        .call(2, Method::PUT, &path("resume?catchUp=maybe"), None)
        .await;
    assert_eq!(
        (status, reply["status"]["statusMessage"].as_str().unwrap()),
        (400, "catchUp must be true or false, not \"maybe\"")
    );
    let (status, reply) = cluster
        .call(3, Method::PUT, &path("resume?catchUp=true"), None)
        .await;
    assert_eq!(status, 200, "{reply}");
    let resumed_at = now();
    tokio::time::sleep(Duration::from_secs(4)).await;

    let mut per_second: std::collections::BTreeMap<i64, usize> = Default::default();
    for d in rx.deliveries() {
        *per_second.entry(d.schedule_time).or_default() += 1;
    }
    let twice: Vec<_> = per_second.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "seconds fired twice: {twice:?}");
    let first = *per_second.keys().next().unwrap();
    let missing: Vec<i64> = (first..resumed_at + 2)
        .filter(|s| !per_second.contains_key(s))
        .collect();
    assert!(
        missing.is_empty(),
        "seconds never fired: {missing:?} (paused {paused_at}, resumed {resumed_at})"
    );
    println!(
        "catch-up: paused at {paused_at}, resumed at {resumed_at}, seconds {first}..: each once"
    );
}
