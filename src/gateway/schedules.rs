//! Schedule endpoints: create (one-time), get, delete. Each goes to the shard that holds
//! the schedule: on create the gateway picks the partition (and so the shard) and stamps
//! the id, time and partition into the command; afterwards the id alone names the shard.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use serde::Deserialize;
use uuid::Uuid;

use super::access::Caller;
use super::envelope::{ok, ApiError, Envelope, Failure};
use super::lookup::{registered_app, touchable_schedule};
use super::params::{locate, object_body, parse_body, parse_object};
use super::views::{created_view, stored_view, BatchData, BatchItem, ScheduleData};
use super::Gateway;
use crate::callback::guard::Guard;
use crate::command::{CreateKey, Created, RejectReason, Rejection};
use crate::config::Limits;
use crate::cron::{CronSpec, Overlap};
use crate::ids::GroupId;
use crate::meta::app::{validate_app_id, App};
use crate::schedule::{id, validate, HttpCallback, Schedule, Status};
use crate::shard::{partition_of_key, shard_of};

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateSchedule {
    #[schema(pattern = "^[A-Za-z0-9_-]{1,64}$")]
    app_id: Option<String>,
    payload: Option<String>,
    #[serde(default, deserialize_with = "crate::json_shape::whole_or_none")]
    schedule_time: Option<i64>,
    cron_expression: Option<String>,
    /// IANA zone of a cron's times (default UTC).
    timezone: Option<String>,
    /// A recurring schedule's first possible second (epoch seconds); `@every` intervals
    /// count from it (default: the creation second).
    #[serde(default, deserialize_with = "crate::json_shape::whole_or_none")]
    start_time: Option<i64>,
    /// A recurring schedule's last possible second (epoch seconds).
    #[serde(default, deserialize_with = "crate::json_shape::whole_or_none")]
    end_time: Option<i64>,
    /// A recurring schedule's runs each fire up to this many seconds late, by a fixed
    /// pseudo-random offset per run (at most 3600).
    #[schema(maximum = 3600)]
    #[serde(default, deserialize_with = "crate::json_shape::whole_or_none")]
    jitter_seconds: Option<u32>,
    /// A recurring schedule's overlap policy: `ALLOW` (default), `SKIP` (a run due while
    /// the previous one is still being called becomes MISS) or `BUFFER_ONE` (it waits for
    /// the previous one; one at most).
    overlap_policy: Option<Overlap>,
    #[serde(default, deserialize_with = "crate::json_shape::object_or_none")]
    callback: Option<CallbackRequest>,
    /// Makes a retried create answer the first one's schedule instead of adding another
    /// (for 24 h). On a single create the `Idempotency-Key` header says the same.
    idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CallbackRequest {
    #[serde(rename = "type")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "crate::json_shape::object_or_none")]
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
) -> HashMap<String, Result<Arc<App>, ApiError>> {
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
pub(super) fn check_callback(
    cb: Option<CallbackRequest>,
    guard: &Guard,
    errors: &mut Vec<String>,
) -> Option<HttpCallback> {
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
    match validate::url(&url) {
        Err(invalid) => errors.push(invalid),
        Ok(parsed) => errors.extend(guard.check_parsed(&parsed).err().map(|r| r.to_string())),
    }
    errors.extend(validate::method(&method));
    errors.extend(validate::headers(&details.headers));
    Some(HttpCallback {
        url,
        method,
        headers: details.headers,
    })
}

/// The largest payload `app` may send: its own limit, within the cluster's.
pub(super) fn payload_limit(app: &App, limits: &Limits) -> usize {
    (app.configuration.payload_size as usize).min(limits.max_payload_bytes)
}

/// A one-time schedule's time: not in the past, within the cluster's and `app`'s horizons.
pub(super) fn check_time(t: i64, now_secs: i64, app: &App, limits: &Limits) -> Vec<String> {
    let days = app.configuration.future_schedule_creation_period;
    [
        validate::schedule_time(t, now_secs, &app.app_id),
        validate::ahead(t, now_secs, limits.max_schedule_ahead_days),
        validate::horizon(t, now_secs, days),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Longest jitter of a recurring schedule's runs, seconds.
const MAX_JITTER_SECS: u32 = 3600;

/// A recurring schedule's window and jitter: the window not over already, the jitter bounded.
pub(super) fn check_window(spec: &CronSpec, now_secs: i64) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(end) = spec.end_time.filter(|end| *end <= now_secs) {
        problems.push(format!("endTime {end} is not in the future"));
    }
    problems.extend(jitter_beyond_limit(spec.jitter_seconds));
    problems
}

fn jitter_beyond_limit(jitter: Option<u32>) -> Option<String> {
    jitter
        .filter(|j| *j > MAX_JITTER_SECS)
        .map(|j| format!("jitterSeconds {j} exceeds the limit of {MAX_JITTER_SECS}"))
}

/// A create ready to propose: its shard, the schedule, its idempotency key, the most
/// pending schedules its partition may hold, and whether its partition was picked for
/// being led here.
struct Creation {
    local: bool,
    shard: GroupId,
    schedule: Schedule,
    key: Option<CreateKey>,
    pending_cap: u64,
}

/// What a create asked for, as one digest: a retry with the same key must ask the same.
/// (A one-time schedule's time is part of it; a cron's creation time is not.)
fn request_digest(s: &Schedule) -> Uuid {
    let time = s.cron.is_none().then_some(s.schedule_time);
    let asked = (&s.app_id, &s.payload, time, &s.cron, &s.callback);
    let bytes = serde_json::to_vec(&asked).expect("a schedule serialises");
    Uuid::new_v5(&Uuid::NAMESPACE_OID, &bytes)
}

/// How long a node's gateway sends an app's unkeyed creates to the same one of its locally
/// led partitions before it moves on to the next: creates that arrive together wait for
/// the same shard's next proposal and share its Raft entry (spread over the node's shards,
/// they made one entry each per shard, with the per-entry costs each time).
const SAME_PARTITION_MS: u64 = 100;

/// A partition of the app whose shard this node leads, if any: an unkeyed create may go to
/// any partition, and one led here is stored without a forwarding hop.
fn local_partition(gw: &Gateway, app_id: &str, partitions: u32, now_ms: u64) -> Option<u32> {
    let groups = gw.router.groups();
    let node = gw.config.node_id;
    let leads = |g: GroupId| groups.get(g).is_some_and(|g| g.is_led_by(node));
    let pick = now_ms / SAME_PARTITION_MS;
    crate::shard::local_partition(app_id, partitions, gw.config.shards, leads, pick)
}

fn random_partition(partitions: u32) -> u32 {
    (rand::random::<u64>() % u64::from(partitions.max(1))) as u32
}

/// `c` moved to a partition of its app's `partitions` picked uniformly (with a new id in
/// its shard): a create whose locally led partition is full may fit in another, as the
/// app's pending cap is shared evenly by its partitions.
fn to_any_partition(gw: &Gateway, mut c: Creation, partitions: u32) -> Creation {
    let s = &mut c.schedule;
    s.partition = random_partition(partitions);
    c.shard = shard_of(&s.app_id, s.partition, gw.config.shards);
    s.id = id::new_id(c.shard, s.created_at_ms);
    c.local = false;
    c
}

/// Turns a create request into the schedule to store and its shard, or the error to answer.
fn build_schedule(
    gw: &Gateway,
    req: CreateSchedule,
    apps: &HashMap<String, Result<Arc<App>, ApiError>>,
    now: (i64, u64),
) -> Result<Creation, ApiError> {
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
    if let Some(key) = &req.idempotency_key {
        errors.extend(validate::idempotency_key(key));
    }
    errors.extend(validate::payload(
        req.payload.as_deref(),
        payload_limit(&app, &gw.config.limits),
    ));
    let callback = check_callback(req.callback, &gw.guard, &mut errors);
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
            errors.extend(check_time(t, now_secs, &app, &gw.config.limits));
            None
        }
        (None, Some(expression)) => {
            let every = expression.starts_with("@every");
            let spec = CronSpec {
                expression,
                timezone: req.timezone.filter(|z| !z.is_empty()),
                start_time: req.start_time.or(every.then_some(now_secs)),
                end_time: req.end_time,
                jitter_seconds: req.jitter_seconds.filter(|j| *j > 0),
                overlap_policy: req.overlap_policy.unwrap_or_default(),
            };
            errors.extend(check_window(&spec, now_secs));
            match spec.rule() {
                Ok(_) => Some(spec),
                Err(e) => {
                    errors.push(e);
                    None
                }
            }
        }
    };
    if req.schedule_time.is_some() {
        let window = [
            req.start_time.is_some(),
            req.end_time.is_some(),
            req.jitter_seconds.is_some(),
            req.overlap_policy.is_some(),
        ];
        if window.contains(&true) {
            errors.push(
                "startTime, endTime, jitterSeconds and overlapPolicy apply to recurring schedules only".into(),
            );
        }
    }
    let (Some(callback), true) = (callback, errors.is_empty()) else {
        return Err(ApiError::bad_request(errors.join(",")));
    };
    let schedule_time = req.schedule_time.unwrap_or(now_secs);
    let (partition, local) = match &req.idempotency_key {
        Some(key) => (partition_of_key(&app_id, key, app.partitions), false),
        None => match local_partition(gw, &app_id, app.partitions, now_ms) {
            Some(p) => (p, true),
            None => (random_partition(app.partitions), false),
        },
    };
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
    let key = req.idempotency_key.map(|key| {
        // An `@every` without startTime counts from its creation second, which a retry
        // does not repeat: the digest has the start the client asked for.
        let mut asked = schedule.clone();
        if let Some(spec) = &mut asked.cron {
            spec.start_time = req.start_time;
        }
        CreateKey {
            key,
            digest: request_digest(&asked),
        }
    });
    // The app's cap, shared evenly by its partitions (keyed creates spread over them by key,
    // unkeyed ones over time: see `SAME_PARTITION_MS`).
    let pending_cap = gw
        .config
        .limits
        .max_pending_per_app
        .div_ceil(u64::from(app.partitions.max(1)));
    Ok(Creation {
        shard,
        schedule,
        key,
        pending_cap,
        local,
    })
}

/// How many more SCHEDULED crons `app` may have (`limits.max_crons_per_app`).
async fn cron_room(gw: &Gateway, app: &App) -> Result<usize, ApiError> {
    let cap = gw.config.limits.max_crons_per_app;
    let shards = crate::shard::app_shards(&app.app_id, app.partitions, gw.config.shards);
    let n = gw.router.count_crons(&shards, &app.app_id, cap).await?;
    Ok(cap.saturating_sub(n))
}

fn too_many_crons(gw: &Gateway, app_id: &str) -> ApiError {
    let cap = gw.config.limits.max_crons_per_app;
    ApiError::new(
        429,
        format!("app {app_id} has {cap} crons, the most allowed (limits.max_crons_per_app): delete some first"),
    )
}

/// The `Idempotency-Key` header of a single create, merged into its body's field.
fn take_key_header(headers: &HeaderMap, req: &mut CreateSchedule) -> Result<(), ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(());
    };
    let key = value
        .to_str()
        .map_err(|_| ApiError::bad_request("Idempotency-Key must be visible ASCII"))?
        .to_string();
    match &req.idempotency_key {
        Some(body) if *body != key => Err(ApiError::bad_request(
            "the Idempotency-Key header and the body's idempotencyKey differ",
        )),
        _ => {
            req.idempotency_key = Some(key);
            Ok(())
        }
    }
}

