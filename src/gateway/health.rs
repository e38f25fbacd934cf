//! `GET /goscheduler/healthcheck`: is this node serving? It is when every group on it
//! knows a leader (so requests through it can be routed).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use super::Gateway;

/// The healthcheck's body.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `Success` or `Fail`.
    pub status_message: &'static str,
    pub node_id: u64,
    pub groups: usize,
    pub groups_with_leader: usize,
}

#[utoipa::path(get, path = "/goscheduler/healthcheck", tag = "health",
    description = "Whether this node can serve: every Raft group on it knows its leader. Answers any method.",
    responses((status = 200, body = Health), (status = 503, description = "not every group has a leader", body = Health)))]
pub async fn healthcheck(State(gw): State<Gateway>) -> Response {
    let groups = gw.router.groups();
    let total = groups.iter().count();
    let led = groups.iter().filter(|g| g.known_leader().is_some()).count();
    let healthy = led == total;
    let body = Health {
        status_message: if healthy { "Success" } else { "Fail" },
        node_id: gw.config.node_id,
        groups: total,
        groups_with_leader: led,
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
