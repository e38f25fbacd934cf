//! Finding what a request names before acting on it: its app, its schedule.

use std::sync::Arc;

use super::access::Caller;
use super::envelope::ApiError;
use super::params::{locate_schedule, schedule_not_found};
use super::Gateway;
use crate::command::{RejectReason, Rejection};
use crate::ids::GroupId;
use crate::meta::app::App;
use crate::schedule::Schedule;

/// The app: from this node's replica of the meta group when it has it active (fast),
/// otherwise confirmed by a linearizable read, so an app registered or activated through
/// another node a moment ago is found. (A deactivation racing a create may let that create
/// through; the two are unordered anyway.)
pub async fn registered_app(gw: &Gateway, app_id: &str) -> Result<Arc<App>, ApiError> {
    if let Ok(Some(app)) = gw.router.app_replica(app_id) {
        if app.active {
            return Ok(app);
        }
    }
    gw.router
        .app(app_id)
        .await?
        .map(Arc::new)
        .ok_or_else(|| Rejection::new(RejectReason::UnregisteredApp, "unregistered App").into())
}

/// The app `app_id` names, active or not (linearizable): 400 for a malformed id, 404 for
/// an unknown one.
pub async fn existing_app(gw: &Gateway, app_id: &str) -> Result<App, ApiError> {
    crate::meta::app::validate_app_id(app_id).map_err(ApiError::bad_request)?;
    gw.router
        .app(app_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("app {app_id} not found")))
}

/// The schedule id `raw` names and its shard, if `caller` may touch it: 400 for a
/// malformed id, 404 (the original's message) for none, 403 for another app's.
pub async fn touchable_schedule(
    gw: &Gateway,
    caller: &Caller,
    raw: &str,
) -> Result<(GroupId, Schedule), ApiError> {
    let (id, shard) = locate_schedule(raw, gw.config.shards)?;
    let s = gw.router.schedule(shard, id).await?;
    let s = s.ok_or_else(|| schedule_not_found(raw))?;
    caller.may_touch(&s.app_id)?;
    Ok((shard, s))
}
