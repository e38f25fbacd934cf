//! With an admin token configured, every REST endpoint but the healthcheck, metrics and the
//! OpenAPI document needs it (401 in the envelope otherwise), and so does every admin
//! operation that changes the cluster (`status` stays open); nodes pass it on when they
//! forward an admin operation to a group's leader.

use reqwest::Method;

use crate::harness::{Cluster, Options};

const TOKEN: &str = "it-admin-token-0123456789";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_guards_rest_and_admin_operations() {
    let opts = Options {
        top: "[auth]\nadmin_token = \"it-admin-token-0123456789\"",
        ..Options::default()
    };
    let cluster = Cluster::start(3, opts).await;
    let bearer = format!("Bearer {TOKEN}");
    let with = [("Authorization", bearer.as_str())];
    let app = r#"{"appId":"authed","partitions":2,"active":true}"#;

    for (method, path, body) in [
        (Method::GET, "/goscheduler/apps", None),
        (Method::POST, "/goscheduler/apps", Some(app)),
        (
            Method::GET,
            "/goscheduler/crons/schedules?app_id=authed",
            None,
        ),
        (Method::POST, "/goscheduler/schedules", Some("{}")),
        (Method::GET, "/goscheduler/nowhere", None),
    ] {
        let (status, headers, reply) = cluster.call_with(2, method.clone(), path, body, &[]).await;
        assert_eq!(status, 401, "{method} {path}: {reply}");
        assert_eq!(reply["status"]["statusType"], "Fail", "{reply}");
        assert_eq!(headers["www-authenticate"], "Bearer");
        let wrong = [("Authorization", "Bearer it-admin-token-012345678X")];
        let (status, _, _) = cluster
            .call_with(2, method.clone(), path, body, &wrong)
            .await;
        assert_eq!(status, 401, "{method} {path} with a wrong token");
    }
    let (status, _, reply) = cluster
        .call_with(2, Method::POST, "/goscheduler/apps", Some(app), &with)
        .await;
    assert_eq!(status, 200, "{reply}");
    let (status, _, reply) = cluster
        .call_with(
            3,
            Method::GET,
            "/goscheduler/apps?app_id=authed",
            None,
            &with,
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    for open in [
        "/goscheduler/healthcheck",
        "/goscheduler/openapi.json",
        "/metrics",
    ] {
        let (status, _, _) = cluster.call_with(1, Method::GET, open, None, &[]).await;
        assert_eq!(status, 200, "{open} must stay open");
    }

    // Admin: status is open; changes need the token, forwarded to leaders with it.
    let status = cluster.ctl(1, &["status", "--json"]).await;
    assert!(status.contains("\"nodes\""), "{status}");
    let refused = cluster
        .try_ctl(1, &["snapshot", "--all"])
        .await
        .expect_err("a snapshot without the token");
    assert!(refused.contains("admin token"), "{refused}");
    let refused = cluster
        .try_ctl(
            1,
            &[
                "--token",
                "it-admin-token-wrong-0000",
                "transfer-leader",
                "--all",
                "--to",
                "2",
            ],
        )
        .await
        .expect_err("a transfer with a wrong token");
    assert!(refused.contains("admin token"), "{refused}");
    cluster
        .ctl(1, &["--token", TOKEN, "snapshot", "--all"])
        .await;
    // Every group moved to node 3, each asked through node 1 (most are led elsewhere: the
    // request is forwarded to their leaders, who check the token too).
    for group in 0..=crate::harness::SHARDS as u64 {
        let g = group.to_string();
        let out = cluster
            .ctl(
                1,
                &[
                    "--token",
                    TOKEN,
                    "transfer-leader",
                    "--group",
                    &g,
                    "--to",
                    "3",
                ],
            )
            .await;
        assert!(!out.is_empty(), "{out}");
    }
}
