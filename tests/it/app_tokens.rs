//! A cluster with mutual TLS between its nodes and authentication on: every REST endpoint
//! needs a token (401 without); an app's token touches only that app's schedules, runs and
//! bulk actions (403 for another app's, and for what only the admin may do); revoking it
//! takes effect; admin RPCs need the admin token, which goschedctl sends.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{now, Cluster, Options};

const ADMIN: &str = "it-admin-token-0123456789";

/// Calls node `via` as the holder of `token` (None: no Authorization header).
async fn call(
    cluster: &Cluster,
    via: u64,
    token: Option<&str>,
    method: Method,
    path: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| vec![("Authorization", b)])
        .unwrap_or_default();
    let (status, _, reply) = cluster.call_with(via, method, path, body, &headers).await;
    (status, reply)
}

fn one_time(app: &str) -> String {
    json!({"appId": app, "payload": "{}", "scheduleTime": now() + 3600,
        "callback": {"type": "http", "details": {"url": "http://127.0.0.1:9/x", "method": "POST"}}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_tokens_touch_only_their_app_over_a_tls_cluster() {
    let opts = Options {
        tls: true,
        top: "[auth]\nadmin_token = \"it-admin-token-0123456789\"",
        ..Options::default()
    };
    let cluster = Cluster::start(3, opts).await;
    let admin = Some(ADMIN);
    for app in ["alpha", "beta"] {
        let body = json!({"appId": app, "partitions": 2, "active": true}).to_string();
        let (status, reply) = call(
            &cluster,
            1,
            admin,
            Method::POST,
            "/goscheduler/apps",
            Some(&body),
        )
        .await;
        assert_eq!(status, 200, "{reply}");
    }
    let (status, issued) = call(
        &cluster,
        2,
        admin,
        Method::POST,
        "/goscheduler/apps/alpha/tokens",
        Some(r#"{"name":"ci"}"#),
    )
    .await;
    assert_eq!(
        (status, issued["status"]["statusCode"].as_u64()),
        (200, Some(201)),
        "{issued}"
    );
    let alpha_token = issued["data"]["token"].as_str().unwrap().to_string();
    let token_id = issued["data"]["tokenId"].as_str().unwrap().to_string();
    assert!(alpha_token.starts_with("gsk_alpha."), "{alpha_token}");
    let alpha = Some(alpha_token.as_str());

    // The token is shown once: the listing has its id and name only.
    let (status, listed) = call(
        &cluster,
        3,
        admin,
        Method::GET,
        "/goscheduler/apps/alpha/tokens",
        None,
    )
    .await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["data"][0]["tokenId"], token_id.as_str());
    assert_eq!(listed["data"][0]["name"], "ci");
    assert!(listed["data"][0].get("token").is_none(), "{listed}");
    assert!(!listed
        .to_string()
        .contains(&alpha_token[alpha_token.len() - 20..]));

    // Alpha's token works for alpha (through any node), for a schedule each.
    let (status, created) = call(
        &cluster,
        3,
        alpha,
        Method::POST,
        "/goscheduler/schedules",
        Some(&one_time("alpha")),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let alpha_id = created["data"]["schedule"]["scheduleId"]
        .as_str()
        .unwrap()
        .to_string();
    let (status, created) = call(
        &cluster,
        1,
        admin,
        Method::POST,
        "/goscheduler/schedules",
        Some(&one_time("beta")),
    )
    .await;
    assert_eq!(status, 200, "{created}");
    let beta_id = created["data"]["schedule"]["scheduleId"]
        .as_str()
        .unwrap()
        .to_string();

    let job = uuid::Uuid::new_v4();
    // (method, path, body, what alpha's token gets): every endpoint but the open ones.
    let cases: Vec<(Method, String, Option<String>, u16)> = vec![
        (
            Method::POST,
            "/goscheduler/apps".into(),
            Some(r#"{"appId":"gamma","partitions":1}"#.into()),
            403,
        ),
        (Method::GET, "/goscheduler/apps".into(), None, 403),
        (
            Method::GET,
            "/goscheduler/apps?app_id=beta".into(),
            None,
            403,
        ),
        (
            Method::GET,
            "/goscheduler/apps?app_id=alpha".into(),
            None,
            200,
        ),
        (
            Method::POST,
            "/goscheduler/apps/alpha/deactivate".into(),
            None,
            403,
        ),
        (
            Method::POST,
            "/goscheduler/apps/beta/activate".into(),
            None,
            403,
        ),
        (
            Method::GET,
            "/goscheduler/apps/alpha/signing-secret".into(),
            None,
            403,
        ),
        (
            Method::POST,
            "/goscheduler/apps/beta/signing-secret/rotate".into(),
            None,
            403,
        ),
        (
            Method::POST,
            "/goscheduler/apps/alpha/tokens".into(),
            None,
            403,
        ),
        (
            Method::GET,
            "/goscheduler/apps/beta/tokens".into(),
            None,
            403,
        ),
        (
            Method::DELETE,
            format!("/goscheduler/apps/alpha/tokens/{token_id}"),
            None,
            403,
        ),
        (
            Method::GET,
            "/goscheduler/apps/beta/schedules".into(),
            None,
            403,
        ),
        (
            Method::GET,
            "/goscheduler/apps/alpha/schedules".into(),
            None,
            200,
        ),
        (
            Method::POST,
            "/goscheduler/apps/beta/bulk-action/reconcile".into(),
            None,
            403,
        ),
        (
            Method::POST,
            "/goscheduler/apps/alpha/bulk-action/reconcile".into(),
            None,
            200,
        ),
        (
            Method::GET,
            format!("/goscheduler/apps/beta/bulk-action/jobs/{job}"),
            None,
            403,
        ),
        (
            Method::GET,
            format!("/goscheduler/apps/alpha/bulk-action/jobs/{job}"),
            None,
            404,
        ),
        (
            Method::GET,
            "/goscheduler/crons/schedules?app_id=beta".into(),
            None,
            403,
        ),
        (
            Method::GET,
            "/goscheduler/crons/schedules?app_id=alpha".into(),
            None,
            404, // allowed: alpha has no crons
        ),
        (
            Method::POST,
            "/goscheduler/schedules".into(),
            Some(one_time("beta")),
            403,
        ),
        (
            Method::GET,
            format!("/goscheduler/schedules/{beta_id}"),
            None,
            403,
        ),
        (
            Method::GET,
            format!("/goscheduler/schedules/{alpha_id}"),
            None,
            200,
        ),
        (
            Method::GET,
            format!("/goscheduler/schedules/{beta_id}/runs"),
            None,
            403,
        ),
        (
            Method::GET,
            format!("/goscheduler/schedules/{alpha_id}/runs?when=future"),
            None,
            200,
        ),
        (
            Method::DELETE,
            format!("/goscheduler/schedules/{beta_id}"),
            None,
            403,
        ),
        (Method::GET, "/goscheduler/nowhere".into(), None, 404),
    ];
    for (method, path, body, expected) in &cases {
        let body = body.as_deref();
        let (status, reply) = call(&cluster, 2, None, method.clone(), path, body).await;
        assert_eq!(status, 401, "{method} {path} without a token: {reply}");
        assert_eq!(reply["status"]["statusType"], "Fail", "{reply}");
        let (status, reply) = call(&cluster, 2, alpha, method.clone(), path, body).await;
        assert_eq!(
            status, *expected,
            "{method} {path} with alpha's token: {reply}"
        );
        if status == 403 {
            assert_eq!(reply["status"]["statusCode"], 403, "{reply}");
        }
    }
    // Alpha's own delete works; beta's schedule survived alpha's attempt.
    let path = format!("/goscheduler/schedules/{alpha_id}");
    let (status, reply) = call(&cluster, 3, alpha, Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{reply}");
    let (status, reply) = call(
        &cluster,
        1,
        admin,
        Method::GET,
        &format!("/goscheduler/schedules/{beta_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{reply}");

    // A batch: alpha's items are created, beta's refused item by item.
    let batch = format!(
        r#"{{"schedules":[{},{}]}}"#,
        one_time("alpha"),
        one_time("beta")
    );
    let (status, reply) = call(
        &cluster,
        1,
        alpha,
        Method::POST,
        "/goscheduler/schedules/batch",
        Some(&batch),
    )
    .await;
    assert_eq!(status, 200, "{reply}");
    let items = reply["data"]["results"].as_array().unwrap();
    assert_eq!(items[0]["statusCode"], 201, "{reply}");
    assert_eq!(items[1]["statusCode"], 403, "{reply}");

    // A forged token for alpha (right id, wrong secret) and another app's id: 401.
    let forged = format!("{}AAAA", &alpha_token[..alpha_token.len() - 4]);
    let renamed = alpha_token.replacen("gsk_alpha.", "gsk_beta.", 1);
    for bad in [forged.as_str(), renamed.as_str(), "gsk_alpha", "Basic x"] {
        let (status, reply) = call(
            &cluster,
            3,
            Some(bad),
            Method::GET,
            "/goscheduler/apps?app_id=alpha",
            None,
        )
        .await;
        assert_eq!(status, 401, "{bad}: {reply}");
    }

    // Revoked: refused on every node.
    let path = format!("/goscheduler/apps/alpha/tokens/{token_id}");
    let (status, reply) = call(&cluster, 1, admin, Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{reply}");
    let (status, _) = call(&cluster, 1, admin, Method::DELETE, &path, None).await;
    assert_eq!(status, 404, "revoking twice");
    for via in 1..=3 {
        let what = format!("the revoked token refused by node {via}");
        cluster
            .eventually(&what, Duration::from_secs(5), async || {
                let path = "/goscheduler/apps?app_id=alpha";
                call(&cluster, via, alpha, Method::GET, path, None).await.0 == 401
            })
            .await;
    }

    // Admin RPCs need the admin token (goschedctl over TLS); status stays open.
    cluster.ctl(2, &["status"]).await;
    let refused = cluster
        .try_ctl(2, &["transfer-leader", "--group", "1", "--to", "3"])
        .await
        .expect_err("a leader move without the token");
    assert!(refused.contains("admin token"), "{refused}");
    let moved = cluster
        .ctl(
            2,
            &[
                "--token",
                ADMIN,
                "transfer-leader",
                "--group",
                "1",
                "--to",
                "3",
            ],
        )
        .await;
    assert!(moved.contains("leader is now node 3"), "{moved}");
}
