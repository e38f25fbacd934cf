//! One HTTP call of a run: the schedule's method, url, headers and payload, plus the
//! headers that let a receiver recognise the run and drop repeats.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{
    HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE,
    COOKIE, LOCATION, PROXY_AUTHORIZATION, USER_AGENT,
};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};

use super::client::Client;
use super::endpoint::Endpoint;
use super::guard::{Guard, Refused};
use super::signature::Signer;

use crate::schedule::headers::{
    self, ATTEMPT, IDEMPOTENCY_KEY, PARENT_SCHEDULE_ID, SCHEDULE_ID, SCHEDULE_TIME, WEBHOOK_ID,
    WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP,
};
use crate::schedule::run::Attempt;
use crate::schedule::time::now_ms;
use crate::schedule::Schedule;

/// Most bytes of a receiver's answer read (and discarded).
const MAX_ANSWER_READ: usize = 64 << 10;
/// A call's time running out this much later than it should have means this process was
/// not running meanwhile (SIGSTOP, a frozen VM, a starved host)...
const PAUSED: Duration = Duration::from_millis(250);
/// ...so the answer may be sitting unread in the socket: it gets this long to be read
/// before the call counts as timed out (and is retried: the receiver would see it twice).
const AFTER_PAUSE: Duration = Duration::from_millis(500);
/// Any call whose time ran out gets this much more for an answer already on its way: a
/// process resumed just after a call's timeout (less than [`PAUSED`] late) wakes the timer
/// and the connection that holds the answer at once, and the timer may be served first.
const GRACE: Duration = Duration::from_millis(50);
/// Most redirects followed when `callbacks.follow_redirects` is on.
const MAX_REDIRECTS: usize = 5;
const USER_AGENT_VALUE: &str = concat!("goscheduler/", env!("CARGO_PKG_VERSION"));

/// Why a call got no answer.
enum Failed {
    Http(hyper_util::client::legacy::Error),
    TimedOut,
    Refused(Refused),
}

/// How a node calls back: its shared client, its guard, and the app's signing keys.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub client: &'a Client,
    pub guard: &'a Guard,
    pub signer: Option<&'a Signer>,
}

/// Calls back for `run`; any 2xx answer is success. A URL the guard refuses is not called.
pub async fn call(to: Target<'_>, run: &Schedule, attempt: u32, timeout: Duration) -> Attempt {
    let fired_at = now_ms();
    let started = Instant::now();
    // Parsed once (and cached by the client): the guard's check and the request share it.
    let checked = match to.client.endpoints.get(&run.callback.url) {
        Ok(endpoint) => to.guard.check_call(&endpoint.url).await.map(|()| endpoint),
        Err(refused) => Err(refused),
    };
    let result = match checked {
        Ok(endpoint) => within(timeout, send(to, run, endpoint, attempt)).await,
        Err(refused) => Err(Failed::Refused(refused)),
    };
    let latency_ms = started.elapsed().as_millis().min(u32::MAX as u128) as u32;
    let (http_status, error) = match result {
        Ok(status) if status.is_success() => (Some(status.as_u16()), None),
        Ok(status) => (Some(status.as_u16()), Some(format!("HTTP {status}"))),
        Err(Failed::TimedOut) => (None, Some(format!("timed out after {timeout:?}"))),
        Err(Failed::Http(e)) => (None, Some(describe(&e))),
        Err(Failed::Refused(refused)) => (None, Some(refused.to_string())),
    };
    Attempt {
        attempt,
        fired_at,
        http_status,
        latency_ms,
        error,
    }
}

/// Runs `call` for at most `timeout` of this process's running time. Not a plain timeout
/// (as reqwest's was): that checks its clock before the answer, so after a pause longer
/// than the timeout it reports a timeout even for an answer that arrived meanwhile, and the
/// run is sent again. Here the answer wins whenever it is there: a call that timed out is given
/// [`GRACE`] (after a pause, [`AFTER_PAUSE`]) for an answer already on its way.
async fn within<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = Result<T, Failed>>,
) -> Result<T, Failed> {
    let started = Instant::now();
    tokio::pin!(call);
    match tokio::time::timeout(timeout, &mut call).await {
        Ok(answer) => answer,
        Err(_) => {
            let grace = if started.elapsed() > timeout + PAUSED {
                AFTER_PAUSE
            } else {
                GRACE
            };
            tokio::time::timeout(grace, &mut call)
                .await
                .map_err(|_| Failed::TimedOut)?
        }
    }
}

