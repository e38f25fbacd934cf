//! Schedule endpoints: create (one-time), get, delete. Each goes to the shard that holds
//! the schedule: on create the gateway picks the partition (and so the shard) and stamps
//! the id, time and partition into the command; afterwards the id alone names the shard.

use std::collections::{BTreeMap, HashMap};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::envelope::{ok, ApiError, Envelope, Failure};
use super::lookup::registered_app;
use super::params::{locate, parse_body};
use super::views::{created_view, stored_view, BatchData, BatchItem, ScheduleData};
use super::Gateway;
use crate::command::{RejectReason, Rejection};
use crate::cron::CronSpec;
use crate::ids::GroupId;
use crate::meta::app::{validate_app_id, App};
use crate::schedule::{id, validate, HttpCallback, Schedule, Status};
use crate::shard::shard_of;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateSchedule {
    app_id: Option<String>,
    payload: Option<String>,
    schedule_time: Option<i64>,
    cron_expression: Option<String>,
    /// IANA zone of a cron's times (default UTC).
    timezone: Option<String>,
    callback: Option<CallbackRequest>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CallbackRequest {
    #[serde(rename = "type")]
    kind: Option<String>,
    details: Option<CallbackDetails>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CallbackDetails {
    url: Option<String>,
    method: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

fn now() -> (i64, u64) {
    let ms = crate::schedule::time::now_ms();
    ((ms / 1000) as i64, ms)
}

/// The apps named by create requests, each looked up once.
async fn resolve_apps(
    gw: &Gateway,
    ids: impl Iterator<Item = String>,
) -> HashMap<String, Result<App, ApiError>> {
    let distinct: std::collections::BTreeSet<String> = ids.collect();
    let mut apps = HashMap::new();
    for id in distinct {
        let app = match validate_app_id(&id) {
            Ok(()) => registered_app(gw, &id).await,
            Err(e) => Err(ApiError::bad_request(e)),
        };
        apps.insert(id, app);
    }
    apps
}

/// The callback of a request, or every problem with it.
fn check_callback(cb: Option<CallbackRequest>, errors: &mut Vec<String>) -> Option<HttpCallback> {
    let Some(cb) = cb else {
        errors.push("callback is required".into());
        return None;
    };
    errors.extend(validate::callback_type(
        cb.kind.as_deref().unwrap_or_default(),
    ));
    let Some(details) = cb.details else {
        errors.push("callback details are required".into());
        return None;
    };
    let url = details.url.unwrap_or_default();
    let method = details.method.unwrap_or_default();
    errors.extend(validate::url(&url));
    errors.extend(validate::method(&method));
    errors.extend(validate::headers(&details.headers));
    Some(HttpCallback {
        url,
        method,
        headers: details.headers,
    })
}

/// Turns a create request into the schedule to store and its shard, or the error to answer.
fn build_schedule(
    gw: &Gateway,
    req: CreateSchedule,
    apps: &HashMap<String, Result<App, ApiError>>,
    now: (i64, u64),
) -> Result<(GroupId, Schedule), ApiError> {
    let (now_secs, now_ms) = now;
    let app_id = req.app_id.clone().unwrap_or_default();
    let app = match apps.get(&app_id) {
        Some(app) => app.clone()?,
        None => return Err(ApiError::new(500, "internal error: app not resolved")),
    };
    if !app.active {
        let why = format!("app Id {app_id} is deactivated");
        return Err(Rejection::new(RejectReason::AlreadyDeactivated, why).into());
    }
    let mut errors = Vec::new();
    let limits = app.configuration;
    errors.extend(validate::payload(
        req.payload.as_deref(),
        limits.payload_size as usize,
    ));
    let callback = check_callback(req.callback, &mut errors);
    let cron = match (req.schedule_time, req.cron_expression) {
        (Some(_), Some(_)) => {
            errors.push("give either scheduleTime or cronExpression, not both".into());
            None
        }
        (None, None) => {
            errors.push("scheduleTime or cronExpression is required".into());
            None
        }
        (Some(t), None) => {
            errors.extend(validate::schedule_time(t, now_secs, &app_id));
            errors.extend(validate::horizon(
                t,
                now_secs,
                limits.future_schedule_creation_period,
            ));
            None
        }
        (None, Some(expression)) => {
            let spec = CronSpec {
                expression,
                timezone: req.timezone.filter(|z| !z.is_empty()),
            };
            match spec.rule() {
                Ok(_) => Some(spec),
                Err(e) => {
                    errors.push(e);
                    None
                }
            }
        }
    };
    let (Some(callback), true) = (callback, errors.is_empty()) else {
        return Err(ApiError::bad_request(errors.join(",")));
    };
    let schedule_time = req.schedule_time.unwrap_or(now_secs);
    let partition = (Uuid::new_v4().as_u128() % app.partitions as u128) as u32;
    let shard = shard_of(&app_id, partition, gw.config.shards);
    let schedule = Schedule {
        id: id::new_id(shard, now_ms),
        app_id,
        partition,
        payload: req.payload.unwrap_or_default(),
        schedule_time,
        cron,
        parent: None,
        runs_until: None,
        due_at: None,
        callback,
        status: Status::Scheduled,
        error_message: None,
        created_at_ms: now_ms,
        claim: None,
        attempts: vec![],
    };
    Ok((shard, schedule))
}

#[utoipa::path(post, path = "/goscheduler/schedules", tag = "schedules", request_body = CreateSchedule,
    description = "A one-time schedule (scheduleTime) or a cron (cronExpression, optional timezone).",
    responses((status = 200, description = "created (body statusCode 201)", body = Envelope<ScheduleData>), (status = 400, body = Failure)))]
pub async fn create(
    State(gw): State<Gateway>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let req: CreateSchedule = parse_body(&body?)?;
    let apps = resolve_apps(&gw, std::iter::once(req.app_id.clone().unwrap_or_default())).await;
    let (shard, schedule) = build_schedule(&gw, req, &apps, now())?;
    let mut created = gw.router.create_schedules(shard, vec![schedule]).await?;
    let created = created
        .pop()
        .ok_or_else(|| ApiError::new(500, "internal error: nothing created"))?;
    Ok(ok(
        201,
        1,
        ScheduleData {
            schedule: created_view(&created),
        },
    ))
}

/// Most schedules one batch may create.
pub const MAX_BATCH: usize = 1000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateBatch {
    #[schema(value_type = Vec<CreateSchedule>)]
    schedules: Vec<serde_json::Value>,
}

/// `POST /goscheduler/schedules/batch`: up to [`MAX_BATCH`] creates in one request, one
/// result per item in order (`statusCode` 201 with the schedule, or the item's error).
/// Valid items are proposed as one command per shard, in parallel.
#[utoipa::path(post, path = "/goscheduler/schedules/batch", tag = "schedules", request_body = CreateBatch,
    responses((status = 200, description = "one result per item", body = Envelope<BatchData>), (status = 400, body = Failure)))]
