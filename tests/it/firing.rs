//! The firing engine against a real 3-node cluster and a real callback listener: what a
//! callback carries, retries by the app's policy, MISS for a deactivated app, reconcile
//! re-firing, and every-second crons.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{fmt, metric, now, Cluster, Options};
use goscheduler::bench::receiver::{Delivery, Receiver};

/// A one-time schedule calling `url`.
pub fn calling(app: &str, time: i64, url: &str) -> Value {
    json!({
        "appId": app, "payload": "{\"n\":1}", "scheduleTime": time,
        "callback": {"type": "http", "details": {"url": url, "method": "POST"}}
    })
}

/// A cron with rule `expr` calling `url`.
pub fn cron_calling(app: &str, expr: &str, url: &str) -> Value {
    json!({
        "appId": app, "payload": "{}", "cronExpression": expr,
        "callback": {"type": "http", "details": {"url": url, "method": "POST"}}
    })
}

/// The first attempt's error of a finished run.
pub fn first_error(run: &Value) -> String {
    run["attempts"][0]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until the schedule `id` has left SCHEDULED; returns it.
pub async fn finished(cluster: &Cluster, via: u64, id: &str, within: Duration) -> Value {
    let deadline = std::time::Instant::now() + within;
    loop {
        let s = cluster.schedule(via, id).await;
        if s["status"] != "SCHEDULED" {
            return s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{id} still SCHEDULED: {s}\n{}",
            cluster.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits for `id` to finish and checks it ended MISS with `reason` in its message.
pub async fn assert_missed(cluster: &Cluster, via: u64, id: &str, reason: &str) {
    let done = finished(cluster, via, id, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "MISS", "{done}");
    let why = done["errorMessage"].as_str().unwrap_or_default();
    assert!(why.contains(reason), "{done}");
}

fn of<'a>(deliveries: &'a [Delivery], id: &str) -> Vec<&'a Delivery> {
    deliveries.iter().filter(|d| d.schedule_id == id).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_carry_the_run_and_retries_follow_the_app_policy() {
    let cluster = Cluster::start(3, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster
        .register_app_with(
            1,
            "caller",
            4,
            Some(json!({"httpRetries": 3, "httpTimeout": 1000})),
        )
        .await;
    let t = now() + 2;

    let mut plain = calling("caller", t, &rx.url("/ok/plain"));
    plain["payload"] = json!("{\"order\":42}");
    plain["callback"]["details"]["method"] = json!("PUT");
    plain["callback"]["details"]["headers"] = json!({"X-Team": "checkout"});
    let plain = cluster.create(1, &plain).await;
    let flaky = cluster
        .create(2, &calling("caller", t, &rx.url("/fail-first/2/flaky")))
        .await;
    let broken = cluster
        .create(3, &calling("caller", t, &rx.url("/fail-first/99/broken")))
        .await;
    // Due in the current second (already begun): still fires; its Content-Type is its own.
    let mut now_body = calling("caller", now(), &rx.url("/ok/now"));
    now_body["payload"] = json!("plain text");
    now_body["callback"]["details"]["headers"] = json!({"Content-Type": "text/plain"});
    let right_now = cluster.create(1, &now_body).await;

    let done = finished(&cluster, 2, &plain, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    assert_eq!(done["attempts"][0]["httpStatus"], 200, "{done}");
    let deliveries = rx.deliveries();
    let d = of(&deliveries, &plain);
    assert_eq!(d.len(), 1, "{d:?}");
    let d = d[0];
    assert_eq!(
        (d.method.as_str(), d.body.as_str()),
        ("PUT", "{\"order\":42}")
    );
    assert_eq!(d.idempotency_key, plain);
    assert_eq!(d.headers["x-team"], "checkout");
    assert_eq!(d.headers["content-type"], "application/json");
    assert_eq!((d.attempt, d.schedule_time), (1, t));
    assert!(d.parent_schedule_id.is_none());
    assert!(
        d.received_ms >= t as u64 * 1000,
        "fired before its second: {} < {}",
        d.received_ms,
        t * 1000
    );

    // 500, 500, then 200: two FAILURE attempts then SUCCESS, all with one key.
    let done = finished(&cluster, 3, &flaky, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    let codes: Vec<&Value> = done["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["httpStatus"])
        .collect();
    assert_eq!(codes, [500, 500, 200], "{done}");
    let numbers: Vec<&Value> = done["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["attempt"])
        .collect();
    assert_eq!(numbers, [1, 2, 3]);
    let d = of(&rx.deliveries(), &flaky)
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert_eq!(d.len(), 3);
    assert!(d.iter().all(|d| d.idempotency_key == flaky));
    assert_eq!(d.iter().map(|d| d.attempt).collect::<Vec<_>>(), [1, 2, 3]);

    // Always 500: 1 + httpRetries attempts, then FAILURE naming why.
    let done = finished(&cluster, 1, &broken, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "FAILURE", "{done}");
    assert_eq!(done["attempts"].as_array().unwrap().len(), 4, "{done}");
    assert!(
        done["errorMessage"].as_str().unwrap().contains("HTTP 500"),
        "{done}"
    );
    assert_eq!(of(&rx.deliveries(), &broken).len(), 4);

    let done = finished(&cluster, 1, &right_now, Duration::from_secs(10)).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    let deliveries = rx.deliveries();
    let d = of(&deliveries, &right_now);
    assert_eq!(d[0].headers["content-type"], "text/plain");
    assert_eq!(d[0].body, "plain text");

    // Every node serves its metrics; the claims and fires were counted somewhere.
    let mut fires = 0.0;
    for id in 1..=3 {
        let text = cluster.metrics(id).await;
        for name in [
            "goscheduler_lateness_seconds_bucket",
            "goscheduler_queue_depth",
            "goscheduler_raft_apply_lag",
        ] {
            assert!(text.contains(name), "node {id} metrics lack {name}");
        }
        fires += metric(&text, "goscheduler_fires_total");
    }
    assert_eq!(fires as usize, rx.count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_app_misses_its_runs_and_reconcile_fires_them_again() {
    let cluster = Cluster::start(3, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster
        .register_app_with(1, "sleepy", 2, Some(json!({})))
        .await;
    let t = now() + 3;
    let missed = cluster
        .create(1, &calling("sleepy", t, &rx.url("/ok/missed")))
        .await;
    let (status, reply) = cluster
        .call(2, Method::POST, "/goscheduler/apps/sleepy/deactivate", None)
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_missed(&cluster, 3, &missed, "deactivated").await;
    assert_eq!(rx.count(), 0, "a deactivated app fired");

    // Activated again: new runs fire.
    let (status, reply) = cluster
        .call(3, Method::POST, "/goscheduler/apps/sleepy/activate", None)
        .await;
    assert_eq!(status, 200, "{reply}");
    let fresh = cluster
        .create(2, &calling("sleepy", now() + 2, &rx.url("/ok/fresh")))
        .await;
    let done = finished(&cluster, 1, &fresh, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");

    // Reconcile the missed run: fired now, same id and key.
    let range = format!("start_time={}&end_time={}", fmt(t - 1), fmt(t + 1)).replace(' ', "%20");
    let path = format!("/goscheduler/apps/sleepy/bulk-action/reconcile?status=MISS&{range}");
    let (status, reply) = cluster.call(1, Method::POST, &path, None).await;
    assert_eq!(status, 200, "{reply}");
    let job = reply["data"]["jobId"].as_str().unwrap();
    let job = cluster
        .wait_bulk_done(&format!("/goscheduler/apps/sleepy/bulk-action/jobs/{job}"))
        .await;
    assert_eq!(job["processed"], 1, "{job}");
    let done = finished(&cluster, 2, &missed, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    let deliveries = rx.deliveries();
    let d = of(&deliveries, &missed);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].idempotency_key, missed);
}

/// Waits until the receiver has `n` deliveries of `id`.
async fn delivered(rx: &Receiver, id: &str, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while of(&rx.deliveries(), id).len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{id} not called {n} times"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_once_the_run_is_deleted_or_its_app_deactivated() {
    let cluster = Cluster::start(3, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    // Six retries against an endpoint that always fails: ~13 s of backoff if nothing stops them.
    let policy = json!({"httpRetries": 6, "httpTimeout": 1000});
    cluster
        .register_app_with(1, "doomed", 2, Some(policy.clone()))
        .await;
    cluster
        .register_app_with(1, "dropped", 2, Some(policy))
        .await;
    let t = now() + 2;
    let deleted = cluster
        .create(1, &calling("doomed", t, &rx.url("/fail-first/100/d")))
        .await;
    let orphaned = cluster
        .create(2, &calling("dropped", t, &rx.url("/fail-first/100/o")))
        .await;

    delivered(&rx, &deleted, 1).await;
    let path = format!("/goscheduler/schedules/{deleted}");
    let (status, reply) = cluster.call(2, Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{reply}");
    delivered(&rx, &orphaned, 1).await;
    let (status, reply) = cluster
        .call(
            3,
            Method::POST,
            "/goscheduler/apps/dropped/deactivate",
            None,
        )
        .await;
    assert_eq!(status, 200, "{reply}");

    let done = finished(&cluster, 1, &orphaned, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "FAILURE", "{done}");
    let why = done["errorMessage"].as_str().unwrap_or_default();
    assert!(
        why.contains("retries stopped: app dropped was deactivated"),
        "{done}"
    );
    // Past the time every retry would have been made.
    tokio::time::sleep(Duration::from_secs(14)).await;
    let deliveries = rx.deliveries();
    let (d, o) = (
        of(&deliveries, &deleted).len(),
        of(&deliveries, &orphaned).len(),
    );
    println!("calls after delete: {d}, after deactivation: {o} (of 7 allowed)");
    // The call in flight when the change was acknowledged may still be made; no more.
    assert!(
        d <= 2 && o <= 2,
        "deleted run called {d} times, orphaned {o}"
    );
    assert_eq!(done["attempts"].as_array().map(Vec::len), Some(o), "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_cannot_starve_other_apps() {
    // Small shares so the test is quick: 8 calls per app and 24 per node at once.
    let opts = Options {
        top: "[firing]\nconcurrency = 24\nper_app_concurrency = 8",
        ..Options::default()
    };
    let cluster = Cluster::start(3, opts).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster
        .register_app_with(
            1,
            "sluggish",
            8,
            Some(json!({"httpRetries": 0, "httpTimeout": 10000})),
        )
        .await;
    cluster
        .register_app_with(1, "brisk", 8, Some(json!({"httpRetries": 0})))
        .await;
    let t = now() + 3;
    // 300 calls of 2 s each: with 8 at a time per node they take ~25 s to drain.
    let slow: Vec<Value> = (0..300)
        .map(|_| calling("sluggish", t, &rx.url("/slow/2000/s")))
        .collect();
    let fast: Vec<Value> = (0..60)
        .map(|_| calling("brisk", t, &rx.url("/ok/b")))
        .collect();
    for items in [slow, fast] {
        let body = json!({ "schedules": items }).to_string();
        let (status, reply) = cluster
            .call(1, Method::POST, "/goscheduler/schedules/batch", Some(&body))
            .await;
        assert_eq!(status, 200, "{reply}");
    }
    cluster
        .eventually(
            "brisk's runs delivered",
            Duration::from_secs(20),
            async || rx.deliveries().iter().filter(|d| d.path == "/ok/b").count() == 60,
        )
        .await;
    let deliveries = rx.deliveries();
    let brisk_late = deliveries
        .iter()
        .filter(|d| d.path == "/ok/b")
        .map(|d| d.received_ms as i64 - t * 1000)
        .max()
        .unwrap();
    let sluggish_started = deliveries
        .iter()
        .filter(|d| d.path.starts_with("/slow"))
        .count();
    assert!(
        brisk_late < 1500,
        "brisk waited {brisk_late} ms behind the slow app"
    );
    assert!(
        sluggish_started <= 3 * 8 + 3 * 8,
        "sluggish exceeded its share: {sluggish_started} calls started within ~{brisk_late} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_found_after_the_misfire_window_are_missed_with_a_reason() {
    let mut cluster = Cluster::start(3, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster
        .register_app_with(1, "outage", 2, Some(json!({"misfireWindow": 1})))
        .await;
    let t = now() + 3;
    let id = cluster
        .create(1, &calling("outage", t, &rx.url("/ok/late")))
        .await;
    // No quorum anywhere over the due time and well past the window.
    cluster.kill(2);
    cluster.kill(3);
    tokio::time::sleep(Duration::from_secs(7)).await;
    cluster.restart(2).await;
    cluster.restart(3).await;
    assert_missed(&cluster, 1, &id, "misfireWindow of 1s").await;
    assert_eq!(rx.count(), 0, "a run past its misfire window fired");
}
