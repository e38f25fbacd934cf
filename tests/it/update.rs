//! Changing schedules in place on a 3-node cluster: `updateRecurringSchedule` (upstream's
//! endpoint) and `PATCH` (merge patch). An every-second cron's payload and rule change:
//! the first delivery of a run not claimed before the answer has the new payload, none of
//! the old plan fires after it, `runs?when=future` shows the new plan; each error case
//! answers as upstream; a one-time schedule moves to a new second and fires there.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::firing::{calling, cron_calling, finished};
use crate::harness::{now, Cluster, Options};
use goscheduler::bench::receiver::Receiver;

async fn send(
    cluster: &Cluster,
    via: u64,
    method: Method,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let (status, reply) = cluster
        .call(via, method, path, Some(&body.to_string()))
        .await;
    (status, reply)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_changed_in_place_fires_only_its_new_plan() {
    let cluster = Cluster::start(3, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster.register_app(1, "editing", 2).await;
    // Go-style keys, as the original's clients send them.
    let body = json!({"AppId": "editing", "Payload": "old", "CronExpression": "* * * * * *",
        "Callback": {"Type": "http", "Details": {"Url": rx.url("/ok/tick"), "Method": "POST"}}});
    let (status, reply) = send(&cluster, 1, Method::POST, "/goscheduler/schedules", body).await;
    assert_eq!(status, 200, "{reply}");
    let id = reply["data"]["schedule"]["scheduleId"]
        .as_str()
        .unwrap()
        .to_string();
    let of_cron = |payload: &str| {
        rx.deliveries()
            .into_iter()
            .filter(|d| d.parent_schedule_id.as_deref() == Some(id.as_str()))
            .filter(|d| d.body == payload)
            .collect::<Vec<_>>()
    };
    cluster
        .eventually("the cron fires", Duration::from_secs(15), async || {
            of_cron("old").len() >= 2
        })
        .await;

    // Every two seconds from now on, with a new payload, through another node.
    let update = format!("/goscheduler/schedules/{id}/updateRecurringSchedule");
    let change = json!({"cronExpression": "*/2 * * * * *", "payload": "new", "appId": "editing"});
    let (status, reply) = send(&cluster, 2, Method::PUT, &update, change).await;
    let acked = now();
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["status"]["statusMessage"],
        "Recurring schedule updated successfully"
    );
    assert_eq!(reply["data"]["schedule"]["cronExpression"], "*/2 * * * * *");
    assert_eq!(reply["data"]["schedule"]["payload"], "new");
    let future = format!("/goscheduler/schedules/{id}/runs?when=future&size=5");
    let (_, runs) = cluster.call(3, Method::GET, &future, None).await;
    let times: Vec<i64> = runs["data"]["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["scheduleTime"].as_i64().unwrap())
        .filter(|t| *t > acked + 1)
        .collect();
    assert!(
        !times.is_empty() && times.iter().all(|t| t % 2 == 0),
        "{runs}"
    );

    tokio::time::sleep(Duration::from_secs(5)).await;
    // Runs claimed before the answer (claims run ahead of their second) finish as they
    // were; nothing of the old plan after that.
    let late_old: Vec<i64> = of_cron("old")
        .iter()
        .map(|d| d.schedule_time)
        .filter(|t| *t > acked + 1)
        .collect();
    assert!(
        late_old.is_empty(),
        "old plan fired at {late_old:?} after the update at {acked}"
    );
    let new: Vec<i64> = of_cron("new").iter().map(|d| d.schedule_time).collect();
    assert!(new.len() >= 2, "new plan fired {new:?}");
    assert!(
        new.iter().all(|t| t % 2 == 0 && *t >= acked),
        "{new:?} (updated at {acked})"
    );

    // A merge patch sets and removes the rule's optional fields (null: removed).
    let cron = format!("/goscheduler/schedules/{id}");
    let end = now() + 3600;
    let set = json!({"timezone": "Asia/Kolkata", "overlapPolicy": "SKIP", "endTime": end, "jitterSeconds": 3});
    let (status, reply) = send(&cluster, 3, Method::PATCH, &cron, set).await;
    assert_eq!(status, 200, "{reply}");
    let shown = &reply["data"]["schedule"];
    assert_eq!(
        (
            &shown["timezone"],
            &shown["overlapPolicy"],
            &shown["endTime"],
            &shown["jitterSeconds"]
        ),
        (
            &json!("Asia/Kolkata"),
            &json!("SKIP"),
            &json!(end),
            &json!(3)
        )
    );
    let unset =
        json!({"timezone": null, "endTime": null, "jitterSeconds": null, "overlapPolicy": "ALLOW"});
    let (status, reply) = send(&cluster, 1, Method::PATCH, &cron, unset).await;
    assert_eq!(status, 200, "{reply}");
    let shown = cluster.schedule(2, &id).await;
    for field in ["timezone", "endTime", "jitterSeconds", "overlapPolicy"] {
        assert!(shown.get(field).is_none(), "{field} still set: {shown}");
    }
    // The error cases, as upstream answers them.
    let cases = [
        (json!({"appId": "other"}), 400, "Cannot modify appId for an existing schedule"),
        (
            json!({"appId": "other", "scheduleId": "x", "payload": "p"}),
            400,
            "Cannot modify appId for an existing schedule,Cannot modify scheduleId for an existing schedule",
        ),
        (json!({"cronExpression": "61 * * * *"}), 422, "validation errors: invalid cronExpression"),
        (json!({"payload": "p", "callback": {"type": "http", "details": {"url": "www.x", "method": "POST"}}}),
            422, "validation errors: parse \"www.x\": invalid URI for request"),
        (json!({}), 400, "nothing to change"),
    ];
    for (body, code, message) in cases {
        let (status, reply) = send(&cluster, 3, Method::PUT, &update, body.clone()).await;
        assert_eq!(status, code, "{body}: {reply}");
        let said = reply["status"]["statusMessage"].as_str().unwrap();
        assert!(said.starts_with(message), "{body}: {said}");
    }
    let unknown = format!(
        "/goscheduler/schedules/{}/updateRecurringSchedule",
        uuid::Uuid::now_v7()
    );
    let (status, _) = send(&cluster, 1, Method::PUT, &unknown, json!({"payload": "p"})).await;
    assert_eq!(status, 404);
    let once = cluster
        .create(1, &calling("editing", now() + 600, &rx.url("/ok/once")))
        .await;
    let path = format!("/goscheduler/schedules/{once}/updateRecurringSchedule");
    let (status, reply) = send(&cluster, 1, Method::PUT, &path, json!({"payload": "p"})).await;
    assert_eq!(status, 422);
    assert_eq!(
        reply["status"]["statusMessage"],
        format!("Schedule with id: {once} is not a recurring schedule")
    );
    // A deleted cron cannot change.
    let (status, _) = cluster
        .call(
            1,
            Method::DELETE,
            &format!("/goscheduler/schedules/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, reply) = send(&cluster, 2, Method::PUT, &update, json!({"payload": "p"})).await;
    assert_eq!(status, 422, "{reply}");
    assert!(reply["status"]["statusMessage"]
        .as_str()
        .unwrap()
        .contains("not in Scheduled state"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patched_one_time_schedule_fires_at_its_new_second() {
    let cluster = Cluster::start(3, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster.register_app(1, "moving", 2).await;
    let id = cluster
        .create(1, &calling("moving", now() + 600, &rx.url("/ok/m")))
        .await;
    let path = format!("/goscheduler/schedules/{id}");
    let to = now() + 3;
    let patch = json!({"scheduleTime": to, "payload": "moved"});
    let (status, reply) = send(&cluster, 2, Method::PATCH, &path, patch).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["status"]["statusMessage"],
        "Schedule updated successfully"
    );
    assert_eq!(reply["data"]["schedule"]["scheduleTime"], to);
    let done = finished(&cluster, 3, &id, Duration::from_secs(15)).await;
    assert_eq!(done["status"], "SUCCESS", "{done}");
    let d = rx.deliveries();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!((d[0].schedule_time, d[0].body.as_str()), (to, "moved"));
    assert!(d[0].received_ms as i64 >= to * 1000);
    // Finished: no longer changeable. Bad patches: named.
    let (status, reply) = send(&cluster, 1, Method::PATCH, &path, json!({"payload": "x"})).await;
    assert_eq!(status, 422, "{reply}");
    let other = cluster
        .create(1, &calling("moving", now() + 600, &rx.url("/ok/m")))
        .await;
    let path = format!("/goscheduler/schedules/{other}");
    for (body, code, message) in [
        (json!({"payload": null}), 400, "payload cannot be removed"),
        (
            json!({"scheduleTime": now() - 10}),
            422,
            "validation errors: schedule time",
        ),
        (
            json!({"cronExpression": "* * * * *"}),
            422,
            "validation errors: cronExpression, timezone, startTime, endTime, jitterSeconds and overlapPolicy cannot be set on a one-time schedule",
        ),
        (
            json!({"scheduleId": "nope"}),
            400,
            "Cannot modify scheduleId",
        ),
    ] {
        let (status, reply) = send(&cluster, 3, Method::PATCH, &path, body.clone()).await;
        assert_eq!(status, code, "{body}: {reply}");
        let said = reply["status"]["statusMessage"].as_str().unwrap();
        assert!(said.starts_with(message), "{body}: {said}");
    }
    assert_eq!(
        cluster.schedule(1, &other).await["payload"],
        "{\"n\":1}",
        "nothing changed"
    );
}

/// The audit log of `the_audit_log_shows_every_change_in_order_from_any_node`, newest first.
const AUDITED: [&str; 8] = [
    "DELETE",
    "TRIGGER",
    "APP_ACTIVATE",
    "APP_DEACTIVATE",
    "RESUME",
    "PAUSE",
    "UPDATE",
    "CREATE",
];

/// The audit log shows create → update (with the changed fields) → pause → resume → its
/// app's deactivation and activation → trigger → delete, newest first, through every
/// node; another app's id finds nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_shows_every_change_in_order_from_any_node() {
    let cluster = Cluster::start(3, Options::default()).await;
    cluster.register_app(1, "audited", 2).await;
    cluster.register_app(1, "stranger", 1).await;
    let mut body = cron_calling("audited", "0 0 * * *", "http://127.0.0.1:9/cb");
    body["payload"] = json!("v1");
    let id = cluster.create(1, &body).await;
    let s = format!("/goscheduler/schedules/{id}");
    let steps = [
        (
            Method::PATCH,
            s.clone(),
            json!({"payload": "v2", "cronExpression": "0 12 * * *"}),
        ),
        (Method::PUT, format!("{s}/pause"), json!({})),
        (Method::PUT, format!("{s}/resume"), json!({})),
        (
            Method::POST,
            "/goscheduler/apps/audited/deactivate".into(),
            json!({}),
        ),
        (
            Method::POST,
            "/goscheduler/apps/audited/activate".into(),
            json!({}),
        ),
        (Method::POST, format!("{s}/trigger"), json!({})),
        (Method::DELETE, s.clone(), json!({})),
    ];
    for (i, (method, path, body)) in steps.into_iter().enumerate() {
        let (status, reply) = send(&cluster, 1 + i as u64 % 3, method, &path, body).await;
        assert_eq!(status, 200, "{path}: {reply}");
    }
    let log = format!("/goscheduler/apps/audited/schedules/{id}/audit-logs");
    for via in 1..=3 {
        let (status, reply) = cluster.call(via, Method::GET, &log, None).await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["data"]["scheduleId"], id.as_str());
        let entries = reply["data"]["auditLogs"].as_array().unwrap();
        let actions: Vec<&str> = entries
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, AUDITED, "{reply}");
        let at: Vec<u64> = entries
            .iter()
            .map(|e| e["atMs"].as_u64().unwrap())
            .collect();
        assert!(at.windows(2).all(|w| w[0] >= w[1]), "{at:?}");
        let nodes: Vec<u64> = entries[..7]
            .iter()
            .map(|e| e["node"].as_u64().unwrap())
            .collect();
        assert_eq!(
            nodes,
            [1, 3, 2, 1, 3, 2, 1],
            "the node that took each request"
        );
        let update = &entries[6]["changes"];
        assert_eq!(
            update,
            &json!([
                {"field": "cronExpression", "before": "0 0 * * *", "after": "0 12 * * *"},
                {"field": "payload", "before": "v1", "after": "v2"}
            ])
        );
        assert!(entries[1]["runId"].is_string());
    }
    let (status, _) = cluster
        .call(2, Method::GET, &format!("{log}?limit=2"), None)
        .await;
    assert_eq!(status, 200);
    let (_, reply) = cluster
        .call(2, Method::GET, &format!("{log}?limit=2"), None)
        .await;
    assert_eq!(reply["data"]["auditLogs"].as_array().unwrap().len(), 2);
    // The same through goschedctl's REST commands, as a table and as JSON.
    let rest = cluster.node(2).http.clone();
    let table = cluster
        .ctl(
            1,
            &with_rest(&rest, &["schedules", "audit", "--app", "audited", &id]),
        )
        .await;
    let actions: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().nth(1))
        .collect();
    assert_eq!(actions, AUDITED, "{table}");
    let shown = cluster
        .ctl(3, &with_rest(&rest, &["--json", "schedules", "get", &id]))
        .await;
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["schedule"]["status"], "DELETED");
    let apps = cluster.ctl(1, &with_rest(&rest, &["apps", "list"])).await;
    assert!(apps.lines().any(|l| l.starts_with("audited ")), "{apps}");
    let refused = cluster
        .try_ctl(1, &with_rest(&rest, &["schedules", "pause", &id]))
        .await
        .unwrap_err();
    assert!(
        refused.contains("422") && refused.contains("not in Scheduled state"),
        "{refused}"
    );
    let other = format!("/goscheduler/apps/stranger/schedules/{id}/audit-logs");
    let (status, _) = cluster.call(3, Method::GET, &other, None).await;
    assert_eq!(status, 404);
    let (status, _) = cluster
        .call(3, Method::GET, &format!("{log}?limit=-1"), None)
        .await;
    assert_eq!(status, 400);
}

/// goschedctl arguments talking REST to `rest`.
fn with_rest<'a>(rest: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    [&["--rest", rest][..], args].concat()
}
