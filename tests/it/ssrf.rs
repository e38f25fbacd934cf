//! The callbacks' SSRF guard: a URL inside the node's network is refused at create (400) and
//! again when called — after DNS resolution, so a name that resolves to loopback gets
//! nowhere — and redirects are not followed. Listeners must see nothing they were not
//! allowed to see. Only loopback targets and unroutable addresses refused before any
//! connect are used: no traffic leaves this machine.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::firing::{calling, finished, first_error};
use crate::harness::{now, Cluster, Options};
use goscheduler::bench::receiver::Receiver;

async fn refused_at_create(cluster: &Cluster, url: &str, why: &str) {
    let body = calling("guarded", now() + 60, url).to_string();
    let (status, reply) = cluster
        .call(1, Method::POST, "/goscheduler/schedules", Some(&body))
        .await;
    assert_eq!(status, 400, "{url}: {reply}");
    let said = reply["status"]["statusMessage"]
        .as_str()
        .unwrap_or_default();
    assert!(said.contains(why), "{url}: {said:?} lacks {why:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_inside_the_network_are_refused_at_create_and_when_called() {
    let opts = Options {
        callbacks: Some("allow = []"),
        ..Options::default()
    };
    let cluster = Cluster::start(1, opts).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    let no_retries = Some(json!({"httpRetries": 0, "httpTimeout": 1000}));
    cluster.register_app_with(1, "guarded", 1, no_retries).await;
    let port = rx.addr.port();
    for (url, why) in [
        (rx.url("/ok/direct"), "loopback"),
        (format!("http://[::ffff:127.0.0.1]:{port}/ok"), "loopback"),
        (
            "http://169.254.169.254/latest/meta-data".into(),
            "link-local",
        ),
        ("http://10.0.0.1/cb".into(), "private"),
        ("http://100.64.0.1/cb".into(), "CGNAT"),
        (
            format!("http://{}/goscheduler/healthcheck", cluster.node(1).http),
            "this cluster",
        ),
    ] {
        refused_at_create(&cluster, &url, why).await;
    }
    // A name is checked when called, on what it resolves to: `localhost` is loopback.
    let by_name = cluster
        .create(
            1,
            &calling(
                "guarded",
                now() + 2,
                &format!("http://localhost:{port}/ok/by-name"),
            ),
        )
        .await;
    let run = finished(&cluster, 1, &by_name, Duration::from_secs(30)).await;
    assert_eq!(run["status"], "FAILURE", "{run}");
    assert!(first_error(&run).contains("loopback"), "{run}");
    assert_eq!(
        rx.count(),
        0,
        "the receiver was reached: {:?}",
        rx.deliveries()
    );
}

/// A receiver on this machine that answers every request with a redirect to `to`.
async fn redirecting_to(to: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let to = to.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                let _ = conn.read(&mut buf).await;
                let answer = format!(
                    "HTTP/1.1 302 Found\r\nlocation: {to}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}/moved")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_listed_targets_are_called_and_redirects_are_not_followed() {
    let cluster = Cluster::start(1, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    let no_retries = Some(json!({"httpRetries": 0, "httpTimeout": 1000}));
    cluster.register_app_with(1, "guarded", 1, no_retries).await;
    let t = now() + 2;
    let direct = cluster
        .create(1, &calling("guarded", t, &rx.url("/ok/direct")))
        .await;
    let redirector = redirecting_to(rx.url("/ok/after-redirect")).await;
    let redirected = cluster.create(1, &calling("guarded", t, &redirector)).await;
    let run = finished(&cluster, 1, &direct, Duration::from_secs(30)).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    let run = finished(&cluster, 1, &redirected, Duration::from_secs(30)).await;
    assert_eq!(run["status"], "FAILURE", "{run}");
    assert_eq!(run["attempts"][0]["httpStatus"], 302, "{run}");
    let paths: Vec<String> = rx.deliveries().iter().map(|d| d.path.clone()).collect();
    assert_eq!(paths, ["/ok/direct"], "the redirect was followed");
    // The node's own addresses stay refused even though 127.0.0.1 is allowed.
    refused_at_create(
        &cluster,
        &format!(
            "http://{}/goscheduler/apps/guarded/bulk-action/reconcile",
            cluster.node(1).http
        ),
        "this cluster",
    )
    .await;
}
