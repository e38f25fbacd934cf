//! Bulk actions: a delete over a time range acts on every matching schedule across the
//! app's shards (far more than one page), in the background, with progress readable
//! through any node; what is outside the range is untouched.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{fmt, now, one_time, Cluster, Options};

async fn count(cluster: &Cluster, range: &str) -> usize {
    let mut n = 0;
    let mut token = String::new();
    loop {
        let path = format!(
            "/goscheduler/apps/bulky/schedules?size=1000&{range}&continuationToken={token}"
        );
        let (status, body) = cluster.call(1, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{body}");
        n += body["data"]["schedules"].as_array().unwrap().len();
        token = body["data"]["continuationToken"]
            .as_str()
            .unwrap()
            .to_string();
        if token.is_empty() {
            return n;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_delete_covers_every_match_and_reports_progress() {
    let cluster = Cluster::start(3, Options::default()).await;
    cluster.register_app(1, "bulky", 4).await;
    let base = now() + 3600;
    // 2,400 schedules: 1,200 in the first 10 minutes after `base`, 1,200 in the next 10.
    for batch in 0..3 {
        let items: Vec<Value> = (0..800)
            .map(|i| one_time("bulky", base + (batch * 800 + i) % 1200))
            .collect();
        let body = json!({ "schedules": items }).to_string();
        let (status, reply) = cluster
            .call(2, Method::POST, "/goscheduler/schedules/batch", Some(&body))
            .await;
        assert_eq!(
            (status, reply["status"]["totalCount"].as_u64()),
            (200, Some(800)),
            "{reply}"
        );
    }
    let first = format!("start_time={}&end_time={}", fmt(base), fmt(base + 599));
    let second = format!(
        "start_time={}&end_time={}",
        fmt(base + 600),
        fmt(base + 1199)
    );
    assert_eq!(
        (
            count(&cluster, &first).await,
            count(&cluster, &second).await
        ),
        (1200, 1200)
    );

    let path = format!("/goscheduler/apps/bulky/bulk-action/delete?status=SCHEDULED&{first}");
    let (status, body) = cluster
        .call(2, Method::POST, &path.replace(' ', "%20"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"]["statusCode"], 200);
    let remarks = body["remarks"].as_str().unwrap();
    assert!(
        remarks.starts_with("delete initiated successfully for app: bulky, timeRange: {StartTime:"),
        "{remarks}"
    );
    let job = body["data"]["jobId"].as_str().unwrap();
    let done = cluster
        .wait_bulk_done(&format!("/goscheduler/apps/bulky/bulk-action/jobs/{job}"))
        .await;
    assert_eq!(done["processed"], 1200, "{done}");
    assert_eq!(
        (
            count(&cluster, &first).await,
            count(&cluster, &second).await
        ),
        (0, 1200)
    );

    // Reconcile over runs that have not fired: nothing to re-arm, and the job still ends.
    let path = format!("/goscheduler/apps/bulky/bulk-action/reconcile?status=SUCCESS&{second}");
    let (status, body) = cluster
        .call(1, Method::POST, &path.replace(' ', "%20"), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let job = body["data"]["jobId"].as_str().unwrap();
    let done = cluster
        .wait_bulk_done(&format!("/goscheduler/apps/bulky/bulk-action/jobs/{job}"))
        .await;
    assert_eq!(done["processed"], 0);
    assert_eq!(count(&cluster, &second).await, 1200);

    // Bad requests are refused before any job starts.
    let bad = [
        ("/goscheduler/apps/bulky/bulk-action/explode", 400, "invalid action type"),
        ("/goscheduler/apps/ghost/bulk-action/delete", 400, "unregistered App"),
        (
            "/goscheduler/apps/bulky/bulk-action/delete?start_time=2023-01-01%2000:00:00&end_time=2023-03-01%2000:00:00",
            400,
            "Time range of more than 30 days is not allowed",
        ),
        ("/goscheduler/apps/bulky/bulk-action/delete?status=NOPE", 400, "invalid status"),
    ];
    for (path, http, needle) in bad {
        let (status, body) = cluster.call(3, Method::POST, path, None).await;
        assert_eq!(status, http, "{path}: {body}");
        assert!(
            body["status"]["statusMessage"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{path}: {body}"
        );
    }
    let (status, _) = cluster
        .call(
            1,
            Method::GET,
            "/goscheduler/apps/bulky/bulk-action/jobs/not-a-job",
            None,
        )
        .await;
    assert_eq!(status, 404);
}