/// The names of the headers every call carries, checked once (not at each call).
struct Names {
    schedule_id: HeaderName,
    idempotency_key: HeaderName,
    attempt: HeaderName,
    schedule_time: HeaderName,
    parent_schedule_id: HeaderName,
    webhook_id: HeaderName,
    webhook_timestamp: HeaderName,
    webhook_signature: HeaderName,
}

static NAMES: LazyLock<Names> = LazyLock::new(|| {
    let name = |n: &str| HeaderName::from_bytes(n.as_bytes()).expect("a valid header name");
    Names {
        schedule_id: name(SCHEDULE_ID),
        idempotency_key: name(IDEMPOTENCY_KEY),
        attempt: name(ATTEMPT),
        schedule_time: name(SCHEDULE_TIME),
        parent_schedule_id: name(PARENT_SCHEDULE_ID),
        webhook_id: name(WEBHOOK_ID),
        webhook_timestamp: name(WEBHOOK_TIMESTAMP),
        webhook_signature: name(WEBHOOK_SIGNATURE),
    }
});

/// The request's headers: the schedule's own (but none the scheduler sets: a schedule
/// stored before a header became reserved may still carry it), then the run's.
fn request_headers(to: Target<'_>, run: &Schedule, attempt: u32) -> HeaderMap {
    let names = &*NAMES;
    let own = &run.callback.headers;
    let mut map = HeaderMap::with_capacity(own.len() + 10);
    for (name, value) in own.iter().filter(|(n, _)| !headers::is_reserved(n)) {
        // Checked at create; one that is not valid HTTP is left out, not sent broken.
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            map.append(name, value);
        }
    }
    for (name, default) in [
        (CONTENT_TYPE, "application/json"),
        (ACCEPT, "*/*"),
        (USER_AGENT, USER_AGENT_VALUE),
    ] {
        map.entry(name)
            .or_insert_with(|| HeaderValue::from_static(default));
    }
    let id = run.id.to_string();
    let id_value = HeaderValue::from_str(&id).expect("a uuid is a valid header value");
    map.insert(names.schedule_id.clone(), id_value.clone());
    map.insert(names.idempotency_key.clone(), id_value.clone());
    map.insert(names.attempt.clone(), HeaderValue::from(attempt));
    map.insert(
        names.schedule_time.clone(),
        HeaderValue::from(run.schedule_time),
    );
    if let Some(parent) = run.parent {
        let parent = HeaderValue::from_str(&parent.to_string()).expect("a uuid is a valid value");
        map.insert(names.parent_schedule_id.clone(), parent);
    }
    if let Some(signer) = to.signer {
        let now = now_ms();
        let timestamp = (now / 1000) as i64;
        let signatures = signer.header(now, &id, timestamp, run.payload.as_bytes());
        if let Ok(signatures) = HeaderValue::from_str(&signatures) {
            map.insert(names.webhook_signature.clone(), signatures);
        }
        map.insert(names.webhook_id.clone(), id_value);
        map.insert(
            names.webhook_timestamp.clone(),
            HeaderValue::from(timestamp),
        );
    }
    map
}