/// The header an answer carries when a create's idempotency key had been used: the
/// schedule is the one created then.
const REPLAYED: &str = "idempotent-replayed";
const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[utoipa::path(post, path = "/goscheduler/schedules", tag = "schedules", request_body = CreateSchedule,
    description = "A one-time schedule (scheduleTime) or a cron (cronExpression, optional timezone). \
        With an `Idempotency-Key` header, a retry within 24 h answers the first create's schedule \
        (header `Idempotent-Replayed: true`) instead of adding another; the same key with a \
        different request is 422, with a schedule deleted since 409.",
    params(("Idempotency-Key" = Option<String>, Header, description = "1-255 visible ASCII characters")),
    responses((status = 200, description = "created (body statusCode 201)", body = Envelope<ScheduleData>),
        (status = 400, body = Failure), (status = 409, body = Failure), (status = 422, body = Failure)))]
pub async fn create(
    State(gw): State<Gateway>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let mut req: CreateSchedule = parse_body(body, gw.config.limits.max_body_bytes)?;
    caller.may_touch(req.app_id.as_deref().unwrap_or_default())?;
    take_key_header(&headers, &mut req)?;
    let apps = resolve_apps(&gw, std::iter::once(req.app_id.clone().unwrap_or_default())).await;
    let c = build_schedule(&gw, req, &apps, now())?;
    if c.schedule.is_cron() {
        if let Some(Ok(app)) = apps.get(&c.schedule.app_id) {
            if cron_room(&gw, app).await? == 0 {
                return Err(too_many_crons(&gw, &app.app_id));
            }
        }
    }
    let retry = c.local.then(|| retry_of(&c));
    let created = match (create_one(&gw, c).await?, retry) {
        (Created::Refused(r), Some(retry)) if r.reason == RejectReason::TooMany => {
            let partitions = apps.values().flatten().map(|a| a.partitions).next();
            let c = to_any_partition(&gw, retry, partitions.unwrap_or(1));
            create_one(&gw, c).await?
        }
        (created, _) => created,
    };
    let (schedule, replayed) = match created {
        Created::New(s) => (s, false),
        Created::Replayed(s) => (s, true),
        Created::Refused(r) => return Err(r.into()),
    };
    let mut answer = ok(
        201,
        1,
        ScheduleData {
            schedule: created_view(&schedule),
        },
    );
    if replayed {
        answer
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
    }
    Ok(answer)
}