pub async fn create_batch(
    State(gw): State<Gateway>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let batch: CreateBatch = parse_body(&body?)?;
    if batch.schedules.is_empty() || batch.schedules.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "a batch holds 1 to {MAX_BATCH} schedules, not {}",
            batch.schedules.len()
        )));
    }
    let now = now();
    let mut results: Vec<Option<BatchItem>> = Vec::with_capacity(batch.schedules.len());
    let mut per_shard: BTreeMap<GroupId, Vec<(usize, Schedule)>> = BTreeMap::new();
    let parsed: Vec<Result<CreateSchedule, ApiError>> = batch
        .schedules
        .into_iter()
        .map(|item| serde_json::from_value(item).map_err(ApiError::unparsable))
        .collect();
    let app_ids = parsed
        .iter()
        .flatten()
        .map(|r| r.app_id.clone().unwrap_or_default());
    let apps = resolve_apps(&gw, app_ids).await;
    for (i, req) in parsed.into_iter().enumerate() {
        let built = req.and_then(|req| build_schedule(&gw, req, &apps, now));
        match built {
            Ok((shard, s)) => {
                per_shard.entry(shard).or_default().push((i, s));
                results.push(None);
            }
            Err(e) => results.push(Some(error_item(&e))),
        }
    }
    let writes = per_shard.into_iter().map(|(shard, items)| {
        let gw = gw.clone();
        async move {
            let (slots, schedules): (Vec<usize>, Vec<Schedule>) = items.into_iter().unzip();
            let outcome = gw.router.create_schedules(shard, schedules).await;
            (slots, outcome)
        }
    });
    for (slots, outcome) in futures::future::join_all(writes).await {
        match outcome.map_err(ApiError::from) {
            Ok(created) if created.len() == slots.len() => {
                for (slot, s) in slots.into_iter().zip(created) {
                    results[slot] = Some(BatchItem {
                        status_code: 201,
                        schedule: Some(created_view(&s)),
                        status_message: None,
                    });
                }
            }
            Ok(created) => {
                let e = ApiError::new(
                    500,
                    format!(
                        "internal error: {} of {} created",
                        created.len(),
                        slots.len()
                    ),
                );
                slots
                    .into_iter()
                    .for_each(|slot| results[slot] = Some(error_item(&e)));
            }
            Err(e) => slots
                .into_iter()
                .for_each(|slot| results[slot] = Some(error_item(&e))),
        }
    }
    let results: Vec<BatchItem> = results
        .into_iter()
        .map(|r| r.expect("every item answered"))
        .collect();
    let created = results.iter().filter(|r| r.status_code == 201).count();
    Ok(ok(200, created, BatchData { results }))
}

fn error_item(e: &ApiError) -> BatchItem {
    BatchItem {
        status_code: e.code,
        schedule: None,
        status_message: Some(e.message.clone()),
    }
}

#[utoipa::path(get, path = "/goscheduler/schedules/{id}", tag = "schedules", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<ScheduleData>), (status = 404, body = Failure)))]
pub async fn get(State(gw): State<Gateway>, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let not_found = || ApiError::not_found(format!("Schedule with id: {raw} not found"));
    let (id, shard) = locate(&raw, gw.config.shards)?.ok_or_else(not_found)?;
    let s = gw.router.schedule(shard, id).await?.ok_or_else(not_found)?;
    Ok(ok(
        200,
        1,
        ScheduleData {
            schedule: stored_view(&s),
        },
    ))
}

#[utoipa::path(delete, path = "/goscheduler/schedules/{id}", tag = "schedules", params(("id" = String, Path)),
    description = "A one-time schedule is removed; a cron becomes DELETED and loses its future runs.",
    responses((status = 200, body = Envelope<ScheduleData>), (status = 404, body = Failure)))]
pub async fn delete(
    State(gw): State<Gateway>,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let (id, shard) =
        locate(&raw, gw.config.shards)?.ok_or_else(|| ApiError::not_found("not found"))?;
    let deleted = gw.router.delete_schedule(shard, id, now().1).await?;
    Ok(ok(
        200,
        1,
        ScheduleData {
            schedule: created_view(&deleted),
        },
    ))
}
