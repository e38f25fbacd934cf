//! The HTTP client all callbacks of a node share: hyper's pooled client (HTTP/1.1, and
//! HTTP/2 where a TLS server offers it), rustls with the platform's trust store, host names
//! resolved through the SSRF guard. Used directly rather than through reqwest: in a burst
//! of 10,000 calls reqwest's layers (two more URL parses per call, its redirect and retry
//! services, a header map merge) were a sixth of the nodes' callback CPU.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls_platform_verifier::BuilderVerifierExt;

use super::guard::{Guard, GuardedResolver};

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

type Connector = HttpsConnector<HttpConnector<GuardedResolver>>;

/// The node's callback client and whether it follows redirects (each target checked by the
/// guard; see `http::send`).
pub struct Client {
    pub(super) hyper: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    pub follow_redirects: bool,
}

impl Client {
    pub fn new(guard: Arc<Guard>, follow_redirects: bool) -> Client {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver(guard));
        http.set_nodelay(true);
        // https URLs go through the TLS layer wrapped around it.
        http.enforce_http(false);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_platform_verifier())
            .expect("a TLS client configuration with the platform's trust store")
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .build(connector);
        Client {
            hyper,
            follow_redirects,
        }
    }
}