async fn send(
    to: Target<'_>,
    run: &Schedule,
    mut endpoint: Arc<Endpoint>,
    attempt: u32,
) -> Result<StatusCode, Failed> {
    let mut method = Method::from_bytes(run.callback.method.as_bytes()).unwrap_or(Method::POST);
    let mut headers = request_headers(to, run, attempt);
    let mut body = Bytes::from(run.payload.clone());
    for redirects in 0.. {
        if let Some(basic) = &endpoint.basic {
            headers
                .entry(AUTHORIZATION)
                .or_insert_with(|| basic.clone());
        }
        let url = &endpoint.url;
        // Kept for a redirect only when redirects are followed.
        let again = to
            .client
            .follow_redirects
            .then(|| (headers.clone(), body.clone()));
        let mut req = Request::new(Full::new(body));
        *req.method_mut() = method.clone();
        *req.uri_mut() = endpoint.uri.clone();
        *req.headers_mut() = headers;
        let resp = to.client.hyper.request(req).await.map_err(Failed::Http)?;
        let status = resp.status();
        // Only a redirect's `Location` is read (a 201 may carry one too).
        let redirect = matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308);
        let next = again.filter(|_| redirect).and_then(|kept| {
            let location = resp.headers().get(LOCATION)?.to_str().ok()?;
            Some((Endpoint::of(url.join(location).ok()?), kept))
        });
        read_answer(resp.into_body()).await;
        let Some((next, (kept_headers, kept_body))) = next else {
            return Ok(status);
        };
        if redirects >= MAX_REDIRECTS {
            return Err(Failed::Refused(Refused(format!(
                "more than {MAX_REDIRECTS} redirects"
            ))));
        }
        let next = next.map_err(Failed::Refused)?;
        to.guard
            .check_call(&next.url)
            .await
            .map_err(Failed::Refused)?;
        (headers, body) = (kept_headers, kept_body);
        // As browsers do: a 303 (and a 301 or 302 after a POST) is followed by a GET
        // without the body.
        let to_get = match status.as_u16() {
            303 => method != Method::HEAD,
            301 | 302 => method == Method::POST,
            _ => false,
        };
        if to_get {
            method = Method::GET;
            body = Bytes::new();
            headers.remove(CONTENT_TYPE);
            headers.remove(CONTENT_LENGTH);
        }
        // Credentials meant for one origin are not handed to another.
        if next.url.origin() != url.origin() {
            for name in [AUTHORIZATION, COOKIE, PROXY_AUTHORIZATION] {
                headers.remove(name);
            }
        }
        endpoint = Arc::new(next);
    }
    unreachable!("the loop returns")
}

/// Reads a small answer so the connection goes back to the pool; a larger one is left
/// unread (its connection is dropped) rather than held in memory.
async fn read_answer(mut body: hyper::body::Incoming) {
    let mut read = 0;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, Bytes::len);
        if read > MAX_ANSWER_READ {
            break;
        }
    }
}

/// A transport error, coarsely: the guard's refusal as it said, what is wrong with the
/// receiver's TLS certificate, otherwise only what kind of failure it was — never the OS's
/// error chain, which would tell a caller what lives at an address (a port scanner's answer).
fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<Refused>() {
            return refused.to_string();
        }
        // The receiver's certificate is the user's to fix: say what is wrong with it
        // (untrusted issuer, another host's name, expired).
        if let Some(tls) = tls_failure(s) {
            return format!("could not connect: TLS: {tls}");
        }
        source = s.source();
    }
    let what = if e.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    what.to_string()
}

