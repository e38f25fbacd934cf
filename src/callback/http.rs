//! One HTTP call of a run: the schedule's method, url, headers and payload, plus the
//! headers that let a receiver recognise the run and drop repeats.

use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use reqwest::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use reqwest::{redirect, Method};

use super::guard::{Guard, GuardedResolver, Refused};
use super::signature;
use crate::meta::app::Signing;

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

/// Why a call got no answer.
enum Failed {
    Http(reqwest::Error),
    TimedOut,
    Refused(Refused),
}

/// Most redirects followed when `callbacks.follow_redirects` is on.
const MAX_REDIRECTS: usize = 5;

/// The client all callbacks of a node share (pooled connections, rustls): host names are
/// resolved through the guard, and redirects are not followed unless `follow_redirects`
/// (then each target is checked by the guard too).
pub fn client(guard: Arc<Guard>, follow_redirects: bool) -> reqwest::Client {
    let redirects = if follow_redirects {
        let guard = guard.clone();
        redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= MAX_REDIRECTS {
                return attempt.error(Refused(format!("more than {MAX_REDIRECTS} redirects")));
            }
            match guard.check_url(attempt.url().as_str()) {
                Ok(()) => attempt.follow(),
                Err(refused) => attempt.error(refused),
            }
        })
    } else {
        redirect::Policy::none()
    };
    reqwest::Client::builder()
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .user_agent(concat!("goscheduler/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(GuardedResolver(guard)))
        // A proxy from the environment would resolve and connect in the guard's stead.
        .no_proxy()
        .redirect(redirects)
        .build()
        .expect("callback HTTP client")
}

/// How a node calls back: its shared client, its guard, and the app's signing secrets.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub client: &'a reqwest::Client,
    pub guard: &'a Guard,
    pub signing: Option<&'a Signing>,
}

/// Calls back for `run`; any 2xx answer is success. A URL the guard refuses is not called.
pub async fn call(to: Target<'_>, run: &Schedule, attempt: u32, timeout: Duration) -> Attempt {
    let fired_at = now_ms();
    let started = Instant::now();
    // Parsed once: the guard's check and the request share it.
    let checked = match super::guard::parse(&run.callback.url) {
        Ok(url) => to.guard.check_call(&url).await.map(|()| url),
        Err(refused) => Err(refused),
    };
    let result = match checked {
        Ok(url) => within(timeout, send(to, run, url, attempt)).await,
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

/// Runs `call` for at most `timeout` of this process's running time. reqwest's own timeout
/// is not used: it checks its clock before the answer, so after a pause longer than the
/// timeout it reports a timeout even for an answer that arrived meanwhile, and the run is
/// sent again. Here the answer wins whenever it is there: a call that timed out is given
/// [`GRACE`] (after a pause, [`AFTER_PAUSE`]) for an answer already on its way.
async fn within<T>(
    timeout: Duration,
    call: impl std::future::Future<Output = reqwest::Result<T>>,
) -> Result<T, Failed> {
    let started = Instant::now();
    tokio::pin!(call);
    let answer = match tokio::time::timeout(timeout, &mut call).await {
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
    };
    answer.map_err(Failed::Http)
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

async fn send(
    to: Target<'_>,
    run: &Schedule,
    url: reqwest::Url,
    attempt: u32,
) -> reqwest::Result<reqwest::StatusCode> {
    let cb = &run.callback;
    let names = &*NAMES;
    let method = Method::from_bytes(cb.method.as_bytes()).unwrap_or(Method::POST);
    let mut req = to.client.request(method, url);
    // A schedule stored before a header became reserved may still carry it: ours win.
    for (name, value) in cb.headers.iter().filter(|(n, _)| !headers::is_reserved(n)) {
        req = req.header(name, value);
    }
    if !cb
        .headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("content-type"))
    {
        req = req.header(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    let id = run.id.to_string();
    let id_value = HeaderValue::from_str(&id).expect("a uuid is a valid header value");
    req = req
        .header(names.schedule_id.clone(), id_value.clone())
        .header(names.idempotency_key.clone(), id_value.clone())
        .header(names.attempt.clone(), HeaderValue::from(attempt))
        .header(
            names.schedule_time.clone(),
            HeaderValue::from(run.schedule_time),
        );
    if let Some(parent) = run.parent {
        req = req.header(names.parent_schedule_id.clone(), parent.to_string());
    }
    if let Some(signing) = to.signing {
        let now = now_ms();
        let timestamp = (now / 1000) as i64;
        let signatures = signature::header(signing, now, &id, timestamp, run.payload.as_bytes());
        req = req
            .header(names.webhook_id.clone(), id_value)
            .header(
                names.webhook_timestamp.clone(),
                HeaderValue::from(timestamp),
            )
            .header(names.webhook_signature.clone(), signatures);
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

/// A transport error, coarsely: the guard's refusal as it said, otherwise only what kind of
/// failure it was — never the OS's error chain, which would tell a caller what lives at an
/// address (a port scanner's answer).
fn describe(e: &reqwest::Error) -> String {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(refused) = s.downcast_ref::<Refused>() {
            return refused.to_string();
        }
        source = s.source();
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "redirect refused"
    } else if e.is_body() || e.is_decode() {
        "the answer could not be read"
    } else {
        "the request failed"
    };
    what.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

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

    /// A receiver that answers one call 200 and hands over the request's head as received.
    fn recording_receiver() -> (String, std::sync::mpsc::Receiver<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut buf = [0u8; 4096];
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "the call ended before its head");
                head.extend_from_slice(&buf[..n]);
            }
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
            tx.send(String::from_utf8_lossy(&head).to_lowercase())
                .unwrap();
        });
        (format!("http://{addr}/cb"), rx)
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
        let signing = Signing {
            secret: Signing::new_secret(),
            previous: None,
            previous_until_ms: 0,
        };
        let to = Target {
            client: &client,
            guard: &guard,
            signing: Some(&signing),
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
                    signing: None,
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
