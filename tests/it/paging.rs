//! 10,000 schedules of one app over several partitions (so several shards), created in
//! batches, paged with size=137 through rotating nodes: each comes back exactly once, in
//! (time, id) order, and the token is empty only on the last page.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{now, one_time, Cluster, Options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paging_returns_every_schedule_exactly_once() {
    let cluster = Cluster::start(3, Options::default()).await;
    cluster.register_app(1, "pager", 5).await;

    let base = now() + 600;
    let mut created = HashSet::new();
    for batch in 0..10 {
        // 1,000 items over 100 distinct seconds: many share a second, so order needs the id.
        let items: Vec<Value> = (0..1000)
            .map(|i| {
                let mut item = one_time("pager", base + (i % 100) * 7);
                item["payload"] = json!(format!("{batch}-{i}"));
                item
            })
            .collect();
        let body = json!({ "schedules": items }).to_string();
        let (status, reply) = cluster
            .call(
                1 + batch % 3,
                Method::POST,
                "/goscheduler/schedules/batch",
                Some(&body),
            )
            .await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(
            reply["status"]["totalCount"], 1000,
            "{}",
            reply["data"]["results"][0]
        );
        for r in reply["data"]["results"].as_array().unwrap() {
            assert_eq!(r["statusCode"], 201, "{r}");
            created.insert(r["schedule"]["scheduleId"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(created.len(), 10_000);

    let fmt = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    let range = format!("start_time={}&end_time={}", fmt(base), fmt(base + 1000));
    let mut seen = HashSet::new();
    let mut last: Option<(i64, String)> = None;
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let path = format!("/goscheduler/apps/pager/schedules?size=137&status=SCHEDULED&{range}&continuationToken={token}");
        let (status, body) = cluster.call(1 + pages % 3, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{body}");
        pages += 1;
        let page = body["data"]["schedules"].as_array().unwrap();
        assert_eq!(body["status"]["totalCount"], page.len());
        for s in page {
            let key = (
                s["scheduleTime"].as_i64().unwrap(),
                s["scheduleId"].as_str().unwrap().to_string(),
            );
            assert!(
                last.as_ref() < Some(&key),
                "out of order: {last:?} then {key:?}"
            );
            assert!(seen.insert(key.1.clone()), "{} repeated", key.1);
            last = Some(key);
        }
        token = body["data"]["continuationToken"]
            .as_str()
            .unwrap()
            .to_string();
        if token.is_empty() {
            break;
        }
        assert_eq!(page.len(), 137, "only the last page is short");
        assert_eq!(
            body["data"]["continuationStartTime"],
            last.as_ref().unwrap().0
        );
        assert!(pages < 200, "paging does not end");
    }
    assert_eq!(pages, 10_000 / 137 + 1);
    assert_eq!(seen, created, "every schedule exactly once");

    // A status nothing has yet: empty, with an empty token.
    let path = format!("/goscheduler/apps/pager/schedules?size=137&status=SUCCESS&{range}");
    let (status, body) = cluster.call(2, Method::GET, &path, None).await;
    assert_eq!(
        (status, body["status"]["totalCount"].as_u64()),
        (200, Some(0))
    );
    assert_eq!(body["data"]["continuationToken"], "");
}

/// The apps listing and the cron listing page too (our extension: `size`, and a
/// continuation token — `data.continuationToken` for apps, the `Continuation-Token`
/// header for crons, whose `data` stays the wiki's array): every item once, in id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_and_crons_are_listed_a_page_at_a_time() {
    let cluster = Cluster::start(1, Options::default()).await;
    let apps: Vec<String> = (0..7).map(|i| format!("pg-{i}")).collect();
    for app in &apps {
        cluster.register_app(1, app, 4).await;
    }
    let (mut listed, mut token) = (vec![], String::new());
    loop {
        let path = format!("/goscheduler/apps?size=3&continuationToken={token}");
        let (status, reply) = cluster.call(1, Method::GET, &path, None).await;
        assert_eq!(status, 200, "{reply}");
        let page = reply["data"]["apps"].as_array().unwrap();
        assert!(page.len() <= 3, "{reply}");
        listed.extend(
            page.iter()
                .map(|a| a["appId"].as_str().unwrap().to_string()),
        );
        match reply["data"]["continuationToken"].as_str() {
            Some(t) => token = t.to_string(),
            None => break,
        }
    }
    assert_eq!(listed, apps);

    let mut crons = vec![];
    for i in 0..11 {
        let body = json!({"appId": "pg-0", "payload": format!("{i}"), "cronExpression": "0 0 * * *",
            "callback": {"type": "http", "details": {"url": "http://127.0.0.1:1/cb", "method": "POST"}}});
        crons.push(cluster.create(1, &body).await);
    }
    crons.sort();
    let (mut listed, mut token) = (vec![], String::new());
    loop {
        let path =
            format!("/goscheduler/crons/schedules?app_id=pg-0&size=4&continuationToken={token}");
        let (status, headers, reply) = cluster.call_with(1, Method::GET, &path, None, &[]).await;
        assert_eq!(status, 200, "{reply}");
        let page = reply["data"].as_array().unwrap();
        assert!(page.len() <= 4, "{reply}");
        listed.extend(
            page.iter()
                .map(|s| s["scheduleId"].as_str().unwrap().to_string()),
        );
        match headers.get("continuation-token") {
            Some(t) => token = t.to_str().unwrap().to_string(),
            None => break,
        }
    }
    assert_eq!(listed, crons, "every cron once, by id");
    let (status, reply) = cluster
        .call(
            1,
            Method::GET,
            "/goscheduler/crons/schedules?app_id=pg-0&continuationToken=nope",
            None,
        )
        .await;
    assert_eq!(status, 400, "{reply}");
}
