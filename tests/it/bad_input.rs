//! Bad input on the app endpoints: every case gets a 4xx JSON error in the envelope that
//! names the problem, nothing stored changes, and the node keeps serving.

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{Cluster, Options};

async fn apps_listing(cluster: &Cluster, node: u64) -> Value {
    let (status, json) = cluster
        .call(node, Method::GET, "/goscheduler/apps", None)
        .await;
    assert_eq!(status, 200, "{json}");
    json["data"].clone()
}

fn assert_fail(case: &str, status: u16, body: &Value, http: u16, code: u64, needle: &str) {
    assert_eq!(status, http, "{case}: HTTP status, body {body}");
    assert_eq!(body["status"]["statusType"], "Fail", "{case}: {body}");
    assert_eq!(body["status"]["statusCode"], code, "{case}: {body}");
    let msg = body["status"]["statusMessage"].as_str().unwrap_or_default();
    assert!(
        msg.contains(needle),
        "{case}: message {msg:?} lacks {needle:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_app_requests_get_4xx_in_the_envelope_and_harm_nothing() {
    let cluster = Cluster::start(3, Options::default()).await;

    // Fresh cluster: no apps yet is a 404 in the envelope.
    let (status, body) = cluster
        .call(2, Method::GET, "/goscheduler/apps", None)
        .await;
    assert_fail("no apps", status, &body, 404, 404, "No app found");

    // Registering through a follower works; defaults as the wiki says.
    let (status, body) = cluster
        .call(
            3,
            Method::POST,
            "/goscheduler/apps",
            Some(r#"{"appId":"revamp","partitions":2,"active":true}"#),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"status":{"statusCode":201,"statusMessage":"Success","statusType":"Success","totalCount":1},
               "data":{"appId":"revamp","partitions":2,"active":true}})
    );
    let (_, body) = cluster
        .call(
            1,
            Method::POST,
            "/goscheduler/apps",
            Some(r#"{"appId":"dflt"}"#),
        )
        .await;
    assert_eq!(
        body["data"],
        json!({"appId":"dflt","partitions":5,"active":false})
    );
    let before = apps_listing(&cluster, 1).await;

    let cases: Vec<(&str, &'static str, u16, u64, &str)> = vec![
        (
            "not JSON",
            "{appId: revamp",
            400,
            5001,
            "invalid request body",
        ),
        ("empty body", "", 400, 5001, "empty body"),
        ("JSON array", "[1,2]", 400, 5001, "invalid request body"),
        (
            "appId missing",
            r#"{"partitions":2}"#,
            400,
            400,
            "AppId cannot be empty",
        ),
        (
            "appId empty",
            r#"{"appId":"","partitions":2}"#,
            400,
            400,
            "AppId cannot be empty",
        ),
        (
            "appId with a dot",
            r#"{"appId":"a.b"}"#,
            400,
            400,
            "invalid character '.'",
        ),
        (
            "appId too long",
            r#"{"appId":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"}"#,
            400,
            400,
            "at most 64",
        ),
        (
            "appId a number",
            r#"{"appId":42}"#,
            400,
            5001,
            "invalid type",
        ),
        (
            "partitions a string",
            r#"{"appId":"x1","partitions":"two"}"#,
            400,
            5001,
            "invalid type",
        ),
        (
            "partitions negative",
            r#"{"appId":"x2","partitions":-1}"#,
            400,
            5001,
            "invalid value",
        ),
        (
            "partitions too many",
            r#"{"appId":"x3","partitions":100000}"#,
            400,
            400,
            "maximum of 1024",
        ),
        (
            "active a string",
            r#"{"appId":"x4","active":"yes"}"#,
            400,
            5001,
            "invalid type",
        ),
        (
            "configuration out of range",
            r#"{"appId":"x5","configuration":{"httpRetries":99}}"#,
            400,
            400,
            "httpRetries 99 is outside",
        ),
        (
            "configuration with an unknown key",
            r#"{"appId":"x6","configuration":{"retries":1}}"#,
            400,
            5001,
            "unknown field",
        ),
        (
            "partition change",
            r#"{"appId":"revamp","partitions":3,"active":true}"#,
            400,
            400,
            "already has 2 partitions",
        ),
    ];
    for (case, body, http, code, needle) in cases {
        let (status, reply) = cluster
            .call(2, Method::POST, "/goscheduler/apps", Some(body))
            .await;
        assert_fail(case, status, &reply, http, code, needle);
    }

    let huge = format!(r#"{{"appId":"big","pad":"{}"}}"#, "x".repeat(3 << 20));
    let (status, reply) = cluster
        .call(2, Method::POST, "/goscheduler/apps", Some(&huge))
        .await;
    assert_fail(
        "3 MiB body",
        status,
        &reply,
        413,
        413,
        "request body exceeds the limit of 1048576 bytes",
    );

    let calls: Vec<(&str, Method, &str, u16, u64, &str)> = vec![
        (
            "unknown app filter",
            Method::GET,
            "/goscheduler/apps?app_id=ghost",
            404,
            404,
            "app ghost not found",
        ),
        (
            "invalid app filter",
            Method::GET,
            "/goscheduler/apps?app_id=a.b",
            400,
            400,
            "invalid character",
        ),
        (
            "activate unknown",
            Method::POST,
            "/goscheduler/apps/ghost/activate",
            400,
            4001,
            "unregistered App",
        ),
        (
            "deactivate unknown",
            Method::POST,
            "/goscheduler/apps/ghost/deactivate",
            400,
            4001,
            "unregistered App",
        ),
        (
            "activate active",
            Method::POST,
            "/goscheduler/apps/revamp/activate",
            400,
            4003,
            "app is already activated",
        ),
        (
            "deactivate inactive",
            Method::POST,
            "/goscheduler/apps/dflt/deactivate",
            400,
            4002,
            "app is already deactivated",
        ),
        (
            "activate bad id",
            Method::POST,
            "/goscheduler/apps/a.b/activate",
            400,
            400,
            "invalid character",
        ),
        (
            "unknown path",
            Method::GET,
            "/goscheduler/nope",
            404,
            404,
            "no such endpoint",
        ),
        (
            "wrong method",
            Method::DELETE,
            "/goscheduler/apps",
            405,
            405,
            "not allowed",
        ),
    ];
    for (case, method, path, http, code, needle) in calls {
        let (status, reply) = cluster.call(1, method, path, None).await;
        assert_fail(case, status, &reply, http, code, needle);
    }

    // Nothing stored changed, on any node; the node still serves writes.
    for node in 1..=3 {
        assert_eq!(apps_listing(&cluster, node).await, before, "node {node}");
    }
    let (status, body) = cluster
        .call(2, Method::POST, "/goscheduler/apps/revamp/deactivate", None)
        .await;
    assert_eq!(
        (status, &body["data"]),
        (200, &json!({"appId":"revamp","Active":false})),
        "{body}"
    );
    let (status, body) = cluster
        .call(3, Method::POST, "/goscheduler/apps/revamp/activate", None)
        .await;
    assert_eq!(
        (status, &body["data"]),
        (200, &json!({"appId":"revamp","Active":true})),
        "{body}"
    );
    let (status, body) = cluster
        .call(1, Method::GET, "/goscheduler/apps?app_id=revamp", None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        body["data"]["apps"],
        json!([{"appId":"revamp","partitions":2,"active":true}])
    );
}
