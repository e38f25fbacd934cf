//! The OpenAPI document tells the truth: schemathesis (PyPI `schemathesis` 4.x, installed by
//! `scripts/test.sh`) generates schema-valid and schema-violating requests for every
//! operation from `GET /goscheduler/openapi.json` and runs all its checks against a real
//! node with an admin token: no 5xx, every status and body as documented, valid data
//! accepted, invalid data refused. `tests/schemathesis/schemathesis.toml` names the test
//! app and, per operation, the documented state refusals (the wiki's 400 for app states;
//! time rules a schema cannot state). `SCHEMATHESIS_SEED` replays a run,
//! `SCHEMATHESIS_EXAMPLES` (default 30 per operation) sets its size.

use std::process::Command;

use reqwest::Method;

use crate::harness::{env_or, Cluster, Options};

const TOKEN: &str = "conformance-admin-token-42";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing_the_document_does_not_say() {
    let opts = Options {
        top: "[auth]\nadmin_token = \"conformance-admin-token-42\"",
        // The production callback guard: private addresses refused.
        callbacks: Some(""),
        ..Options::default()
    };
    let cluster = Cluster::start(1, opts).await;
    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let app = r#"{"appId":"st-app","partitions":2,"active":true}"#;
    let (status, _, reply) = cluster
        .call_with(1, Method::POST, "/goscheduler/apps", Some(app), &auth)
        .await;
    assert_eq!(status, 200, "{reply}");

    let seed: u64 = env_or("SCHEMATHESIS_SEED", rand::random::<u64>() >> 1);
    let examples: u32 = env_or("SCHEMATHESIS_EXAMPLES", 30);
    println!("schemathesis seed {seed} (SCHEMATHESIS_SEED={seed} replays it)");
    let config = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/schemathesis/schemathesis.toml"
    );
    let work = cluster.data_dir(1).with_file_name("schemathesis");
    std::fs::create_dir_all(&work).unwrap();
    let out = Command::new("python3")
        .current_dir(&work)
        .args([
            "-m",
            "schemathesis.cli",
            "--no-color",
            "--config-file",
            config,
            "run",
        ])
        .arg(cluster.url(1, "/goscheduler/openapi.json"))
        .args(["--checks", "all", "--seed", &seed.to_string()])
        .args(["--max-examples", &examples.to_string()])
        .args(["--header", &format!("Authorization: {bearer}")])
        .output()
        .expect("python3 runs (scripts/test.sh installs schemathesis)");
    let report = String::from_utf8_lossy(&out.stdout);
    let errors = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis (seed {seed}) found failures:\n{report}\n{errors}"
    );
    // "Test cases:\n  2200 generated, 2200 passed, 28 skipped"
    let generated: u64 = report
        .lines()
        .filter_map(|l| l.trim().split_once(" generated, "))
        .find_map(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no case count in the report:\n{report}"));
    println!("schemathesis: {generated} cases, 0 failures");
    assert!(generated >= 1000, "only {generated} cases:\n{report}");

    let (status, _) = cluster
        .call(1, Method::GET, "/goscheduler/healthcheck", None)
        .await;
    assert_eq!(status, 200, "the node serves on after the run");
}
