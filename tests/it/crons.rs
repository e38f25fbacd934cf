//! Cron schedules through the API: the wiki's create, future runs materialised and paged,
//! the app's cron listing, the refill worker, soft delete, and bad expressions refused.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use crate::harness::{keys, now, wiki_callback, Cluster, Options, CRON_SHAPE};

fn cron_body(app: &str, expr: &str) -> String {
    json!({"appId": app, "payload": "{}", "cronExpression": expr, "callback": wiki_callback()})
        .to_string()
}

/// Every future run time of `id`, paging `size` at a time through rotating nodes.
async fn future_runs(cluster: &Cluster, id: &str, size: usize) -> Vec<i64> {
    let mut out = vec![];
    let mut token = String::new();
    for page in 0..100 {
        let path = format!(
            "/goscheduler/schedules/{id}/runs?when=future&size={size}&continuationToken={token}"
        );
        let (status, body) = cluster.call(1 + page % 3, Method::GET, &path, None).await;
        if status == 404 && out.is_empty() {
            return out;
        }
        assert_eq!(status, 200, "{body}");
        for s in body["data"]["schedules"].as_array().unwrap() {
            assert_eq!(s["status"], "SCHEDULED");
            assert_eq!(s["parentScheduleId"], id);
            out.push(s["scheduleTime"].as_i64().unwrap());
        }
        token = body["data"]["continuationToken"]
            .as_str()
            .unwrap()
            .to_string();
        if token.is_empty() {
            return out;
        }
    }
    panic!("runs paging does not end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crons_materialise_runs_list_refill_and_delete() {
    let cluster = Cluster::start(3, Options::default()).await;
    cluster.register_app(1, "athena", 3).await;

    let (status, body) = cluster
        .call(
            2,
            Method::POST,
            "/goscheduler/schedules",
            Some(&cron_body("athena", "*/5 * * * *")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"]["statusCode"], 201);
    let cron = &body["data"]["schedule"];
    assert_eq!(keys(cron), CRON_SHAPE);
    assert_eq!(
        (&cron["cronExpression"], &cron["status"]),
        (&json!("*/5 * * * *"), &json!("SCHEDULED"))
    );
    let id = cron["scheduleId"].as_str().unwrap().to_string();

    // Its first 10 runs (50 minutes, within the hour's window) come with the create;
    // soonest first (the next run is the first of the first page), paged one at a time.
    let runs = future_runs(&cluster, &id, 1).await;
    assert_eq!(runs.len(), 10, "{runs:?}");
    assert!(runs.windows(2).all(|w| w[1] - w[0] == 300), "{runs:?}");
    assert!(runs[0] <= now() + 300, "the next run comes first: {runs:?}");
    assert!(runs.iter().all(|t| t % 300 == 0));

    for node in 1..=3 {
        let (status, body) = cluster
            .call(
                node,
                Method::GET,
                "/goscheduler/crons/schedules?app_id=athena&status=SCHEDULED",
                None,
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"].as_array().unwrap().len(), 1);
        assert_eq!(body["data"][0]["scheduleId"], id.as_str());
    }

    // An every-second cron starts with a bounded batch of runs; the leader's refill worker
    // keeps extending them.
    let (status, body) = cluster
        .call(
            3,
            Method::POST,
            "/goscheduler/schedules",
            Some(&cron_body("athena", "* * * * * *")),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let dense = body["data"]["schedule"]["scheduleId"]
        .as_str()
        .unwrap()
        .to_string();
    let start = future_runs(&cluster, &dense, 1000).await.len();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = future_runs(&cluster, &dense, 1000).await.len();
        if now > start + 100 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "runs not refilled: {start} then {now}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Delete: soft (DELETED), future runs gone, a second delete is 404.
    let path = format!("/goscheduler/schedules/{id}");
    let (status, body) = cluster.call(1, Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["schedule"]["status"], "DELETED");
    assert_eq!(cluster.call(2, Method::DELETE, &path, None).await.0, 404);
    let (status, body) = cluster.call(3, Method::GET, &path, None).await;
    assert_eq!(
        (status, &body["data"]["schedule"]["status"]),
        (200, &json!("DELETED"))
    );
    assert!(future_runs(&cluster, &id, 10).await.is_empty());
    let (status, body) = cluster
        .call(1, Method::GET, &format!("{path}/runs?when=future"), None)
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        body["status"]["statusMessage"],
        format!("No runs found for schedule with id {id}")
    );
    let (_, body) = cluster
        .call(
            2,
            Method::GET,
            "/goscheduler/crons/schedules?app_id=athena&status=DELETED",
            None,
        )
        .await;
    assert_eq!(body["data"].as_array().unwrap().len(), 1);
    let (status, body) = cluster
        .call(
            2,
            Method::GET,
            "/goscheduler/crons/schedules?app_id=ghost",
            None,
        )
        .await;
    assert_eq!(
        (status, body["status"]["statusCode"].as_u64()),
        (400, Some(4001))
    );

    // Bad rules are refused with the reason; nothing is stored.
    let bad: Vec<(String, &str)> = vec![
        (cron_body("athena", "*/0 * * * *"), "invalid cronExpression"),
        (cron_body("athena", "0 0 30 2 *"), "never fires"),
        (cron_body("athena", "not a cron"), "invalid cronExpression"),
        (
            cron_body("athena", "* * * * *")
                .replace("\"payload\"", "\"timezone\":\"Mars/Olympus\",\"payload\""),
            "not an IANA time zone",
        ),
        (
            cron_body("athena", "* * * * *")
                .replace("\"payload\"", "\"scheduleTime\":4102444800,\"payload\""),
            "not both",
        ),
    ];
    for (body, needle) in bad {
        let (status, reply) = cluster
            .call(1, Method::POST, "/goscheduler/schedules", Some(&body))
            .await;
        assert_eq!(status, 400, "{reply}");
        assert!(
            reply["status"]["statusMessage"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{reply}"
        );
    }
    let (_, body) = cluster
        .call(
            1,
            Method::GET,
            "/goscheduler/crons/schedules?app_id=athena",
            None,
        )
        .await;
    assert_eq!(
        body["data"].as_array().unwrap().len(),
        2,
        "only the two good crons exist"
    );
}
