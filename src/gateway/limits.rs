//! What one node's gateway takes on at once: at most `max_concurrent_requests` requests in
//! flight (more are shed at once, 503 with `Retry-After`), each answered within
//! `request_timeout_ms` (503 beyond, saying a write may or may not have applied), and
//! bodies within `max_body_bytes` (413, see [`super::params::parse_body`]).

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::ServiceBuilder;

use super::envelope::ApiError;
use crate::config::Limits;

/// Seconds a client is told to wait before retrying a shed or timed-out request.
const RETRY_AFTER_SECS: &str = "1";

/// Wraps every route of `router` in the node's request limits.
pub fn guard(router: axum::Router, limits: &Limits) -> axum::Router {
    let in_flight = limits.max_concurrent_requests;
    let timeout = Duration::from_millis(limits.request_timeout_ms);
    router
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(
            ServiceBuilder::new()
                .layer(HandleErrorLayer::new(move |method: Method, e| async move {
                    refused(&method, e, in_flight, timeout)
                }))
                .load_shed()
                // One semaphore shared by every route (a plain concurrency limit is per route).
                .layer(GlobalConcurrencyLimitLayer::new(in_flight))
                .timeout(timeout),
        )
}

fn refused(method: &Method, e: tower::BoxError, in_flight: usize, timeout: Duration) -> Response {
    let message = if e.is::<tower::load_shed::error::Overloaded>() {
        format!("node overloaded: {in_flight} requests in flight (limits.max_concurrent_requests), retry later")
    } else if e.is::<tower::timeout::error::Elapsed>() {
        let maybe = if method == Method::GET {
            ""
        } else {
            "; a write may or may not have been applied"
        };
        format!("request timed out after {timeout:?} (limits.request_timeout_ms){maybe}")
    } else {
        format!("request failed: {e}")
    };
    let mut answer = ApiError::new(503, message).into_response();
    answer
        .headers_mut()
        .insert("retry-after", HeaderValue::from_static(RETRY_AFTER_SECS));
    answer
}
