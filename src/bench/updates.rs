//! The update part of the bench (`--updates N`): makes a few crons, then changes them in
//! place (`PATCH /goscheduler/schedules/{id}`, a new payload each time) at a fixed rate
//! through every gateway, open loop (a slow answer does not slow the sending), and
//! reports the latency of the answers.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::quantile;

/// Crons the updates go round.
const CRONS: usize = 100;

/// What the update bench measured.
#[derive(Debug, Clone)]
pub struct UpdateReport {
    pub sent: usize,
    pub failed: usize,
    pub rate: f64,
    pub secs: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl std::fmt::Display for UpdateReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "updates:   {} sent at {:.0}/s over {:.1} s, {} failed; latency p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.sent, self.rate, self.secs, self.failed, self.p50_ms, self.p99_ms, self.max_ms
        )
    }
}

/// Sends `count` updates at `rate` per second to crons of `app` made for it.
pub async fn run(
    http: &reqwest::Client,
    nodes: &[String],
    app: &str,
    count: usize,
    rate: f64,
) -> anyhow::Result<UpdateReport> {
    let mut crons = Vec::with_capacity(CRONS);
    for i in 0..CRONS {
        let body = json!({"appId": app, "payload": "v0", "cronExpression": "0 0 1 1 *",
            "callback": {"type": "http", "details": {"url": "http://127.0.0.1:9/never", "method": "POST"}}});
        let node = &nodes[i % nodes.len()];
        let reply: Value = http
            .post(format!("http://{node}/goscheduler/schedules"))
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let id = reply["data"]["schedule"]["scheduleId"].as_str();
        crons.push(
            id.ok_or_else(|| anyhow::anyhow!("creating a cron: {reply}"))?
                .to_string(),
        );
    }
    let gap = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let started = Instant::now();
    let mut sends = Vec::with_capacity(count);
    for n in 0..count {
        tokio::time::sleep_until((started + gap * n as u32).into()).await;
        let (http, node) = (http.clone(), nodes[n % nodes.len()].clone());
        let url = format!("http://{node}/goscheduler/schedules/{}", crons[n % CRONS]);
        sends.push(tokio::spawn(async move {
            let t = Instant::now();
            let reply = http
                .patch(url)
                .json(&json!({"payload": format!("v{n}")}))
                .send()
                .await;
            let ok = matches!(&reply, Ok(r) if r.status() == 200);
            (ok, t.elapsed().as_secs_f64() * 1000.0)
        }));
    }
    let mut latencies = Vec::with_capacity(count);
    let mut failed = 0;
    for s in sends {
        let (ok, ms) = s.await?;
        failed += usize::from(!ok);
        latencies.push(ms);
    }
    let secs = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok(UpdateReport {
        sent: count,
        failed,
        rate,
        secs,
        p50_ms: quantile(&latencies, 0.5),
        p99_ms: quantile(&latencies, 0.99),
        max_ms: latencies.last().copied().unwrap_or(0.0),
    })
}
