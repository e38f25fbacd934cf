//! `GET /goscheduler/healthcheck`: is this node serving? It is when every group on it
//! knows a leader (so requests through it can be routed).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::Gateway;
use crate::router::local::known_leader;

pub async fn healthcheck(State(gw): State<Gateway>) -> Response {
    let groups = gw.router.groups();
    let total = groups.iter().count();
    let led = groups.iter().filter(|g| known_leader(g).is_some()).count();
    let healthy = led == total;
    let body = json!({
        "statusMessage": if healthy { "Success" } else { "Fail" },
        "nodeId": gw.config.node_id,
        "groups": total,
        "groupsWithLeader": led,
    });
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
