//! The OpenAPI 3 document of the REST API, generated from the handlers' annotations and
//! the request and reply types (`GET /goscheduler/openapi.json`).

use axum::Json;
use utoipa::OpenApi;

use super::{app_schedules, apps, bulk_actions, crons, health, runs, schedules, tokens};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "goscheduler",
        description = "A Raft-replicated scheduler with the API of Myntra's GoScheduler. \
                       Every success is HTTP 200 in the status/data envelope; failures carry \
                       statusType Fail and a message naming the problem."
    ),
    paths(
        health::healthcheck,
        apps::register,
        apps::list,
        apps::activate,
        apps::deactivate,
        apps::signing_secret,
        apps::rotate_signing_secret,
        tokens::issue,
        tokens::list,
        tokens::revoke,
        schedules::create,
        schedules::create_batch,
        schedules::get,
        schedules::delete,
        runs::runs,
        crons::list,
        app_schedules::list,
        bulk_actions::start,
        bulk_actions::progress,
    )
)]
pub struct ApiDoc;

pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
