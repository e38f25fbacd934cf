//! The bench tool behind `goschedctl bench`: drives a running cluster through its REST
//! gateways — registers an app, creates runs due over a window through every node, and
//! receives their callbacks itself — then reports creates/s, create latency, fires/s,
//! lateness, and missing and duplicate deliveries.

pub mod receiver;
pub mod updates;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::sync::Mutex;

use crate::schedule::time::now_ms;
use receiver::{Delivery, Receiver};

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    /// REST gateways to create through, round robin.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083"
    )]
    pub nodes: Vec<String>,
    /// Runs to create.
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Schedules per request: 1 uses POST /schedules, more use POST /schedules/batch.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// The first run is due this many seconds after the bench starts (creating must end first).
    #[arg(long, default_value_t = 10)]
    pub lead_secs: i64,
    /// Runs are spread evenly over this many seconds after the first (0: all in one second).
    #[arg(long, default_value_t = 0)]
    pub spread_secs: i64,
    /// Partitions of the bench's app.
    #[arg(long, default_value_t = 8)]
    pub partitions: u32,
    /// Where the callback receiver listens (the nodes must reach it).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub receiver: String,
    /// Stop waiting for deliveries this long after the last run fell due.
    #[arg(long, default_value_t = 30)]
    pub wait_secs: u64,
    /// Repeat the whole bench this many times with the same receiver and app: the first
    /// round opens the nodes' connections to the receiver, later rounds reuse them.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Only create (runs due later than the bench lasts): report creates and stop.
    #[arg(long)]
    pub creates_only: bool,
    /// After the rounds, change crons in place this many times (PATCH), at `--update-rate`.
    #[arg(long, default_value_t = 0)]
    pub updates: usize,
    /// Updates per second.
    #[arg(long, default_value_t = 100.0)]
    pub update_rate: f64,
}

/// What a bench run measured.
#[derive(Debug)]
pub struct Report {
    /// Whether deliveries were awaited (false with `--creates-only`).
    pub fired: bool,
    pub created: usize,
    pub create_errors: usize,
    pub create_secs: f64,
    pub create_p50_ms: f64,
    pub create_p99_ms: f64,
    pub delivered_runs: usize,
    pub deliveries: usize,
    pub fire_secs: f64,
    pub lateness_p50_ms: f64,
    pub lateness_p99_ms: f64,
    pub lateness_max_ms: f64,
    pub missing: usize,
    pub duplicates: usize,
    /// Repeats whose Idempotency-Key differs from their first delivery's (must be 0).
    pub key_mismatches: usize,
    /// The update bench, on the last round's report.
    pub updates: Option<updates::UpdateReport>,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rate = |n: usize, secs: f64| n as f64 / secs.max(0.001);
        writeln!(
            f,
            "creates:   {} ok, {} failed in {:.2} s = {:.0} creates/s; request latency p50 {:.1} ms, p99 {:.1} ms",
            self.created,
            self.create_errors,
            self.create_secs,
            rate(self.created, self.create_secs),
            self.create_p50_ms,
            self.create_p99_ms
        )?;
        if let Some(u) = &self.updates {
            writeln!(f, "{u}")?;
        }
        if !self.fired {
            return Ok(());
        }
        writeln!(
            f,
            "fires:     {} runs delivered ({} deliveries) in {:.2} s = {:.0} fires/s",
            self.delivered_runs,
            self.deliveries,
            self.fire_secs,
            rate(self.delivered_runs, self.fire_secs)
        )?;
        writeln!(
            f,
            "lateness:  p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (first delivery − scheduled second)",
            self.lateness_p50_ms, self.lateness_p99_ms, self.lateness_max_ms
        )?;
        write!(
            f,
            "integrity: {} missing, {} duplicate deliveries, {} with a changed Idempotency-Key",
            self.missing, self.duplicates, self.key_mismatches
        )
    }
}

/// The value at quantile `q` of sorted `v` (0 when empty).
pub fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1]
}

