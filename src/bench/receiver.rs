//! A callback receiver that records every delivery: the bench tool's endpoint (and the
//! integration tests'). `POST|GET|PUT… /ok/...` answers 200; `/fail-first/{n}/...`
//! answers 500 to the first `n` calls of each run, then 200; `/slow/{ms}/...` answers 200
//! after `ms` milliseconds (the delivery is recorded on arrival).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::routing::any;

use crate::schedule::headers::{
    ATTEMPT, IDEMPOTENCY_KEY, PARENT_SCHEDULE_ID, SCHEDULE_ID, SCHEDULE_TIME,
};
use crate::schedule::time::now_ms;

/// One call received.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub idempotency_key: String,
    pub schedule_id: String,
    pub parent_schedule_id: Option<String>,
    pub attempt: u32,
    pub schedule_time: i64,
    pub received_ms: u64,
    pub method: String,
    pub path: String,
    pub headers: HeaderMap,
    pub body: String,
    /// What the receiver answered.
    pub answered: u16,
}

#[derive(Default)]
struct Log {
    deliveries: Vec<Delivery>,
    calls_per_key: HashMap<String, u32>,
}

type Shared = Arc<Mutex<Log>>;

pub struct Receiver {
    pub addr: SocketAddr,
    log: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on `bind` (e.g. `127.0.0.1:0`).
    pub async fn start(bind: &str) -> std::io::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let log = Shared::default();
        let app = axum::Router::new()
            .route("/fail-first/{n}/{*rest}", any(fail_first))
            .route("/slow/{ms}/{*rest}", any(slow))
            .fallback(any(ok))
            .with_state(log.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Receiver { addr, log, task })
    }

    /// `http://addr{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.log.lock().unwrap().deliveries.clone()
    }

    /// Forgets every delivery so far.
    pub fn clear(&self) {
        *self.log.lock().unwrap() = Log::default();
    }

    pub fn count(&self) -> usize {
        self.log.lock().unwrap().deliveries.len()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A copy of `h` that owns its bytes. The received map's values point into the
/// connection's read buffer: keeping them would keep a whole buffer (8 KiB or more) alive
/// per delivery, and every request would be read into fresh memory — a quarter of the
/// receiver's CPU in a 10,000-call burst went to the kernel zeroing those new pages.
fn owned(h: &HeaderMap) -> HeaderMap {
    h.iter()
        .filter_map(|(name, value)| {
            // A received name is already its own copy (hyper copies unknown names).
            Some((
                name.clone(),
                HeaderValue::from_bytes(value.as_bytes()).ok()?,
            ))
        })
        .collect()
}

/// One incoming call, as the handlers extract it.
struct Call {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

/// Records the call and answers what `answer` says, given how many calls of its run
/// came before it.
fn record(log: &Shared, call: Call, answer: impl FnOnce(u32) -> u16) -> StatusCode {
    let h = &call.headers;
    let key = header(h, IDEMPOTENCY_KEY).unwrap_or_default();
    let mut log = log.lock().unwrap();
    let seen = log.calls_per_key.entry(key.clone()).or_default();
    let answered = answer(*seen);
    *seen += 1;
    log.deliveries.push(Delivery {
        idempotency_key: key,
        schedule_id: header(h, SCHEDULE_ID).unwrap_or_default(),
        parent_schedule_id: header(h, PARENT_SCHEDULE_ID),
        attempt: header(h, ATTEMPT).and_then(|a| a.parse().ok()).unwrap_or(0),
        schedule_time: header(h, SCHEDULE_TIME)
            .and_then(|a| a.parse().ok())
            .unwrap_or(0),
        received_ms: now_ms(),
        method: call.method.to_string(),
        path: call.uri.path().to_string(),
        body: String::from_utf8_lossy(&call.body).into_owned(),
        headers: owned(&call.headers),
        answered,
    });
    StatusCode::from_u16(answered).unwrap()
}

async fn ok(
    State(log): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let call = Call {
        method,
        uri,
        headers,
        body,
    };
    record(&log, call, |_| 200)
}

async fn fail_first(
    State(log): State<Shared>,
    Path((n, _rest)): Path<(u32, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let call = Call {
        method,
        uri,
        headers,
        body,
    };
    record(&log, call, |seen| if seen < n { 500 } else { 200 })
}

async fn slow(
    State(log): State<Shared>,
    Path((ms, _rest)): Path<(u64, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let call = Call {
        method,
        uri,
        headers,
        body,
    };
    let status = record(&log, call, |_| 200);
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    status
}
