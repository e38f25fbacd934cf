//! `GET /goscheduler/healthcheck`: is this node serving? It is when every group on it
//! knows a leader (so requests through it can be routed), its wall clock is trusted
//! (its times, e.g. "is this schedule in the past", agree with the cluster's), and its
//! storage can write (no group stopped on a storage error; see `storage`). A node that
//! cannot write also answers every write 503, naming the error.

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
    /// `ok`, or why this node cannot write (e.g. "shard-2 stopped: ... No space left on device").
    pub storage: String,
    /// Free bytes on the data dir's file system.
    pub disk_free_bytes: Option<u64>,
}

#[utoipa::path(get, path = "/goscheduler/healthcheck", tag = "health", security(()),
    description = "Whether this node can serve: every Raft group on it knows its leader, its clock agrees with a majority of the voters, and its storage can write. Answers any method.",
    responses((status = 200, body = Health), (status = 503, description = "not every group has a leader, the clock is off, or storage failed", body = Health)))]
pub async fn healthcheck(State(gw): State<Gateway>) -> Response {
    let groups = gw.router.groups();
    let total = groups.iter().count();
    let led = groups.iter().filter(|g| g.known_leader().is_some()).count();
    let clock_trusted = gw.skew.trusted();
    let storage = gw.storage.check();
    let healthy = led == total && clock_trusted && storage.is_none();
    let body = Health {
        status_message: if healthy { "Success" } else { "Fail" },
        node_id: gw.config.node_id,
        groups: total,
        groups_with_leader: led,
        clock_trusted,
        clock: gw.skew.why(),
        storage: storage.unwrap_or_else(|| "ok".into()),
        disk_free_bytes: gw.storage.free_bytes(),
    };
    let status = if healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// Answers a write 503 naming the storage error while this node cannot write (reads and
/// the healthcheck go on): the client retries through another node.
pub async fn refuse_writes_without_storage(
    State(storage): State<crate::storage::Storage>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let read = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    ) || req.uri().path() == "/goscheduler/healthcheck";
    if read || !storage.failed() {
        return next.run(req).await;
    }
    let why = storage
        .failure()
        .unwrap_or_else(|| "a group stopped".into());
    super::envelope::ApiError::new(
        503,
        format!(
            "storage error on node {}: {why}; retry through another node",
            storage.node_id()
        ),
    )
    .into_response()
}