/// Runs `args.rounds` rounds, sending `token` (the cluster's admin token) when given;
/// returns each round's report.
pub async fn run(args: BenchArgs, token: Option<&str>) -> anyhow::Result<Vec<Report>> {
    anyhow::ensure!(!args.nodes.is_empty(), "--nodes names no gateway");
    anyhow::ensure!(
        args.batch >= 1 && args.batch <= 1000,
        "--batch must be 1..=1000"
    );
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse()?,
        );
    }
    let http = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let app = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    register(&http, &args.nodes[0], &app, args.partitions).await?;
    let receiver = Receiver::start(&args.receiver).await?;
    let mut reports = Vec::new();
    for _ in 0..args.rounds.max(1) {
        receiver.keep_lean(args.count);
        reports.push(round(&args, &http, &app, &receiver).await?);
        receiver.clear();
    }
    if args.updates > 0 {
        let u = updates::run(&http, &args.nodes, &app, args.updates, args.update_rate).await?;
        if let Some(last) = reports.last_mut() {
            last.updates = Some(u);
        }
    }
    Ok(reports)
}

async fn round(
    args: &BenchArgs,
    http: &reqwest::Client,
    app: &str,
    receiver: &Receiver,
) -> anyhow::Result<Report> {
    let first_due = (now_ms() / 1000) as i64 + args.lead_secs;
    let due_of =
        |i: usize| first_due + (i as i64 * (args.spread_secs + 1)) / args.count.max(1) as i64;
    let url = receiver.url("/ok/bench");
    let bodies: Vec<Value> = (0..args.count)
        .map(|i| {
            json!({
                "appId": app, "payload": format!("{{\"n\":{i}}}"), "scheduleTime": due_of(i),
                "callback": {"type": "http", "details": {"url": url, "method": "POST"}}
            })
        })
        .collect();

    let started = Instant::now();
    let (created, errors, mut latencies) = create_all(http, args, bodies).await;
    let create_secs = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    if let Some(e) = errors.first() {
        eprintln!("first create error: {e}");
    }

    // Wait until every run is delivered, or the wait ends.
    let last_due_ms = (due_of(args.count.saturating_sub(1)) as u64 + 1) * 1000;
    let give_up = if args.creates_only {
        0
    } else {
        last_due_ms + args.wait_secs * 1000
    };
    while receiver.count() < created.len() && now_ms() < give_up {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !args.creates_only {
        // A little longer, to catch duplicates.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deliveries = receiver.deliveries();
    Ok(summarise(
        !args.creates_only,
        &created,
        errors.len(),
        create_secs,
        &latencies,
        &deliveries,
    ))
}

async fn register(
    http: &reqwest::Client,
    node: &str,
    app: &str,
    partitions: u32,
) -> anyhow::Result<()> {
    let body = json!({"appId": app, "partitions": partitions, "active": true});
    let reply: Value = http
        .post(format!("http://{node}/goscheduler/apps"))
        .json(&body)
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(
        reply["status"]["statusType"] == "Success",
        "registering {app}: {reply}"
    );
    Ok(())
}

/// Creates every body, `args.batch` per request over `args.concurrency` workers; returns
/// the ids created, the errors and each request's latency (ms).
async fn create_all(
    http: &reqwest::Client,
    args: &BenchArgs,
    bodies: Vec<Value>,
) -> (Vec<String>, Vec<String>, Vec<f64>) {
    let chunks: Vec<Vec<Value>> = bodies.chunks(args.batch).map(<[Value]>::to_vec).collect();
    let queue = Arc::new(Mutex::new(chunks.into_iter().enumerate()));
    let workers = (0..args.concurrency).map(|_| {
        let (queue, http, nodes) = (queue.clone(), http.clone(), args.nodes.clone());
        tokio::spawn(async move {
            let (mut ids, mut errors, mut latencies) = (vec![], vec![], vec![]);
            loop {
                let Some((n, chunk)) = queue.lock().await.next() else {
                    break;
                };
                let node = &nodes[n % nodes.len()];
                let t = Instant::now();
                match create(&http, node, chunk).await {
                    Ok((ok, failed)) => {
                        ids.extend(ok);
                        errors.extend(failed);
                    }
                    Err(e) => errors.push(e.to_string()),
                }
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            (ids, errors, latencies)
        })
    });
    let (mut ids, mut errors, mut latencies) = (vec![], vec![], vec![]);
    for w in futures::future::join_all(workers).await {
        let (i, e, l) = w.expect("bench worker");
        ids.extend(i);
        errors.extend(e);
        latencies.extend(l);
    }
    (ids, errors, latencies)
}

/// One request: the ids created and the items refused.
async fn create(
    http: &reqwest::Client,
    node: &str,
    mut chunk: Vec<Value>,
) -> anyhow::Result<(Vec<String>, Vec<String>)> {
    if chunk.len() == 1 {
        let reply: Value = http
            .post(format!("http://{node}/goscheduler/schedules"))
            .json(&chunk.pop())
            .send()
            .await?
            .json()
            .await?;
        return Ok(match reply["data"]["schedule"]["scheduleId"].as_str() {
            Some(id) => (vec![id.to_string()], vec![]),
            None => (vec![], vec![reply["status"].to_string()]),
        });
    }
    let reply: Value = http
        .post(format!("http://{node}/goscheduler/schedules/batch"))
        .json(&json!({ "schedules": chunk }))
        .send()
        .await?
        .json()
        .await?;
    let mut out = (vec![], vec![]);
    for item in reply["data"]["results"].as_array().into_iter().flatten() {
        match item["schedule"]["scheduleId"].as_str() {
            Some(id) => out.0.push(id.to_string()),
            None => out.1.push(item.to_string()),
        }
    }
    if out.0.is_empty() && out.1.is_empty() {
        out.1.push(reply["status"].to_string());
    }
    Ok(out)
}

fn summarise(
    fired: bool,
    created: &[String],
    create_errors: usize,
    create_secs: f64,
    latencies: &[f64],
    deliveries: &[Delivery],
) -> Report {
    let mut first: HashMap<&str, &Delivery> = HashMap::new();
    let mut duplicates = 0;
    let mut key_mismatches = 0;
    for d in deliveries {
        match first.get(d.schedule_id.as_str()) {
            Some(f) => {
                duplicates += 1;
                if f.idempotency_key != d.idempotency_key {
                    key_mismatches += 1;
                }
            }
            None => {
                first.insert(&d.schedule_id, d);
            }
        }
    }
    let missing = created
        .iter()
        .filter(|id| !first.contains_key(id.as_str()))
        .count();
    let mut lateness: Vec<f64> = first
        .values()
        .map(|d| d.received_ms as f64 - (d.schedule_time * 1000) as f64)
        .collect();
    lateness.sort_by(f64::total_cmp);
    // From the first run's second to the last first delivery.
    let last_arrival = first.values().map(|d| d.received_ms).max();
    let first_due = first.values().map(|d| d.schedule_time).min();
    let fire_secs = match (last_arrival, first_due) {
        (Some(last), Some(due)) => last.saturating_sub(due.max(0) as u64 * 1000) as f64 / 1000.0,
        _ => 0.0,
    };
    Report {
        fired,
        created: created.len(),
        create_errors,
        create_secs,
        create_p50_ms: quantile(latencies, 0.5),
        create_p99_ms: quantile(latencies, 0.99),
        delivered_runs: first.len(),
        deliveries: deliveries.len(),
        fire_secs,
        lateness_p50_ms: quantile(&lateness, 0.5),
        lateness_p99_ms: quantile(&lateness, 0.99),
        lateness_max_ms: lateness.last().copied().unwrap_or(0.0),
        missing,
        duplicates,
        key_mismatches,
        updates: None,
    }
}