/// Proposes one create to its shard (with the creates waiting beside it).
async fn create_one(gw: &Gateway, c: Creation) -> Result<Created, ApiError> {
    let max_entry = gw.config.limits.max_entry_bytes;
    let created = gw
        .router
        .create_schedule(c.shard, c.schedule, c.key, c.pending_cap, max_entry)
        .await?;
    Ok(created)
}

/// Most schedules one batch may create.
pub const MAX_BATCH: usize = 1000;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct CreateBatch {
    #[schema(value_type = Vec<CreateSchedule>, min_items = 1, max_items = 1000)]
    schedules: Vec<serde_json::Value>,
}

/// `POST /goscheduler/schedules/batch`: up to [`MAX_BATCH`] creates in one request, one
/// result per item in order (`statusCode` 201 with the schedule, or the item's error).
/// Valid items are proposed as one command per shard, in parallel.
#[utoipa::path(post, path = "/goscheduler/schedules/batch", tag = "schedules", request_body = CreateBatch,
    responses((status = 200, description = "one result per item", body = Envelope<BatchData>), (status = 400, body = Failure)))]
pub async fn create_batch(
    State(gw): State<Gateway>,
    caller: Caller,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let creates = batch_items(&object_body(body, gw.config.limits.max_batch_body_bytes)?)?;
    let now = now();
    let mut results: Vec<Option<BatchItem>> = Vec::with_capacity(creates.len());
    let mut per_shard: BTreeMap<GroupId, Vec<(usize, Creation)>> = BTreeMap::new();
    let parsed: Vec<Result<CreateSchedule, ApiError>> = creates
        .into_iter()
        .map(|req| {
            caller.may_touch(req.app_id.as_deref().unwrap_or_default())?;
            Ok(req)
        })
        .collect();
    let app_ids = parsed
        .iter()
        .flatten()
        .map(|r| r.app_id.clone().unwrap_or_default());
    let apps = resolve_apps(&gw, app_ids).await;
    let mut cron_rooms: HashMap<String, usize> = HashMap::new();
    for (i, req) in parsed.into_iter().enumerate() {
        let built = req.and_then(|req| build_schedule(&gw, req, &apps, now));
        match built {
            Ok(c)
                if c.schedule.is_cron()
                    && !take_cron_room(&gw, &apps, &mut cron_rooms, &c).await? =>
            {
                results.push(Some(error_item(&too_many_crons(&gw, &c.schedule.app_id))));
            }
            Ok(c) => {
                per_shard.entry(c.shard).or_default().push((i, c));
                results.push(None);
            }
            Err(e) => results.push(Some(error_item(&e))),
        }
    }
    // Items whose partition was picked for being led here go again to any partition if
    // theirs is full (as a single create does).
    let mut retries: HashMap<usize, Creation> = per_shard
        .values()
        .flatten()
        .filter(|(_, c)| c.local)
        .map(|(slot, c)| (*slot, retry_of(c)))
        .collect();
    let mut round = propose(&gw, per_shard).await;
    for attempt in 0..2 {
        let mut again: BTreeMap<GroupId, Vec<(usize, Creation)>> = BTreeMap::new();
        for (slot, outcome) in round {
            results[slot] = Some(match outcome {
                Ok(Created::Refused(r)) if attempt == 0 && r.reason == RejectReason::TooMany => {
                    if let Some(c) = retries.remove(&slot) {
                        let partitions = apps.get(&c.schedule.app_id).and_then(|a| a.as_ref().ok());
                        let c = to_any_partition(&gw, c, partitions.map_or(1, |a| a.partitions));
                        again.entry(c.shard).or_default().push((slot, c));
                        continue;
                    }
                    error_item(&r.into())
                }
                Ok(Created::New(s)) => created_item(&s, None),
                Ok(Created::Replayed(s)) => created_item(&s, Some(true)),
                Ok(Created::Refused(r)) => error_item(&r.into()),
                Err(e) => error_item(&e),
            });
        }
        if again.is_empty() {
            break;
        }
        round = propose(&gw, again).await;
    }
    let results: Vec<BatchItem> = results
        .into_iter()
        .map(|r| r.expect("every item answered"))
        .collect();
    let created = results.iter().filter(|r| r.status_code == 201).count();
    Ok(ok(200, created, BatchData { results }))
}

