//! Who may do what through the REST API. The bearer token names the caller: the cluster's
//! admin token may do everything; an app's token (`auth::app_token`) may touch only that
//! app's schedules, runs and bulk actions (403 otherwise); anything else is 401. With no
//! admin token configured, every caller is the admin (the single-node default).

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::envelope::ApiError;
use super::Gateway;
use crate::auth::app_token;
use crate::command::Actor;
use crate::ids::GroupId;

/// Paths anyone may call: the healthcheck, metrics and the OpenAPI document.
const OPEN_PATHS: [&str; 3] = [
    "/goscheduler/healthcheck",
    "/goscheduler/openapi.json",
    "/metrics",
];

/// The caller of a request, as its bearer token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Admin,
    /// The holder of one of this app's tokens.
    App(String),
}

impl Caller {
    /// This request as the audit log names who made it: the node and, when the cluster
    /// has an admin token, the caller (`admin` or `app:<appId>`).
    pub fn actor(&self, gw: &Gateway) -> Actor {
        let caller = gw.token.is_set().then(|| match self {
            Caller::Admin => "admin".to_string(),
            Caller::App(app) => format!("app:{app}"),
        });
        Actor {
            node: gw.config.node_id,
            caller,
            at_ms: crate::schedule::time::now_ms(),
        }
    }

    /// Refuses (403) a caller that may not touch app `app_id`'s data.
    pub fn may_touch(&self, app_id: &str) -> Result<(), ApiError> {
        match self {
            Caller::App(own) if own != app_id => Err(ApiError::new(
                403,
                format!("this token is app {own}'s: it may not touch app {app_id:?}"),
            )),
            _ => Ok(()),
        }
    }

    /// Refuses (403) a caller that is not the admin: `what` is what it tried.
    pub fn must_be_admin(&self, what: &str) -> Result<(), ApiError> {
        match self {
            Caller::App(own) => Err(ApiError::new(
                403,
                format!("{what} needs the admin token; this token is app {own}'s"),
            )),
            Caller::Admin => Ok(()),
        }
    }

    /// Refuses (403) an app's caller when schedule `id` in `shard` is another app's (an
    /// extra read, for app tokens only; a schedule not found is left to the handler).
    pub async fn may_touch_schedule(
        &self,
        gw: &Gateway,
        shard: GroupId,
        id: Uuid,
    ) -> Result<(), ApiError> {
        if *self == Caller::Admin {
            return Ok(());
        }
        match gw.router.schedule(shard, id).await? {
            Some(s) => self.may_touch(&s.app_id),
            None => Ok(()),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::new(500, "internal error: request not authenticated"))
    }
}

/// Names the caller of every request (401 when its token names nobody) before routing.
pub async fn authenticate(
    State(gw): State<Gateway>,
    mut req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let caller = if gw.token.admits(given) || OPEN_PATHS.contains(&req.uri().path()) {
        Some(Caller::Admin)
    } else {
        match given.and_then(|g| g.strip_prefix("Bearer ")) {
            Some(bearer) => app_caller(&gw, bearer).await,
            None => None,
        }
    };
    match caller {
        Some(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        None => unauthenticated(),
    }
}

/// The app whose token `bearer` is, if it is one it holds: looked up in this node's meta
/// replica, and confirmed by a linearizable read when the replica does not know it (a
/// token issued through another node a moment ago).
async fn app_caller(gw: &Gateway, bearer: &str) -> Option<Caller> {
    let presented = app_token::parse(bearer)?;
    let replica = gw.router.app_replica(presented.app_id).ok().flatten();
    let app = match replica {
        Some(app) if app.tokens.iter().any(|t| t.token_id == presented.token_id) => app,
        _ => Arc::new(gw.router.app(presented.app_id).await.ok().flatten()?),
    };
    presented
        .held_by(&app)
        .then(|| Caller::App(presented.app_id.to_string()))
}

fn unauthenticated() -> Response {
    let mut answer = ApiError::new(
        401,
        "missing or wrong bearer token: send Authorization: Bearer <admin or app token>",
    )
    .into_response();
    answer.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static("Bearer"),
    );
    answer
}
