//! The HTTP client all callbacks of a node share: hyper's pooled client (HTTP/1.1, and
//! HTTP/2 where a TLS server offers it), rustls with the platform's trust store plus
//! `callbacks.ca_file`, host names resolved through the SSRF guard. Used directly rather
//! than through reqwest: in a burst of 10,000 calls reqwest's layers (two more URL parses
//! per call, its redirect and retry services, a header map merge) were a sixth of the
//! nodes' callback CPU.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::endpoint::Endpoints;
use super::guard::{Guard, GuardedResolver};
use crate::config::CallbackSettings;

/// How long an idle pooled connection is kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

type Connector = HttpsConnector<HttpConnector<GuardedResolver>>;

/// The node's callback client and whether it follows redirects (each target checked by the
/// guard; see `http::send`).
pub struct Client {
    pub(super) hyper: hyper_util::client::legacy::Client<Connector, Full<Bytes>>,
    /// The callback URLs of recent calls, parsed.
    pub(super) endpoints: Endpoints,
    pub follow_redirects: bool,
}

impl Client {
    pub fn new(guard: Arc<Guard>, settings: &CallbackSettings) -> anyhow::Result<Client> {
        let mut http = HttpConnector::new_with_resolver(GuardedResolver(guard));
        http.set_nodelay(true);
        // https URLs go through the TLS layer wrapped around it.
        http.enforce_http(false);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = verifier(settings.extra_roots()?, provider.clone());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
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
        Ok(Client {
            hyper,
            endpoints: Endpoints::default(),
            follow_redirects: settings.follow_redirects,
        })
    }
}

/// The platform's verifier (its trust store plus `extra_roots`). A machine without CA
/// certificates (a minimal container) and no `extra_roots` gets one that refuses every
/// server, saying why: its `https` callbacks fail, the node and its `http` callbacks run.
fn verifier(
    extra_roots: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
) -> Arc<dyn ServerCertVerifier> {
    match rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone()) {
        Ok(platform) => Arc::new(platform),
        Err(e) => {
            tracing::warn!("https callbacks will fail: {e}");
            Arc::new(NoTrustedRoots(provider))
        }
    }
}

const NO_ROOTS: &str = "this node trusts no CA certificate (install the system's CA \
                        certificates or set callbacks.ca_file)";

fn refuse<T>() -> Result<T, rustls::Error> {
    Err(rustls::Error::General(NO_ROOTS.into()))
}

/// Refuses every server certificate (see [`verifier`]).
#[derive(Debug)]
struct NoTrustedRoots(Arc<CryptoProvider>);

impl ServerCertVerifier for NoTrustedRoots {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        refuse()
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        refuse()
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        refuse()
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
