//! One HTTP call of a run: the schedule's method, url, headers and payload, plus the
//! headers that let a receiver recognise the run and drop repeats.

use std::time::{Duration, Instant};

use reqwest::header::CONTENT_TYPE;
use reqwest::Method;

use crate::schedule::headers::{
    ATTEMPT, IDEMPOTENCY_KEY, PARENT_SCHEDULE_ID, SCHEDULE_ID, SCHEDULE_TIME,
};
use crate::schedule::run::Attempt;
use crate::schedule::time::now_ms;
use crate::schedule::Schedule;

/// Most bytes of a receiver's answer read (and discarded).
const MAX_ANSWER_READ: usize = 64 << 10;

/// The client all callbacks of a node share (pooled connections, rustls).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .user_agent(concat!("goscheduler/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("callback HTTP client")
}

/// Calls back for `run`; any 2xx answer is success.
pub async fn call(
    client: &reqwest::Client,
    run: &Schedule,
    attempt: u32,
    timeout: Duration,
) -> Attempt {
    let fired_at = now_ms();
    let started = Instant::now();
    let result = send(client, run, attempt, timeout).await;
    let latency_ms = started.elapsed().as_millis().min(u32::MAX as u128) as u32;
    let (http_status, error) = match result {
        Ok(status) if status.is_success() => (Some(status.as_u16()), None),
        Ok(status) => (Some(status.as_u16()), Some(format!("HTTP {status}"))),
        Err(e) if e.is_timeout() => (None, Some(format!("timed out after {timeout:?}"))),
        Err(e) => (None, Some(describe(&e))),
    };
    Attempt {
        attempt,
        fired_at,
        http_status,
        latency_ms,
        error,
    }
}

async fn send(
    client: &reqwest::Client,
    run: &Schedule,
    attempt: u32,
    timeout: Duration,
) -> reqwest::Result<reqwest::StatusCode> {
    let cb = &run.callback;
    let method = Method::from_bytes(cb.method.as_bytes()).unwrap_or(Method::POST);
    let mut req = client.request(method, &cb.url).timeout(timeout);
    for (name, value) in &cb.headers {
        req = req.header(name, value);
    }
    if !cb
        .headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header(CONTENT_TYPE, "application/json");
    }
    let id = run.id.to_string();
    req = req
        .header(SCHEDULE_ID, &id)
        .header(IDEMPOTENCY_KEY, &id)
        .header(ATTEMPT, attempt)
        .header(SCHEDULE_TIME, run.schedule_time);
    if let Some(parent) = run.parent {
        req = req.header(PARENT_SCHEDULE_ID, parent.to_string());
    }
    let mut resp = req.body(run.payload.clone()).send().await?;
    let status = resp.status();
    // Read a small answer so the connection goes back to the pool; a larger one is left
    // unread (its connection is dropped) rather than held in memory.
    let mut read = 0;
    while let Ok(Some(chunk)) = resp.chunk().await {
        read += chunk.len();
        if read > MAX_ANSWER_READ {
            break;
        }
    }
    Ok(status)
}

/// A transport error with its causes (reqwest's own message hides them).
fn describe(e: &reqwest::Error) -> String {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