/// What to propose again if `c`'s locally led partition is full (see [`to_any_partition`]).
fn retry_of(c: &Creation) -> Creation {
    Creation {
        local: c.local,
        shard: c.shard,
        schedule: c.schedule.clone(),
        key: None,
        pending_cap: c.pending_cap,
    }
}

/// Proposes creates, each shard's in entries of at most `limits.max_entry_bytes`, all
/// shards in parallel; answers each item by its slot.
async fn propose(
    gw: &Gateway,
    per_shard: BTreeMap<GroupId, Vec<(usize, Creation)>>,
) -> Vec<(usize, Result<Created, ApiError>)> {
    let max_entry = gw.config.limits.max_entry_bytes;
    let entries = per_shard
        .into_iter()
        .flat_map(|(shard, items)| entries_within(items, max_entry).map(move |e| (shard, e)));
    let writes = entries.map(|(shard, items)| async move {
        let mut slots = Vec::with_capacity(items.len());
        let (mut schedules, mut keys, mut caps) = (Vec::new(), Vec::new(), BTreeMap::new());
        for (slot, c) in items {
            slots.push(slot);
            caps.insert(c.schedule.app_id.clone(), c.pending_cap);
            schedules.push(c.schedule);
            keys.push(c.key);
        }
        let outcome = gw
            .router
            .create_schedules(shard, schedules, keys, caps)
            .await;
        (slots, outcome)
    });
    let mut answers = Vec::new();
    for (slots, outcome) in futures::future::join_all(writes).await {
        match outcome.map_err(ApiError::from) {
            Ok(created) => answers.extend(slots.into_iter().zip(created.into_iter().map(Ok))),
            Err(e) => answers.extend(slots.into_iter().map(|slot| (slot, Err(e.clone())))),
        }
    }
    answers
}

