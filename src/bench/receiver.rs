//! A callback receiver that records every delivery: the bench tool's endpoint (and the
//! integration tests'). `POST|GET|PUT… /ok/...` answers 200; `/fail-first/{n}/...`
//! answers 500 to the first `n` calls of each run, then 200; `/slow/{ms}/...` answers 200
//! after `ms` milliseconds (the delivery is recorded on arrival).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;

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
        let task = tokio::spawn(serve(listener, log.clone()));
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

/// One incoming call.
struct Call {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

/// Accepts connections until aborted, each served by hyper's HTTP/1 server (plain hyper,
/// not a router: the receiver shares the box's two cores with the nodes it measures).
/// Aborting this task ends the connections too.
async fn serve(listener: tokio::net::TcpListener, log: Shared) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors, say: try again shortly rather than spin.
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let log = log.clone();
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| answer(log.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
        while connections.try_join_next().is_some() {}
    }
}

/// What a path asks the receiver to do.
#[derive(Clone, Copy)]
enum Route {
    Ok,
    /// `/fail-first/{n}/...`
    FailFirst(u32),
    /// `/slow/{ms}/...`
    Slow(u64),
}

impl Route {
    fn of(path: &str) -> Route {
        let mut parts = path.trim_start_matches('/').splitn(3, '/');
        let (what, number, rest) = (parts.next(), parts.next(), parts.next());
        match (what, number, rest) {
            (Some("fail-first"), Some(n), Some(_)) => n.parse().map_or(Route::Ok, Route::FailFirst),
            (Some("slow"), Some(ms), Some(_)) => ms.parse().map_or(Route::Ok, Route::Slow),
            _ => Route::Ok,
        }
    }

    /// The status to answer after `seen` earlier calls of the run.
    fn status(self, seen: u32) -> u16 {
        match self {
            Route::FailFirst(n) if seen < n => 500,
            _ => 200,
        }
    }
}

async fn answer(log: Shared, req: Request<Incoming>) -> Result<Response<Empty<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let route = Route::of(parts.uri.path());
    let call = Call {
        method: parts.method,
        uri: parts.uri,
        headers: parts.headers,
        body,
    };
    let status = record(&log, call, |seen| route.status(seen));
    if let Route::Slow(ms) = route {
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let mut response = Response::new(Empty::new());
    *response.status_mut() = status;
    Ok(response)
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