/// The TLS error `e` is or carries (rustls reports through an `io::Error`, hyper-rustls
/// wraps that in another, and an `io::Error`'s `source` skips the error it wraps).
fn tls_failure<'e>(mut e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    loop {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        e = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::sync::Arc;

    /// A receiver on its own thread that answers 200 after 200 ms, whatever this process does.
    fn answering_receiver() -> String {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut buf = [0u8; 4096];
                let _ = conn.read(&mut buf);
                std::thread::sleep(Duration::from_millis(200));
                let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            }
        });
        format!("http://{addr}/cb")
    }

    /// A one-time run calling `url` with the schedule's own `headers`.
    fn run_calling(url: String, headers: std::collections::BTreeMap<String, String>) -> Schedule {
        Schedule {
            id: uuid::Uuid::nil(),
            app_id: "a".into(),
            partition: 0,
            payload: "{}".into(),
            schedule_time: 0,
            cron: None,
            parent: None,
            runs_until: None,
            due_at: None,
            callback: crate::schedule::HttpCallback {
                url,
                method: "POST".into(),
                headers,
            },
            status: crate::schedule::Status::Scheduled,
            error_message: None,
            created_at_ms: 0,
            claim: None,
            attempts: vec![],
        }
    }

    /// A receiver that answers calls with `answers` in order (each on its own connection)
    /// and hands over each request's head and body as received.
    fn scripted_receiver(answers: Vec<String>) -> (String, std::sync::mpsc::Receiver<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for answer in answers {
                let (mut conn, _) = listener.accept().unwrap();
                let mut got = Vec::new();
                let mut buf = [0u8; 4096];
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = conn.read(&mut buf).unwrap();
                    assert!(n > 0, "the call ended before its head");
                    got.extend_from_slice(&buf[..n]);
                }
                let text = String::from_utf8_lossy(&got).to_lowercase();
                let length = text
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length: "))
                    .map_or(0, |n| n.trim().parse::<usize>().unwrap());
                let head = text.find("\r\n\r\n").unwrap() + 4;
                while got.len() < head + length {
                    let n = conn.read(&mut buf).unwrap();
                    assert!(n > 0, "the call ended before its body");
                    got.extend_from_slice(&buf[..n]);
                }
                let _ = conn.write_all(answer.as_bytes());
                // The test may not look at every head.
                let _ = tx.send(String::from_utf8_lossy(&got).to_lowercase());
            }
        });
        (format!("http://{addr}/cb"), rx)
    }

    /// An answer with `status` and the extra header lines `more`, closing its connection.
    fn answer(status: &str, more: &str) -> String {
        format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n{more}\r\n")
    }

    /// A receiver that answers one call 200 and hands over the request's head as received.
    fn recording_receiver() -> (String, std::sync::mpsc::Receiver<String>) {
        scripted_receiver(vec![answer("200 OK", "")])
    }

    /// Calls `run` once through a client that follows redirects or not, unsigned.
    fn client(guard: Arc<Guard>, follow_redirects: bool) -> Client {
        let settings = crate::config::CallbackSettings {
            follow_redirects,
            ..Default::default()
        };
        Client::new(guard, &settings).unwrap()
    }

    async fn call_once(run: &Schedule, follow_redirects: bool) -> Attempt {
        let guard = Guard::allowing_all();
        let client = client(Arc::new(Guard::allowing_all()), follow_redirects);
        let to = Target {
            client: &client,
            guard: &guard,
            signer: None,
        };
        call(to, run, 1, Duration::from_secs(5)).await
    }

    #[tokio::test]
    async fn credentials_in_the_url_become_basic_authorization() {
        let (url, head) = recording_receiver();
        let url = url.replace("http://", "http://us%40er:p%3Ass@") + "?q=1#fragment";
        let attempt = call_once(&run_calling(url, Default::default()), false).await;
        assert_eq!(attempt.http_status, Some(200), "{:?}", attempt.error);
        let head = head.recv().unwrap();
        // base64("us@er:p:ss")
        assert!(
            head.contains("authorization: basic dxnazxi6cdpzcw==\r\n"),
            "{head}"
        );
        assert!(head.starts_with("post /cb?q=1 http/1.1\r\n"), "{head}");
        assert!(
            !head.contains("us%40er") && !head.contains("fragment"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn redirects_are_followed_only_when_configured_as_a_browser_would() {
        let post = |url: String| {
            let mut run = run_calling(url, [("Authorization".into(), "Bearer s".into())].into());
            run.payload = r#"{"k":1}"#.into();
            run
        };
        // Off: the 307 is the answer (not a success).
        let (url, heads) =
            scripted_receiver(vec![answer("307 Temporary Redirect", "location: /b\r\n")]);
        let attempt = call_once(&post(url), false).await;
        assert_eq!(attempt.http_status, Some(307));
        assert_eq!(heads.iter().count(), 1);

        // On: a 307 keeps the method and body, a 303 then turns it into a GET without one;
        // same origin, so the credentials stay.
        let (url, heads) = scripted_receiver(vec![
            answer("307 Temporary Redirect", "location: /b\r\n"),
            answer("303 See Other", "location: /c\r\n"),
            answer("200 OK", ""),
        ]);
        let attempt = call_once(&post(url), true).await;
        assert_eq!(attempt.http_status, Some(200), "{:?}", attempt.error);
        let seen: Vec<String> = heads.iter().collect();
        assert!(
            seen[0].starts_with("post /cb ") && seen[0].ends_with(r#"{"k":1}"#),
            "{seen:?}"
        );
        assert!(
            seen[1].starts_with("post /b ") && seen[1].ends_with(r#"{"k":1}"#),
            "{seen:?}"
        );
        assert!(
            seen[2].starts_with("get /c ") && seen[2].ends_with("\r\n\r\n"),
            "{seen:?}"
        );
        assert!(
            seen.iter().all(|h| h.contains("authorization: bearer s")),
            "{seen:?}"
        );

        // To another origin: the credentials are not handed over.
        let (other, other_heads) = scripted_receiver(vec![answer("200 OK", "")]);
        let (url, _) =
            scripted_receiver(vec![answer("302 Found", &format!("location: {other}\r\n"))]);
        let attempt = call_once(&post(url), true).await;
        assert_eq!(attempt.http_status, Some(200), "{:?}", attempt.error);
        let moved = other_heads.recv().unwrap();
        assert!(
            moved.starts_with("get /cb ") && !moved.contains("authorization"),
            "{moved}"
        );

        // A chain longer than five ends the call, naming why.
        let (url, _) = scripted_receiver(vec![
            answer("307 Temporary Redirect", "location: /a\r\n");
            6
        ]);
        let attempt = call_once(&post(url), true).await;
        assert_eq!(attempt.http_status, None);
        let why = attempt.error.unwrap();
        assert!(why.contains("more than 5 redirects"), "{why}");
    }

    #[tokio::test]
    async fn a_stored_schedule_with_reserved_headers_cannot_override_the_schedulers() {
        // Stored before these names were reserved: the call carries ours only.
        let (url, head) = recording_receiver();
        let own = [
            ("Idempotency-Key", "mine"),
            ("Webhook-Signature", "v1,forged"),
            ("X-Team", "kept"),
        ];
        let run = run_calling(
            url,
            own.iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        );
        let guard = Guard::allowing_all();
        let client = client(Arc::new(Guard::allowing_all()), false);
        let signer = Signer::new(&crate::meta::app::Signing {
            secret: crate::meta::app::Signing::new_secret(),
            previous: None,
            previous_until_ms: 0,
        });
        let to = Target {
            client: &client,
            guard: &guard,
            signer: Some(&signer),
        };
        let attempt = call(to, &run, 1, Duration::from_secs(5)).await;
        assert_eq!(attempt.http_status, Some(200), "{:?}", attempt.error);
        let head = head.recv().unwrap();
        assert!(head.contains("x-team: kept\r\n"), "{head}");
        assert!(!head.contains("mine") && !head.contains("forged"), "{head}");
        assert_eq!(head.matches("idempotency-key: ").count(), 1, "{head}");
        assert_eq!(head.matches("webhook-signature: v1,").count(), 1, "{head}");
    }

    #[test]
    fn an_answer_that_came_while_the_node_was_paused_is_not_a_timeout() {
        let run = run_calling(answering_receiver(), Default::default());
        // One thread runs everything, so blocking it freezes the node's side of the call
        // (its connection task too), as SIGSTOP would.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let attempt = rt.block_on(async {
            let guard = Arc::new(Guard::allowing_all());
            let client = client(guard.clone(), false);
            let call = tokio::spawn(async move {
                let to = Target {
                    client: &client,
                    guard: &guard,
                    signer: None,
                };
                call(to, &run, 1, Duration::from_millis(300)).await
            });
            // Let the request go out, then freeze past the timeout (300 ms) while it is
            // answered (at 200 ms).
            tokio::time::sleep(Duration::from_millis(50)).await;
            std::thread::sleep(Duration::from_millis(1000));
            call.await.unwrap()
        });
        assert_eq!(attempt.http_status, Some(200), "{:?}", attempt.error);
        assert!(attempt.latency_ms >= 1000);
    }
}
