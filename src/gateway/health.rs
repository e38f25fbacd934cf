//! `GET /goscheduler/healthcheck`: is this node serving? It is when every group on it
//! knows a leader (so requests through it can be routed) and its wall clock is trusted
//! (its times, e.g. "is this schedule in the past", agree with the cluster's).

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
    /// Whether this node's wall clock agrees with a majority of the voters (a node that
    /// does not leads nothing and fires nothing).
    pub clock_trusted: bool,
    /// Why it is (not) trusted, with the offsets that decided it.
    pub clock: String,
}

#[utoipa::path(get, path = "/goscheduler/healthcheck", tag = "health",
    description = "Whether this node can serve: every Raft group on it knows its leader and its clock agrees with a majority of the voters. Answers any method.",
    responses((status = 200, body = Health), (status = 503, description = "not every group has a leader, or the clock is off", body = Health)))]
pub async fn healthcheck(State(gw): State<Gateway>) -> Response {
    let groups = gw.router.groups();
    let total = groups.iter().count();
    let led = groups.iter().filter(|g| g.known_leader().is_some()).count();
    let clock_trusted = gw.skew.trusted();
    let healthy = led == total && clock_trusted;
    let body = Health {
        status_message: if healthy { "Success" } else { "Fail" },
        node_id: gw.config.node_id,
        groups: total,
        groups_with_leader: led,
        clock_trusted,
        clock: gw.skew.why(),
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
