//! goschedctl's schedule and app commands: they talk REST to any node's gateway (so they
//! work where only the REST port is reachable), print the answer's `data` as a table, or
//! as JSON with `--json`, and exit non-zero with the server's message on a failure.

use reqwest::Method;
use serde_json::{json, Value};

/// Commands on one schedule.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ScheduleCmd {
    /// Show a schedule.
    Get { id: String },
    /// Pause a cron.
    Pause { id: String },
    /// Resume a paused cron (`--catch-up`: fire the runs missed while paused).
    Resume {
        id: String,
        #[arg(long)]
        catch_up: bool,
    },
    /// One extra run of a cron, due now.
    Trigger { id: String },
    /// Delete a schedule (a cron becomes DELETED).
    Delete { id: String },
    /// Change a schedule in place (PATCH): any of the fields below.
    Update {
        id: String,
        #[arg(long)]
        cron: Option<String>,
        #[arg(long)]
        timezone: Option<String>,
        #[arg(long)]
        payload: Option<String>,
        /// A one-time schedule's new time, epoch seconds.
        #[arg(long)]
        time: Option<i64>,
    },
    /// A schedule's audit log, newest first.
    Audit {
        #[arg(long)]
        app: String,
        id: String,
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// Commands on apps.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AppCmd {
    /// List the apps.
    List,
    /// Register an app.
    Register {
        id: String,
        #[arg(long, default_value_t = 8)]
        partitions: u32,
    },
    Activate {
        id: String,
    },
    Deactivate {
        id: String,
    },
}

/// A node's REST gateway, with the admin token when given.
pub struct Rest {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Rest {
    pub fn new(addr: &str, token: Option<String>) -> anyhow::Result<Rest> {
        let base = match addr.starts_with("http://") || addr.starts_with("https://") {
            true => addr.trim_end_matches('/').to_string(),
            false => format!("http://{addr}"),
        };
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(Rest { http, base, token })
    }

    /// `data` of the answer to `method path` with `body`, or the server's message.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let reply = req
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach {}: {e}", self.base))?;
        let code = reply.status();
        let v: Value = reply.json().await.unwrap_or_default();
        if !code.is_success() || v["status"]["statusType"] == "Fail" {
            let message = v["status"]["statusMessage"]
                .as_str()
                .unwrap_or("no message");
            anyhow::bail!("{code}: {message}");
        }
        Ok(v["data"].clone())
    }
}

/// Runs a schedule command; answers what to print.
pub async fn schedule(rest: &Rest, cmd: ScheduleCmd, as_json: bool) -> anyhow::Result<String> {
    let path = |id: &str, tail: &str| format!("/goscheduler/schedules/{id}{tail}");
    let data = match cmd {
        ScheduleCmd::Get { id } => rest.call(Method::GET, &path(&id, ""), None).await?,
        ScheduleCmd::Pause { id } => rest.call(Method::PUT, &path(&id, "/pause"), None).await?,
        ScheduleCmd::Resume { id, catch_up } => {
            let tail = if catch_up {
                "/resume?catchUp=true"
            } else {
                "/resume"
            };
            rest.call(Method::PUT, &path(&id, tail), None).await?
        }
        ScheduleCmd::Trigger { id } => {
            rest.call(Method::POST, &path(&id, "/trigger"), None)
                .await?
        }
        ScheduleCmd::Delete { id } => rest.call(Method::DELETE, &path(&id, ""), None).await?,
        ScheduleCmd::Update {
            id,
            cron,
            timezone,
            payload,
            time,
        } => {
            let mut patch = json!({});
            for (k, v) in [
                ("cronExpression", cron.map(Value::from)),
                ("timezone", timezone.map(Value::from)),
                ("payload", payload.map(Value::from)),
                ("scheduleTime", time.map(Value::from)),
            ] {
                if let Some(v) = v {
                    patch[k] = v;
                }
            }
            rest.call(Method::PATCH, &path(&id, ""), Some(patch))
                .await?
        }
        ScheduleCmd::Audit { app, id, limit } => {
            let p = format!("/goscheduler/apps/{app}/schedules/{id}/audit-logs?limit={limit}");
            let data = rest.call(Method::GET, &p, None).await?;
            if as_json {
                return Ok(pretty(&data));
            }
            let rows = rows(
                &data["auditLogs"],
                &["atMs", "action", "node", "by", "changes"],
            );
            return Ok(table(&["AT_MS", "ACTION", "NODE", "BY", "CHANGES"], rows));
        }
    };
    if as_json {
        return Ok(pretty(&data));
    }
    Ok(schedule_table(&[data["schedule"].clone()]))
}

/// A cron's or schedule's runs, `when` past|future|all.
pub async fn runs(
    rest: &Rest,
    id: &str,
    when: &str,
    size: usize,
    as_json: bool,
) -> anyhow::Result<String> {
    let p = format!("/goscheduler/schedules/{id}/runs?when={when}&size={size}");
    let data = rest.call(Method::GET, &p, None).await?;
    if as_json {
        return Ok(pretty(&data));
    }
    Ok(schedule_table(
        data["schedules"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default(),
    ))
}

/// Runs an app command; answers what to print.
pub async fn app(rest: &Rest, cmd: AppCmd, as_json: bool) -> anyhow::Result<String> {
    let data = match cmd {
        AppCmd::List => rest.call(Method::GET, "/goscheduler/apps", None).await?,
        AppCmd::Register { id, partitions } => {
            let body = json!({"appId": id, "partitions": partitions, "active": true});
            rest.call(Method::POST, "/goscheduler/apps", Some(body))
                .await?
        }
        AppCmd::Activate { id } => {
            rest.call(
                Method::POST,
                &format!("/goscheduler/apps/{id}/activate"),
                None,
            )
            .await?
        }
        AppCmd::Deactivate { id } => {
            rest.call(
                Method::POST,
                &format!("/goscheduler/apps/{id}/deactivate"),
                None,
            )
            .await?
        }
    };
    if as_json {
        return Ok(pretty(&data));
    }
    let apps = match data.get("apps") {
        Some(list) => list.clone(),
        // Activate and deactivate answer {"appId", "Active"}, as the wiki shows.
        None => json!([{"appId": data["appId"], "partitions": data["partitions"],
            "active": data.get("active").or(data.get("Active"))}]),
    };
    let rows = rows(&apps, &["appId", "partitions", "active"]);
    Ok(table(&["APP", "PARTITIONS", "ACTIVE"], rows))
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn schedule_table(schedules: &[Value]) -> String {
    let list = Value::from(schedules.to_vec());
    let mut rows = rows(
        &list,
        &[
            "scheduleId",
            "status",
            "scheduleTime",
            "cronExpression",
            "payload",
        ],
    );
    for row in &mut rows {
        if row[4].len() > 40 {
            row[4] = format!("{}…", row[4].chars().take(39).collect::<String>());
        }
    }
    table(&["ID", "STATUS", "TIME", "CRON", "PAYLOAD"], rows)
}

/// The `fields` of each object in `list`, as text ("-" when absent).
fn rows(list: &Value, fields: &[&str]) -> Vec<Vec<String>> {
    let text = |v: &Value| match v {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    list.as_array()
        .into_iter()
        .flatten()
        .map(|item| fields.iter().map(|f| text(&item[*f])).collect())
        .collect()
}

/// Left-aligned columns under `head`.
fn table(head: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_string()
    };
    let mut out = vec![line(head.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}
