//! One-time schedules through every node: create (the wiki's body), get, delete, and the
//! validation the original did, with its messages.

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{keys, metric, wiki_callback, Cluster, Options, CREATED_SHAPE};

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn wiki_body(app: &str, time: i64) -> String {
    json!({"appId": app, "payload": "{}", "scheduleTime": time, "callback": wiki_callback()})
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_time_schedules_through_every_node() {
    let cluster = Cluster::start(3, Options::default()).await;
    for (app, active) in [("revamp", true), ("sleepy", false)] {
        let body = json!({"appId": app, "partitions": 2, "active": active}).to_string();
        let (status, _) = cluster
            .call(1, Method::POST, "/goscheduler/apps", Some(&body))
            .await;
        assert_eq!(status, 200);
    }
    // An app with its own limits: 10-byte payloads, schedules at most a day ahead.
    {
        let config = json!({"payloadSize": 10, "futureScheduleCreationPeriod": 1});
        let body =
            json!({"appId": "tight", "partitions": 1, "active": true, "configuration": config})
                .to_string();
        let (status, _) = cluster
            .call(1, Method::POST, "/goscheduler/apps", Some(&body))
            .await;
        assert_eq!(status, 200);
    }

    let time = now() + 3600;
    let mut ids = vec![];
    for node in 1..=3 {
        let (status, body) = cluster
            .call(
                node,
                Method::POST,
                "/goscheduler/schedules",
                Some(&wiki_body("revamp", time)),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"]["statusCode"], 201);
        let s = &body["data"]["schedule"];
        assert_eq!(keys(s), CREATED_SHAPE);
        assert_eq!(s["scheduleTime"], time);
        assert_eq!(s["scheduleGroup"], time / 60 * 60);
        assert!(s["partitionId"].as_u64().unwrap() < 2);
        assert_eq!(s["httpCallback"]["method"], "GET");
        assert_eq!(
            keys(&s["httpCallback"]["headers"]),
            ["Accept", "Content-Type"]
        );
        ids.push(s["scheduleId"].as_str().unwrap().to_string());
    }

    // Field names in any casing, as Go's decoder takes them (GoScheduler clients without
    // JSON tags send "AppId"); header names are kept as sent; the answer is camelCase.
    let go_style = json!({"AppId": "revamp", "Payload": "{}", "ScheduleTime": time,
        "Callback": {"Type": "http", "Details": {"Url": "http://127.0.0.1:8080/goscheduler/healthcheck",
            "Method": "POST", "Headers": {"X-Trace": "t1"}}}});
    let (status, body) = cluster
        .call(
            2,
            Method::POST,
            "/goscheduler/schedules",
            Some(&go_style.to_string()),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let s = &body["data"]["schedule"];
    assert_eq!(keys(s), CREATED_SHAPE);
    assert_eq!(
        (&s["appId"], &s["scheduleTime"]),
        (&json!("revamp"), &json!(time))
    );
    assert_eq!(s["httpCallback"]["method"], "POST");
    assert_eq!(s["httpCallback"]["headers"]["X-Trace"], "t1");
    let path = format!(
        "/goscheduler/schedules/{}",
        s["scheduleId"].as_str().unwrap()
    );
    assert_eq!(cluster.call(1, Method::DELETE, &path, None).await.0, 200);
    let (status, body) = cluster
        .call(
            3,
            Method::POST,
            "/goscheduler/schedules",
            Some(r#"{"APPID":"revamp"}"#),
        )
        .await;
    assert_eq!(status, 400, "a recased body is still validated: {body}");

    // Every node reads every schedule.
    for id in &ids {
        for node in 1..=3 {
            let s = &cluster.schedule(node, id).await;
            assert_eq!(s["scheduleId"], id.as_str());
            assert_eq!(s["status"], "SCHEDULED");
            assert_eq!(s["callback"]["type"], "http");
            assert_eq!(
                s["callback"]["details"]["url"],
                "http://127.0.0.1:8080/goscheduler/healthcheck"
            );
        }
    }

    // Delete is hard: the second one is 404, and the schedule is gone everywhere.
    let path = format!("/goscheduler/schedules/{}", ids[0]);
    let (status, body) = cluster.call(2, Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["schedule"]["scheduleId"], ids[0].as_str());
    let (status, body) = cluster.call(3, Method::DELETE, &path, None).await;
    assert_eq!(
        (status, &body["status"]["statusMessage"]),
        (404, &json!("not found"))
    );
    let (status, body) = cluster.call(1, Method::GET, &path, None).await;
    assert_eq!(status, 404);
    assert_eq!(
        body["status"]["statusMessage"],
        format!("Schedule with id: {} not found", ids[0])
    );

    // Validation, as the wiki's error example: every problem of the request, joined.
    let bad = json!({
        "appId": "revamp", "payload": "{}", "scheduleTime": 1629772970,
        "callback": {"type": "http", "details": {"url": "www.myntra.com", "method": "get"}}
    })
    .to_string();
    let (status, body) = cluster
        .call(1, Method::POST, "/goscheduler/schedules", Some(&bad))
        .await;
    assert_eq!(status, 400);
    let msg = body["status"]["statusMessage"].as_str().unwrap();
    assert!(
        msg.starts_with(
            "parse \"www.myntra.com\": invalid URI for request,Invalid http callback method ,schedule time : 1629772970 is less than current time: "
        ) && msg.ends_with(" for app: revamp. Time cannot be in past."),
        "{msg}"
    );

    let cases: Vec<(&str, String, u16, u64, &str)> = vec![
        (
            "unknown app",
            wiki_body("ghost", time),
            400,
            4001,
            "unregistered App",
        ),
        (
            "deactivated app",
            wiki_body("sleepy", time),
            400,
            4002,
            "app Id sleepy is deactivated",
        ),
        (
            "bad app id",
            wiki_body("a.b", time),
            400,
            400,
            "invalid character",
        ),
        (
            "no callback",
            json!({"appId":"revamp","payload":"{}","scheduleTime":time}).to_string(),
            400,
            400,
            "callback is required",
        ),
        (
            "reserved callback header",
            wiki_body("revamp", time).replace(
                r#""Accept":"application/json""#,
                r#""Idempotency-Key":"mine""#,
            ),
            400,
            400,
            "callback header \"Idempotency-Key\" is set by the scheduler",
        ),
        (
            "a webhook signature of its own",
            wiki_body("revamp", time).replace(
                r#""Accept":"application/json""#,
                r#""Webhook-Signature":"v1,forged""#,
            ),
            400,
            400,
            "callback header \"Webhook-Signature\" is set by the scheduler",
        ),
        (
            "no payload",
            wiki_body("revamp", time).replace(r#""payload":"{}","#, ""),
            400,
            400,
            "payload is required",
        ),
        (
            "no time",
            wiki_body("revamp", time).replace(&format!(r#""scheduleTime":{time},"#), ""),
            400,
            400,
            "scheduleTime or cronExpression is required",
        ),
        (
            "time a string",
            wiki_body("revamp", time).replace(&time.to_string(), "\"soon\""),
            400,
            5001,
            "invalid type",
        ),
        (
            "payload too big",
            wiki_body("revamp", time).replace(
                r#""payload":"{}""#,
                &format!(r#""payload":"{}""#, "x".repeat(1025)),
            ),
            400,
            400,
            "exceeds the app's limit of 1024 bytes",
        ),
        (
            "not kafka",
            wiki_body("revamp", time).replace(r#""type":"http""#, r#""type":"kafka""#),
            400,
            400,
            "Invalid callback type",
        ),
    ];
    let tight = |payload: &str, time: i64| {
        wiki_body("tight", time).replace(r#""payload":"{}""#, &format!(r#""payload":"{payload}""#))
    };
    let more: Vec<(&str, String, u16, u64, &str)> = vec![
        (
            "over the app's payload limit",
            tight("0123456789a", time),
            400,
            400,
            "exceeds the app's limit of 10 bytes",
        ),
        (
            "beyond the app's horizon",
            tight("{}", now() + 2 * 86_400),
            400,
            400,
            "creation horizon of 1 days",
        ),
    ];
    let cases: Vec<_> = cases.into_iter().chain(more).collect();
    for (case, body, http, code, needle) in cases {
        let (status, reply) = cluster
            .call(2, Method::POST, "/goscheduler/schedules", Some(&body))
            .await;
        assert_eq!(status, http, "{case}: {reply}");
        assert_eq!(reply["status"]["statusCode"], code, "{case}: {reply}");
        let msg = reply["status"]["statusMessage"].as_str().unwrap();
        assert!(msg.contains(needle), "{case}: {msg}");
    }
    // A batch with an item not shaped like a create is refused whole, naming the item, and
    // its well-formed items are not created; a time written as a whole float is a time.
    let keyed = |key: &str| {
        let mut item: Value = serde_json::from_str(&wiki_body("revamp", time)).unwrap();
        item["idempotencyKey"] = json!(key);
        item
    };
    let batch =
        json!({"schedules": [keyed("shape-1"), {"appId": "revamp", "scheduleTime": {"at": 1}}]});
    let (status, reply) = cluster
        .call(
            1,
            Method::POST,
            "/goscheduler/schedules/batch",
            Some(&batch.to_string()),
        )
        .await;
    assert_eq!(status, 400, "{reply}");
    let msg = reply["status"]["statusMessage"].as_str().unwrap();
    assert!(msg.contains("schedules[1]: invalid type"), "{msg}");
    let mut floated = keyed("shape-1");
    floated["scheduleTime"] = json!(time as f64);
    let batch = json!({"schedules": [floated]}).to_string();
    assert!(batch.contains(&format!("{time}.0")), "{batch}");
    let (status, reply) = cluster
        .call(
            1,
            Method::POST,
            "/goscheduler/schedules/batch",
            Some(&batch),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    let item = &reply["data"]["results"][0];
    assert_eq!(item["statusCode"], 201, "{reply}");
    assert!(
        item.get("replayed").is_none(),
        "created by the refused batch: {reply}"
    );
    assert_eq!(item["schedule"]["scheduleTime"], time, "{reply}");
    let batched = item["schedule"]["scheduleId"].as_str().unwrap().to_string();

    let (status, body) = cluster
        .call(3, Method::GET, "/goscheduler/schedules/not-a-uuid", None)
        .await;
    assert_eq!(status, 400, "{body}");
    let foreign = uuid::Uuid::new_v4();
    let (status, _) = cluster
        .call(
            3,
            Method::GET,
            &format!("/goscheduler/schedules/{foreign}"),
            None,
        )
        .await;
    assert_eq!(status, 404);

    // What was stored before the bad requests is untouched.
    for id in &ids[1..] {
        assert_eq!(cluster.schedule(3, id).await["status"], "SCHEDULED");
    }

    // Query parameters are checked too, each with its message.
    let fmt = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .unwrap()
            .format("%Y-%m-%d%%20%H:%M:%S")
            .to_string()
    };
    let list = "/goscheduler/apps/revamp/schedules";
    let queries: Vec<(String, &str)> = vec![
        (
            format!("{list}?size=-1"),
            "Size provided(-1) should not be less than 0",
        ),
        (
            format!("{list}?size=ten"),
            "Size provided(ten) is not a number",
        ),
        (format!("{list}?size=5000"), "should not be more than 1000"),
        (format!("{list}?status=ERROR"), "invalid status"),
        (format!("{list}?start_time=yesterday"), "invalid time"),
        (
            format!(
                "{list}?start_time={}&end_time={}",
                fmt(time),
                fmt(time + 31 * 86_400)
            ),
            "Time range of more than 30 days is not allowed",
        ),
        (
            format!(
                "{list}?start_time={}&end_time={}",
                fmt(time),
                fmt(time - 60)
            ),
            "end_time cannot be before start_time",
        ),
        (
            format!("{list}?continuationToken=abc"),
            "invalid continuation token",
        ),
        (
            format!("/goscheduler/schedules/{}/runs?when=tomorrow", ids[1]),
            "invalid when",
        ),
        (
            "/goscheduler/crons/schedules".to_string(),
            "app_id is required",
        ),
    ];
    for (path, needle) in queries {
        let (status, body) = cluster.call(1, Method::GET, &path, None).await;
        assert_eq!(status, 400, "{path}: {body}");
        let msg = body["status"]["statusMessage"].as_str().unwrap();
        assert!(msg.contains(needle), "{path}: {msg}");
    }

    // No bad request stored anything: the app holds exactly the two schedules left.
    let range = format!(
        "{list}?start_time={}&end_time={}",
        fmt(time - 60),
        fmt(time + 60)
    );
    let (status, body) = cluster.call(2, Method::GET, &range, None).await;
    assert_eq!(status, 200, "{body}");
    let mut listed: Vec<&str> = body["data"]["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["scheduleId"].as_str().unwrap())
        .collect();
    listed.sort();
    let mut expected: Vec<&str> = ids[1..].iter().map(String::as_str).collect();
    expected.push(&batched);
    expected.sort();
    assert_eq!(listed, expected);
    for app in ["tight", "sleepy"] {
        let path = format!(
            "/goscheduler/apps/{app}/schedules?start_time={}&end_time={}",
            fmt(now() - 60),
            fmt(now() + 20 * 86_400)
        );
        let (status, body) = cluster.call(3, Method::GET, &path, None).await;
        assert_eq!(
            (status, &body["status"]["totalCount"]),
            (200, &json!(0)),
            "{app}: {body}"
        );
    }
}

/// 300 single creates at once through all nodes share proposals (fewer entries than
/// creates, as `goscheduler_create_proposals_total` counts) and each still gets its own
/// answer: 300 distinct schedules, each readable through every node, and every keyed
/// create's retry (sent in the same burst) replays its schedule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_single_creates_share_proposals_and_each_gets_its_answer() {
    let cluster = Cluster::start(3, Options::default()).await;
    cluster.register_app(1, "burst", 8).await;
    let time = now() + 3600;
    let creates = (0..300u64).map(|i| {
        let cluster = &cluster;
        async move {
            let via = 1 + i % 3;
            let mut headers = vec![];
            let key = format!("k-{}", i / 2);
            if i % 10 < 4 {
                // Pairs (4k, 4k+1) and (4k+2, 4k+3) share a key: one creates, one replays.
                headers.push(("Idempotency-Key", key.clone()));
            }
            let hs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let body = wiki_body("burst", time);
            let (status, h, reply) = cluster
                .call_with(
                    via,
                    Method::POST,
                    "/goscheduler/schedules",
                    Some(&body),
                    &hs,
                )
                .await;
            assert_eq!(status, 200, "{reply}");
            let id = reply["data"]["schedule"]["scheduleId"]
                .as_str()
                .unwrap()
                .to_string();
            let replayed = h.get("idempotent-replayed").is_some();
            (headers.first().map(|(_, k)| k.clone()), id, replayed)
        }
    });
    let answers = futures::future::join_all(creates).await;
    let mut by_key: std::collections::HashMap<String, Vec<(String, bool)>> = Default::default();
    let mut unkeyed = std::collections::HashSet::new();
    for (key, id, replayed) in &answers {
        match key {
            Some(k) => by_key
                .entry(k.clone())
                .or_default()
                .push((id.clone(), *replayed)),
            None => assert!(
                unkeyed.insert(id.clone()) && !replayed,
                "{id} answered twice"
            ),
        }
    }
    for (key, pair) in &by_key {
        assert_eq!(pair.len(), 2, "{key}");
        assert_eq!(pair[0].0, pair[1].0, "{key}: one schedule for both");
        assert_eq!(
            pair.iter().filter(|(_, r)| *r).count(),
            1,
            "{key}: {pair:?}"
        );
    }
    assert_eq!(
        (unkeyed.len(), by_key.len()),
        (180, 60),
        "distinct schedules"
    );
    for id in unkeyed
        .iter()
        .chain(by_key.values().map(|p| &p[0].0))
        .step_by(7)
    {
        for via in 1..=3 {
            assert_eq!(cluster.schedule(via, id).await["status"], "SCHEDULED");
        }
    }
    let (mut creates, mut proposals) = (0.0, 0.0);
    for via in 1..=3 {
        let text = cluster.metrics(via).await;
        creates += metric(&text, "goscheduler_coalesced_creates_total");
        proposals += metric(&text, "goscheduler_create_proposals_total");
    }
    println!("300 concurrent creates: {creates} proposed in {proposals} proposals");
    assert_eq!(creates, 300.0);
    assert!(proposals < creates, "no two creates shared a proposal");
}