/// A batch read straight into creates: how nearly every batch parses (in the canonical
/// casing, every item an object that reads as a create).
#[derive(Deserialize)]
struct DirectBatch {
    #[serde(deserialize_with = "crate::json_shape::objects")]
    schedules: Vec<CreateSchedule>,
}

/// The batch's items as creates (1 to [`MAX_BATCH`]); one not shaped like a create (a
/// wrong type, not an object) makes the whole batch a 400 naming it, before anything is
/// written. What only the server can judge (the app, the time, the callback) is answered
/// per item. A body the direct read refuses is read again item by item, so that the
/// error names the item (and a body in another casing is re-keyed first).
fn batch_items(body: &[u8]) -> Result<Vec<CreateSchedule>, ApiError> {
    let direct = (!super::field_case::needs_recasing(body))
        .then(|| serde_json::from_slice::<DirectBatch>(body).ok())
        .flatten();
    let items = match direct {
        Some(batch) => batch.schedules.into_iter().map(Ok).collect(),
        None => parse_object::<CreateBatch>(body)?
            .schedules
            .into_iter()
            .map(|item| match item {
                serde_json::Value::Object(_) => {
                    serde_json::from_value(item).map_err(|e| e.to_string())
                }
                _ => Err("expected a JSON object".to_string()),
            })
            .collect::<Vec<_>>(),
    };
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "a batch holds 1 to {MAX_BATCH} schedules, not {}",
            items.len()
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let why = match item {
                Ok(create) => match off_schema(&create) {
                    None => return Ok(create),
                    Some(why) => why,
                },
                Err(why) => why,
            };
            Err(ApiError::unparsable(format!("schedules[{i}]: {why}")))
        })
        .collect()
}

