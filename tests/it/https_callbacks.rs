//! `https` callbacks end to end: a node calls TLS receivers whose certificate chains to a CA
//! it trusts (`callbacks.ca_file`, besides the system's store) over HTTP/2 or HTTP/1.1 as
//! ALPN settles, and refuses — before sending anything — a receiver whose certificate is
//! self-signed or names another host; a node on a machine without CA certificates still
//! runs and says why its `https` calls fail.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use serde_json::{json, Value};
use tokio_rustls::rustls;

use crate::firing::{calling, finished, first_error};
use crate::harness::{now, Cluster, Options};
use goscheduler::bench::receiver::Receiver;

/// A certificate for `names` and its key, signed by `issuer` (self-signed without one).
fn certificate(
    names: &[&str],
    issuer: Option<&Issuer<'_, KeyPair>>,
) -> (rustls::pki_types::CertificateDer<'static>, KeyPair) {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let params = CertificateParams::new(names).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = match issuer {
        Some(issuer) => params.signed_by(&key, issuer).unwrap(),
        None => params.self_signed(&key).unwrap(),
    };
    (cert.der().clone(), key)
}

/// A test CA: its issuer and its certificate's PEM.
fn test_ca() -> (Issuer<'static, KeyPair>, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate().unwrap();
    let pem = params.self_signed(&key).unwrap().pem();
    (Issuer::new(params, key), pem)
}

/// A TLS receiver presenting `cert`, offering the ALPN protocols `alpn`.
async fn tls_receiver(
    (cert, key): (rustls::pki_types::CertificateDer<'static>, KeyPair),
    alpn: &[&[u8]],
) -> Receiver {
    let key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Receiver::start_tls("127.0.0.1:0", Arc::new(config))
        .await
        .unwrap()
}

/// Runs one call to each of `urls` (due together) and returns the finished runs.
async fn fire_each(cluster: &Cluster, app: &str, urls: &[String]) -> Vec<Value> {
    let due = now() + 2;
    let mut ids = vec![];
    for url in urls {
        ids.push(cluster.create(1, &calling(app, due, url)).await);
    }
    let mut runs = vec![];
    for id in ids {
        runs.push(finished(cluster, 1, &id, Duration::from_secs(30)).await);
    }
    runs
}

/// `callbacks` keys leaked for the cluster's options (one per test).
fn callbacks_toml(ca_file: &Path) -> &'static str {
    let toml = format!(
        "allow = [\"127.0.0.1\"]\nca_file = \"{}\"",
        ca_file.display()
    );
    Box::leak(toml.into_boxed_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_callbacks_reach_only_receivers_the_node_trusts() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, ca_pem) = test_ca();
    let ca_file = dir.path().join("callback-ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();
    let here = ["127.0.0.1", "localhost"];
    let h2 = tls_receiver(certificate(&here, Some(&ca)), &[b"h2", b"http/1.1"]).await;
    let h1 = tls_receiver(certificate(&here, Some(&ca)), &[b"http/1.1"]).await;
    let rogue = tls_receiver(certificate(&here, None), &[b"http/1.1"]).await;
    let elsewhere = tls_receiver(certificate(&["hooks.example"], Some(&ca)), &[b"http/1.1"]).await;

    let opts = Options {
        callbacks: Some(callbacks_toml(&ca_file)),
        ..Options::default()
    };
    let mut cluster = Cluster::start(1, opts).await;
    let no_retries = Some(json!({"httpRetries": 0, "httpTimeout": 5000}));
    cluster
        .register_app_with(1, "tls-hooks", 1, no_retries)
        .await;
    let urls = [
        h2.url("/ok/h2"),
        h1.url("/ok/h1"),
        rogue.url("/ok/rogue"),
        elsewhere.url("/ok/elsewhere"),
    ];
    let runs = fire_each(&cluster, "tls-hooks", &urls).await;
    assert_eq!(runs[0]["status"], "SUCCESS", "{}", runs[0]);
    assert_eq!(runs[1]["status"], "SUCCESS", "{}", runs[1]);
    let got = h2.deliveries();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].version, http::Version::HTTP_2);
    assert_eq!(got[0].body, "{\"n\":1}");
    assert_eq!(got[0].schedule_id, runs[0]["scheduleId"].as_str().unwrap());
    let got = h1.deliveries();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].version, http::Version::HTTP_11);
    // Refused in the handshake: nothing reached either receiver, and the run says why.
    for (run, rx, why) in [
        (&runs[2], &rogue, "invalid peer certificate"),
        (&runs[3], &elsewhere, "not valid for name \"127.0.0.1\""),
    ] {
        assert_eq!(run["status"], "FAILURE", "{run}");
        let error = first_error(run);
        assert!(error.contains(why), "{error}");
        assert_eq!(rx.count(), 0);
    }

    // Without the system's store (a bare container), the configured CA alone still serves.
    cluster.kill(1);
    cluster.start_with_env(
        1,
        &[
            ("SSL_CERT_FILE", "/nonexistent/certs.pem"),
            ("SSL_CERT_DIR", "/nonexistent"),
        ],
    );
    cluster.wait_healthy(1, Duration::from_secs(60)).await;
    let runs = fire_each(&cluster, "tls-hooks", &[h2.url("/ok/again")]).await;
    assert_eq!(runs[0]["status"], "SUCCESS", "{}", runs[0]);
    assert_eq!(h2.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_trusts_no_ca_runs_and_says_why_https_calls_fail() {
    let mut cluster = Cluster::start(1, Options::default()).await;
    // No CA certificates on the machine and no callbacks.ca_file.
    cluster.kill(1);
    cluster.start_with_env(
        1,
        &[
            ("SSL_CERT_FILE", "/nonexistent/certs.pem"),
            ("SSL_CERT_DIR", "/nonexistent"),
        ],
    );
    cluster.wait_healthy(1, Duration::from_secs(60)).await;
    let (ca, _) = test_ca();
    let tls = tls_receiver(certificate(&["127.0.0.1"], Some(&ca)), &[b"http/1.1"]).await;
    let plain = Receiver::start("127.0.0.1:0").await.unwrap();
    let no_retries = Some(json!({"httpRetries": 0, "httpTimeout": 5000}));
    cluster.register_app_with(1, "bare", 1, no_retries).await;
    let runs = fire_each(
        &cluster,
        "bare",
        &[tls.url("/ok/tls"), plain.url("/ok/plain")],
    )
    .await;
    assert_eq!(runs[0]["status"], "FAILURE", "{}", runs[0]);
    let error = first_error(&runs[0]);
    assert!(error.contains("trusts no CA certificate"), "{error}");
    assert_eq!(tls.count(), 0);
    assert_eq!(runs[1]["status"], "SUCCESS", "{}", runs[1]);
    assert_eq!(plain.count(), 1);
}
