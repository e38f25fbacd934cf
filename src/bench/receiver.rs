//! A callback receiver that records every delivery: the bench tool's endpoint (and the
//! integration tests'). `POST|GET|PUT… /ok/...` answers 200; `/fail-first/{n}/...`
//! answers 500 to the first `n` calls of each run, then 200; `/slow/{ms}/...` answers 200
//! after `ms` milliseconds (the delivery is recorded on arrival). Plain HTTP/1.1, or
//! `https` with a given TLS configuration (HTTP/2 or HTTP/1.1, as its ALPN settles).

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsAcceptor;

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
    pub version: http::Version,
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
    /// Keep only what the bench counts: no headers, body or path (copying every header
    /// map was a seventh of the receiver's CPU in a burst, on the cores the nodes use).
    lean: bool,
}

type Shared = Arc<Mutex<Log>>;

pub struct Receiver {
    pub addr: SocketAddr,
    scheme: &'static str,
    log: Shared,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    /// Listens on `bind` (e.g. `127.0.0.1:0`).
    pub async fn start(bind: &str) -> std::io::Result<Receiver> {
        Self::listen(bind, None).await
    }

    /// Listens on `bind` for `https` with `tls` (its certificate, key and ALPN protocols).
    pub async fn start_tls(
        bind: &str,
        tls: Arc<tokio_rustls::rustls::ServerConfig>,
    ) -> std::io::Result<Receiver> {
        Self::listen(bind, Some(TlsAcceptor::from(tls))).await
    }

    async fn listen(bind: &str, tls: Option<TlsAcceptor>) -> std::io::Result<Receiver> {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let log = Shared::default();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let task = tokio::spawn(serve(listener, tls, log.clone()));
        Ok(Receiver {
            addr,
            scheme,
            log,
            task,
        })
    }

    /// `http://addr{path}` (`https` with TLS).
    pub fn url(&self, path: &str) -> String {
        format!("{}://{}{path}", self.scheme, self.addr)
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.log.lock().unwrap().deliveries.clone()
    }

    /// Forgets every delivery so far.
    pub fn clear(&self) {
        let mut log = self.log.lock().unwrap();
        *log = Log {
            lean: log.lean,
            ..Log::default()
        };
    }

    /// From now on records only what the bench counts (key, ids, attempt, times, answer):
    /// headers, body and path stay empty; room is made for `expected` deliveries.
    pub fn keep_lean(&self, expected: usize) {
        let mut log = self.log.lock().unwrap();
        log.lean = true;
        log.deliveries.reserve(expected);
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
    version: http::Version,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
}

/// Accepts connections until aborted, each served by hyper's server (plain hyper, not a
/// router: the receiver shares the box's two cores with the nodes it measures). Aborting
/// this task ends the connections too.
async fn serve(listener: tokio::net::TcpListener, tls: Option<TlsAcceptor>, log: Shared) {
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
        let (log, tls) = (log.clone(), tls.clone());
        connections.spawn(async move {
            match tls {
                None => serve_connection(stream, false, log).await,
                Some(tls) => {
                    let Ok(stream) = tls.accept(stream).await else {
                        return;
                    };
                    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
                    serve_connection(stream, h2, log).await
                }
            }
        });
        while connections.try_join_next().is_some() {}
    }
}

/// Serves one connection's calls, over HTTP/2 if `h2` (as TLS settled), else HTTP/1.1.
async fn serve_connection<S>(stream: S, h2: bool, log: Shared)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| answer(log.clone(), req));
    let io = TokioIo::new(stream);
    let _ = if h2 {
        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await
    } else {
        hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .await
    };
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
        version: parts.version,
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
    // What the bench does not count is left empty (see `keep_lean`).
    let (path, body, headers) = if log.lean {
        (String::new(), String::new(), HeaderMap::new())
    } else {
        (
            call.uri.path().to_string(),
            String::from_utf8_lossy(&call.body).into_owned(),
            owned(&call.headers),
        )
    };
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
        version: call.version,
        path,
        body,
        headers,
        answered,
    });
    StatusCode::from_u16(answered).unwrap()
}