/// What a create breaks of the bounds its schema states (the app id's pattern, the
/// jitter's maximum), so that a batch refuses it whole like a single create.
fn off_schema(req: &CreateSchedule) -> Option<String> {
    if let Some(Err(e)) = req.app_id.as_deref().map(validate_app_id) {
        return Some(e);
    }
    jitter_beyond_limit(req.jitter_seconds)
}

/// Takes one cron's place in its app's room (counted once per batch); false when full.
async fn take_cron_room(
    gw: &Gateway,
    apps: &HashMap<String, Result<Arc<App>, ApiError>>,
    rooms: &mut HashMap<String, usize>,
    c: &Creation,
) -> Result<bool, ApiError> {
    let app_id = &c.schedule.app_id;
    if !rooms.contains_key(app_id) {
        let room = match apps.get(app_id) {
            Some(Ok(app)) => cron_room(gw, app).await?,
            _ => 0,
        };
        rooms.insert(app_id.clone(), room);
    }
    let room = rooms.get_mut(app_id).expect("inserted above");
    if *room == 0 {
        return Ok(false);
    }
    *room -= 1;
    Ok(true)
}

/// Splits one shard's creates into runs of consecutive items whose encoding fits in one
/// log entry of `max_bytes` (an item alone always fits: bodies are far smaller).
fn entries_within(
    items: Vec<(usize, Creation)>,
    max_bytes: usize,
) -> impl Iterator<Item = Vec<(usize, Creation)>> {
    /// Room for the command's framing and an item's idempotency key.
    const PER_ITEM: usize = 512;
    let mut entries: Vec<Vec<(usize, Creation)>> = vec![];
    let mut bytes = 0;
    for item in items {
        let size = item.1.schedule.encoded_len() + PER_ITEM;
        match entries.last_mut() {
            Some(entry) if bytes + size <= max_bytes => entry.push(item),
            _ => {
                entries.push(vec![item]);
                bytes = 0;
            }
        }
        bytes += size;
    }
    entries.into_iter()
}

fn created_item(s: &Schedule, replayed: Option<bool>) -> BatchItem {
    BatchItem {
        status_code: 201,
        schedule: Some(created_view(s)),
        status_message: None,
        replayed,
    }
}

fn error_item(e: &ApiError) -> BatchItem {
    BatchItem {
        status_code: e.code,
        schedule: None,
        status_message: Some(e.message.clone()),
        replayed: None,
    }
}

#[utoipa::path(get, path = "/goscheduler/schedules/{id}", tag = "schedules", params(("id" = String, Path)),
    responses((status = 200, body = Envelope<ScheduleData>), (status = 404, body = Failure)))]
pub async fn get(
    State(gw): State<Gateway>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let (_, s) = touchable_schedule(&gw, &caller, &raw).await?;
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
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<Response, ApiError> {
    let (id, shard) =
        locate(&raw, gw.config.shards)?.ok_or_else(|| ApiError::not_found("not found"))?;
    caller.may_touch_schedule(&gw, shard, id).await?;
    let deleted = gw
        .router
        .delete_schedule(shard, id, caller.actor(&gw))
        .await?;
    Ok(ok(
        200,
        1,
        ScheduleData {
            schedule: created_view(&deleted),
        },
    ))
}
