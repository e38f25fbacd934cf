//! The REST gateway every node serves: the original GoScheduler API under `/goscheduler`.
//! Handlers parse and validate, then hand typed commands and queries to the [`Router`],
//! which runs them on the owning group's leader.

pub mod access;
pub mod app_schedules;
pub mod apps;
pub mod audit;
pub mod bulk_actions;
pub mod crons;
pub mod envelope;
pub mod field_case;
pub mod health;
pub mod limits;
pub mod lookup;
pub mod openapi;
pub mod params;
pub mod pause;
pub mod runs;
pub mod schedules;
pub mod tokens;
pub mod update;
pub mod views;

use crate::auth::AdminToken;
use crate::callback::guard::Guard;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::config::Config;
use crate::router::Router;
use crate::skew::SkewGuard;
use crate::storage::Storage;
use envelope::ApiError;

/// What every handler can reach: a handle (axum clones the state for every request and
/// middleware, so one clone is one reference count).
#[derive(Clone)]
pub struct Gateway(Arc<GatewayParts>);

impl std::ops::Deref for Gateway {
    type Target = GatewayParts;

    fn deref(&self) -> &GatewayParts {
        &self.0
    }
}

pub struct GatewayParts {
    pub router: Router,
    pub config: Arc<Config>,
    /// The zone query times are read in (`time_zone`, checked at start).
    pub zone: chrono_tz::Tz,
    /// Whether this node's clock is trusted (for the healthcheck).
    pub skew: Arc<SkewGuard>,
    /// Whether this node can write (for the healthcheck and writes).
    pub storage: Storage,
    /// Where callbacks may go: a create naming a refused address is a 400.
    pub guard: Arc<Guard>,
    /// The bearer token every request but the healthcheck, metrics and the OpenAPI
    /// document needs (none configured: open).
    pub token: AdminToken,
}

impl Gateway {
    pub fn new(
        router: Router,
        config: Arc<Config>,
        skew: Arc<SkewGuard>,
        storage: Storage,
        guard: Arc<Guard>,
        token: AdminToken,
    ) -> anyhow::Result<Self> {
        let zone = config.zone()?;
        Ok(Gateway(Arc::new(GatewayParts {
            token,
            router,
            config,
            zone,
            skew,
            storage,
            guard,
        })))
    }
}

pub fn routes(gw: Gateway) -> axum::Router {
    let limits = gw.config.limits.clone();
    let routes = axum::Router::new()
        .route("/goscheduler/healthcheck", get(health::healthcheck))
        .route("/goscheduler/openapi.json", get(openapi::document))
        .route("/metrics", get(metrics))
        .route("/goscheduler/apps", post(apps::register).get(apps::list))
        .route("/goscheduler/apps/{app_id}/activate", post(apps::activate))
        .route(
            "/goscheduler/apps/{app_id}/signing-secret",
            get(apps::signing_secret),
        )
        .route(
            "/goscheduler/apps/{app_id}/signing-secret/rotate",
            post(apps::rotate_signing_secret),
        )
        .route(
            "/goscheduler/apps/{app_id}/tokens",
            post(tokens::issue).get(tokens::list),
        )
        .route(
            "/goscheduler/apps/{app_id}/tokens/{token_id}",
            axum::routing::delete(tokens::revoke),
        )
        .route(
            "/goscheduler/apps/{app_id}/deactivate",
            post(apps::deactivate),
        )
        .route(
            "/goscheduler/apps/{app_id}/schedules",
            get(app_schedules::list),
        )
        .route(
            "/goscheduler/apps/{app_id}/schedules/{id}/audit-logs",
            get(audit::audit_logs),
        )
        .route(
            "/goscheduler/apps/{app_id}/bulk-action/{action}",
            post(bulk_actions::start),
        )
        .route(
            "/goscheduler/apps/{app_id}/bulk-action/jobs/{job_id}",
            get(bulk_actions::progress),
        )
        .route("/goscheduler/crons/schedules", get(crons::list))
        .route("/goscheduler/schedules/{id}/runs", get(runs::runs))
        .route(
            "/goscheduler/schedules/{id}/pause",
            axum::routing::put(pause::pause).post(pause::pause),
        )
        .route(
            "/goscheduler/schedules/{id}/resume",
            axum::routing::put(pause::resume).post(pause::resume),
        )
        .route("/goscheduler/schedules/{id}/trigger", post(pause::trigger))
        .route(
            "/goscheduler/schedules/{id}/updateRecurringSchedule",
            axum::routing::put(update::update_recurring),
        )
        .route("/goscheduler/schedules", post(schedules::create))
        .route(
            "/goscheduler/schedules/batch",
            // Up to 1,000 items: a larger body than a single request's.
            post(schedules::create_batch).layer(DefaultBodyLimit::max(limits.max_batch_body_bytes)),
        )
        .route(
            "/goscheduler/schedules/{id}",
            get(schedules::get)
                .delete(schedules::delete)
                .patch(update::patch),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            gw.storage.clone(),
            health::refuse_writes_without_storage,
        ))
        .layer(axum::middleware::from_fn_with_state(
            gw.clone(),
            access::authenticate,
        ))
        .with_state(gw);
    limits::guard(routes, &limits)
}

/// Prometheus text exposition of this node's metrics.
async fn metrics(axum::extract::State(gw): axum::extract::State<Gateway>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(gw.router.groups()),
    )
        .into_response()
}

async fn not_found(req: Request) -> Response {
    ApiError::not_found(format!(
        "no such endpoint: {} {}",
        req.method(),
        req.uri().path()
    ))
    .into_response()
}

async fn method_not_allowed(req: Request) -> Response {
    ApiError::new(
        405,
        format!(
            "method {} not allowed on {}",
            req.method(),
            req.uri().path()
        ),
    )
    .into_response()
}
