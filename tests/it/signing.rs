//! Signed callbacks: every app gets a Standard Webhooks secret at registration; each call
//! carries `webhook-id` (the run id), `webhook-timestamp` and `webhook-signature`, which the
//! reference verifier (the Python `standardwebhooks` package) accepts. After a rotation both
//! the old and the new secret verify during the overlap, only the new one after.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::firing::{calling, finished};
use crate::harness::{now, Cluster, Options};
use goscheduler::bench::receiver::{Delivery, Receiver};

/// Whether the reference verifier accepts `delivery` as signed with `secret`.
fn python_verifies(secret: &str, delivery: &Delivery) -> bool {
    let header = |name: &str| {
        delivery.headers[name]
            .to_str()
            .expect("an ASCII header")
            .to_string()
    };
    let input = json!({
        "secret": secret,
        "body": delivery.body,
        "headers": {
            "webhook-id": header("webhook-id"),
            "webhook-timestamp": header("webhook-timestamp"),
            "webhook-signature": header("webhook-signature"),
        },
    });
    let script = "import json, sys\n\
        from standardwebhooks.webhooks import Webhook\n\
        i = json.load(sys.stdin)\n\
        try:\n    Webhook(i['secret']).verify(i['body'], i['headers'])\nexcept Exception as e:\n    print(e); sys.exit(3)\n";
    let mut python = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .spawn()
        .expect("python3 runs (scripts/test.sh installs standardwebhooks)");
    python
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let status = python.wait().unwrap();
    assert!(
        matches!(status.code(), Some(0 | 3)),
        "the verifier itself failed (is the standardwebhooks package installed?): {status}"
    );
    status.success()
}

async fn secret(cluster: &Cluster, path: &str, method: Method) -> Value {
    let (status, reply) = cluster.call(1, method, path, None).await;
    assert_eq!(status, 200, "{path}: {reply}");
    reply["data"].clone()
}

/// Fires one run of app `signed` to `rx` and answers its delivery.
async fn one_call(cluster: &Cluster, rx: &Receiver, tag: &str) -> Delivery {
    let body = calling("signed", now() + 2, &rx.url(&format!("/ok/{tag}")));
    let id = cluster.create(1, &body).await;
    let run = finished(cluster, 1, &id, Duration::from_secs(30)).await;
    assert_eq!(run["status"], "SUCCESS", "{run}");
    let delivery = rx
        .deliveries()
        .into_iter()
        .find(|d| d.schedule_id == id)
        .expect("delivered");
    assert_eq!(delivery.headers["webhook-id"], id.as_str());
    delivery
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_are_signed_and_verify_across_a_secret_rotation() {
    let cluster = Cluster::start(1, Options::default()).await;
    let rx = Receiver::start("127.0.0.1:0").await.unwrap();
    cluster.register_app(1, "signed", 1).await;
    // The app as listed never shows its secret.
    let (_, listed) = cluster
        .call(1, Method::GET, "/goscheduler/apps?app_id=signed", None)
        .await;
    assert!(!listed.to_string().contains("whsec_"), "{listed}");
    let first = secret(
        &cluster,
        "/goscheduler/apps/signed/signing-secret",
        Method::GET,
    )
    .await;
    let s1 = first["signingSecret"].as_str().unwrap().to_string();
    assert!(s1.starts_with("whsec_"), "{first}");

    let d = one_call(&cluster, &rx, "first").await;
    assert!(python_verifies(&s1, &d));
    let mut forged = d.clone();
    forged.body.push(' ');
    assert!(!python_verifies(&s1, &forged), "a changed body verified");

    // Rotation with an overlap: both secrets verify the next call.
    let rotate = "/goscheduler/apps/signed/signing-secret/rotate?overlapSeconds=600";
    let second = secret(&cluster, rotate, Method::POST).await;
    let s2 = second["signingSecret"].as_str().unwrap().to_string();
    assert_ne!(s1, s2);
    assert_eq!(second["previousSigningSecret"], s1.as_str(), "{second}");
    let d = one_call(&cluster, &rx, "overlap").await;
    assert!(
        python_verifies(&s1, &d),
        "the old secret no longer verifies"
    );
    assert!(python_verifies(&s2, &d), "the new secret does not verify");

    // Rotation without overlap: only the newest verifies.
    let rotate = "/goscheduler/apps/signed/signing-secret/rotate?overlapSeconds=0";
    let third = secret(&cluster, rotate, Method::POST).await;
    let s3 = third["signingSecret"].as_str().unwrap().to_string();
    assert!(third.get("previousSigningSecret").is_none(), "{third}");
    let d = one_call(&cluster, &rx, "after").await;
    assert!(python_verifies(&s3, &d));
    assert!(
        !python_verifies(&s2, &d),
        "a rotated-out secret still verifies"
    );

    // Registering the app again keeps its secret; bad overlaps are 400.
    cluster.register_app(1, "signed", 1).await;
    let now = secret(
        &cluster,
        "/goscheduler/apps/signed/signing-secret",
        Method::GET,
    )
    .await;
    assert_eq!(now["signingSecret"], s3.as_str());
    let (status, reply) = cluster
        .call(
            1,
            Method::POST,
            "/goscheduler/apps/signed/signing-secret/rotate?overlapSeconds=99999999",
            None,
        )
        .await;
    assert_eq!(status, 400, "{reply}");
}
