//! Starts real `goscheduler` node processes on free loopback ports, kills and restarts
//! them, and talks to them over HTTP and through `goschedctl`. Waits poll real state
//! (health, Raft status) with deadlines instead of sleeping fixed times.

use std::fs;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::proxy::Proxy;

pub const BIN: &str = env!("CARGO_BIN_EXE_goscheduler");
pub const CTL: &str = env!("CARGO_BIN_EXE_goschedctl");
pub const SHARDS: u32 = 8;

/// A free port below the kernel's ephemeral range (32768+), so no outgoing connection of
/// a concurrently running cluster can take it between choosing it and the node binding it;
/// each test process starts its walk at its own place in the range and wraps around at the
/// end (a process starting near the top once ran out after 300 ports).
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    const FIRST: u16 = 20_000;
    const PORTS: u16 = 12_000;
    static TRIED: AtomicU16 = AtomicU16::new(0);
    let start = (std::process::id() % 40) as u16 * 300;
    loop {
        let tried = TRIED.fetch_add(1, Ordering::SeqCst);
        assert!(tried < PORTS, "ran out of test ports");
        let port = FIRST + (start + tried) % PORTS;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

pub struct NodeProc {
    pub id: u64,
    pub http: String,
    pub grpc: String,
    config: PathBuf,
    log: PathBuf,
    child: std::sync::Mutex<Option<Child>>,
    /// The node's wall clock offset (libfaketime's `FAKETIME`, e.g. "+40s"), if any.
    clock: Option<String>,
    /// Extra environment of the node's process (e.g. a fault hook).
    env: Vec<(String, String)>,
}

pub struct Cluster {
    /// Configs, data and logs of every node; removed when the cluster is dropped.
    dir: tempfile::TempDir,
    pub nodes: Vec<NodeProc>,
    opts: Options,
    /// Proxies of the node-to-node links, by (from, to), when `proxied`.
    links: std::collections::HashMap<(u64, u64), Proxy>,
    pub http: reqwest::Client,
}

/// Extra TOML for every node's config.
#[derive(Default)]
pub struct Options {
    /// Top-level keys.
    pub top: &'static str,
    /// Keys of the `[raft]` table.
    pub raft: &'static str,
    /// Route every node-to-node link through a test-owned proxy (see [`Cluster::isolate`]).
    pub proxied: bool,
    /// Keys of the `[callbacks]` table; `None`: callbacks may reach 127.0.0.1 (the test
    /// receivers), as in the 3-node script's configs.
    pub callbacks: Option<&'static str>,
    /// Nodes talk mutual TLS with certificates from `goschedctl certs` (in the cluster's
    /// dir, `certs/`), and `ctl` dials them over TLS; otherwise plaintext (`insecure`).
    pub tls: bool,
}

impl Options {
    /// Leaders stay where a test puts them, and a snapshot purges every entry it covers
    /// (no log kept behind it): a node that missed entries must catch up by snapshot.
    pub fn purging_snapshots() -> Options {
        Options {
            top: "balance_leaders = false",
            raft: "keep_after_snapshot = 0\nsnapshot_every = 100000",
            ..Options::default()
        }
    }
}

/// Bytes under `dir` (`du -sb`).
pub fn bytes_in(dir: &std::path::Path) -> u64 {
    let out = Command::new("du").arg("-sb").arg(dir).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn free_addr() -> String {
    format!("127.0.0.1:{}", free_port())
}

/// Runs `goschedctl args` (no node involved), panicking on failure.
fn run_ctl(args: &[&str]) {
    let out = Command::new(CTL)
        .args(args)
        .output()
        .expect("run goschedctl");
    assert!(
        out.status.success(),
        "goschedctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn peer_toml(id: u64, http: &str, grpc: &str) -> String {
    format!("[[peers]]\nid = {id}\nhttp_addr = \"{http}\"\ngrpc_addr = \"{grpc}\"\n")
}

/// Epoch seconds now.
/// The value of environment variable `name` (sizes of the longer runs of some tests), or
/// `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// libfaketime's preload library (Debian package `faketime`).
fn faketime_lib() -> String {
    let out = Command::new("dpkg")
        .args(["-L", "libfaketime"])
        .output()
        .expect("dpkg");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.ends_with("/libfaketime.so.1"))
        .expect("libfaketime installed (apt-get install -y faketime)")
        .to_string()
}

pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `t` as a query time (`YYYY-MM-DD HH:MM:SS`, UTC).
pub fn fmt(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// A one-time schedule create body for `app` at `time`, calling back a closed port.
pub fn one_time(app: &str, time: i64) -> Value {
    serde_json::json!({
        "appId": app, "payload": "{}", "scheduleTime": time,
        "callback": {"type": "http", "details": {"url": "http://127.0.0.1:1/cb", "method": "POST"}}
    })
}

/// The wiki's callback block (`type: http` calling the healthcheck with two headers).
pub fn wiki_callback() -> Value {
    serde_json::json!({
        "type": "http",
        "details": {
            "url": "http://127.0.0.1:8080/goscheduler/healthcheck",
            "method": "GET",
            "headers": {"Content-Type": "application/json", "Accept": "application/json"}
        }
    })
}

/// Group `group` as node `node` reports it in a `goschedctl status --json` answer
/// (`Null` when that node or group is not in it).
pub fn group_on(status: &Value, node: u64, group: u64) -> Value {
    status["nodes"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|n| n["node_id"] == node)
        .and_then(|n| {
            n["groups"]
                .as_array()?
                .iter()
                .find(|g| g["group_id"] == group)
                .cloned()
        })
        .unwrap_or(Value::Null)
}

/// The keys of a JSON object, in order.
pub fn keys(v: &Value) -> Vec<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// A one-time schedule as create and delete answer it (the wiki's shape).
pub const CREATED_SHAPE: [&str; 8] = [
    "scheduleId",
    "payload",
    "appId",
    "scheduleTime",
    "Ttl",
    "partitionId",
    "scheduleGroup",
    "httpCallback",
];

/// A cron as the wiki shows it.
pub const CRON_SHAPE: [&str; 7] = [
    "scheduleId",
    "payload",
    "appId",
    "partitionId",
    "callback",
    "cronExpression",
    "status",
];

impl Cluster {
    /// Registers an active app with `partitions` partitions through node `via`.
    pub async fn register_app(&self, via: u64, app: &str, partitions: u32) {
        self.register_app_with(via, app, partitions, None).await
    }

    /// Registers an active app with `partitions` partitions and, if given, its
    /// `configuration` (limits, callback policy) through node `via`.
    pub async fn register_app_with(
        &self,
        via: u64,
        app: &str,
        partitions: u32,
        configuration: Option<Value>,
    ) {
        let mut body = serde_json::json!({"appId": app, "partitions": partitions, "active": true});
        if let Some(c) = configuration {
            body["configuration"] = c;
        }
        let (status, reply) = self
            .call(
                via,
                reqwest::Method::POST,
                "/goscheduler/apps",
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(status, 200, "register {app}: {reply}");
    }

    /// Starts `n` nodes (node 1 bootstraps) and waits until every node is healthy.
    pub async fn start(n: u64, opts: Options) -> Cluster {
        let mut cluster = Cluster {
            dir: tempfile::tempdir().unwrap(),
            nodes: vec![],
            opts,
            links: Default::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
        };
        let addrs: Vec<(String, String)> = (0..n).map(|_| (free_addr(), free_addr())).collect();
        let peers: String = (1..=n)
            .zip(&addrs)
            .map(|(id, (http, grpc))| peer_toml(id, http, grpc))
            .collect();
        for (from, to) in (1..=n).flat_map(|a| (1..=n).map(move |b| (a, b))) {
            if cluster.opts.proxied && from != to {
                let proxy = Proxy::start(addrs[(to - 1) as usize].1.clone()).await;
                cluster.links.insert((from, to), proxy);
            }
        }
        for (id, (http, grpc)) in (1..=n).zip(addrs) {
            let dial: String = (1..=n)
                .filter_map(|to| cluster.links.get(&(id, to)).map(|p| (to, p)))
                .map(|(to, p)| format!("[[dial]]\nid = {to}\ngrpc_addr = \"{}\"\n", p.addr))
                .collect();
            cluster.add_node_config(id, http, grpc, id == 1, &format!("{peers}\n{dial}"));
        }
        for id in 1..=n {
            cluster.spawn(id);
        }
        for id in 1..=n {
            cluster.wait_healthy(id, Duration::from_secs(60)).await;
        }
        if !cluster.opts.top.contains("balance_leaders = false") {
            // Let the balancer finish moving leaders, so tests start on a settled cluster.
            cluster
                .eventually("leaders settled", Duration::from_secs(60), async || {
                    cluster.settled().await
                })
                .await;
        }
        cluster
    }

    /// Whether every group is led by its preferred leader, as node 1 sees it.
    async fn settled(&self) -> bool {
        let s = self.status(1).await;
        let Some(node) = s["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["node_id"] == 1))
        else {
            return false;
        };
        node["groups"].as_array().unwrap().iter().all(|g| {
            let voters: Vec<u64> = g["voters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            let group = goscheduler::ids::GroupId(g["group_id"].as_u64().unwrap());
            goscheduler::admin::balance::preferred_leader(group, &voters) == g["leader"].as_u64()
        })
    }

    /// Writes the config of node `id` and registers it (not started).
    fn add_node_config(
        &mut self,
        id: u64,
        http: String,
        grpc: String,
        bootstrap: bool,
        peers: &str,
    ) {
        let dir = self.dir.path();
        let config = dir.join(format!("node{id}.toml"));
        let text = format!(
            "node_id = {id}\ncluster_id = \"it\"\nhttp_addr = \"{http}\"\ngrpc_addr = \"{grpc}\"\n\
             data_dir = \"{}\"\nshards = {SHARDS}\nbootstrap = {bootstrap}\n{}\n\
             [raft]\nheartbeat_ms = 100\nelection_min_ms = 800\nelection_max_ms = 1600\n{}\n\n\
             [callbacks]\n{}\n\n[tls]\n{}\n\n{peers}",
            dir.join(format!("data{id}")).display(),
            self.opts.top,
            self.opts.raft,
            self.opts.callbacks.unwrap_or("allow = [\"127.0.0.1\"]"),
            self.tls_toml(id),
        );
        fs::write(&config, text).unwrap();
        self.nodes.push(NodeProc {
            id,
            http,
            grpc,
            config,
            log: dir.join(format!("node{id}.log")),
            child: Default::default(),
            clock: None,
            env: vec![],
        });
    }

    /// The `[tls]` keys of node `id` (its certificate issued now, with TLS on).
    fn tls_toml(&self, id: u64) -> String {
        if !self.opts.tls {
            return "insecure = true".into();
        }
        let certs = self.certs_dir();
        if !certs.join("ca.pem").exists() {
            run_ctl(&["certs", "init", "--dir", certs.to_str().unwrap()]);
        }
        run_ctl(&[
            "certs",
            "issue",
            "--dir",
            certs.to_str().unwrap(),
            "--node",
            &id.to_string(),
        ]);
        format!(
            "ca_file = \"{0}/ca.pem\"\ncert_file = \"{0}/node{id}.pem\"\nkey_file = \"{0}/node{id}.key\"",
            certs.display()
        )
    }

    /// Where the cluster's CA and node certificates are (with `tls`).
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs")
    }

    /// Starts a new node that does not bootstrap: it serves once `goschedctl add-node` adds it.
    pub fn spawn_joiner(&mut self) -> u64 {
        let id = self.nodes.len() as u64 + 1;
        let (http, grpc) = (free_addr(), free_addr());
        let peers = peer_toml(id, &http, &grpc);
        self.add_node_config(id, http, grpc, false, &peers);
        self.spawn(id);
        id
    }

    /// Cuts every link between node `id` and the others, both ways.
    pub fn isolate(&self, id: u64) {
        for ((from, to), p) in &self.links {
            if *from == id || *to == id {
                p.cut();
            }
        }
    }

    /// Cuts the links between nodes `a` and `b`, both ways (each keeps its other link).
    pub fn cut(&self, a: u64, b: u64) {
        for ((from, to), p) in &self.links {
            if (*from, *to) == (a, b) || (*from, *to) == (b, a) {
                p.cut();
            }
        }
    }

    /// Cuts (`blackhole`: silences) the links of node `id`: `inbound` ones (peers cannot
    /// reach it), `outbound` ones (it cannot reach peers), or both.
    pub fn partition(&self, id: u64, inbound: bool, outbound: bool, blackhole: bool) {
        for ((from, to), p) in &self.links {
            if (inbound && *to == id) || (outbound && *from == id) {
                if blackhole {
                    p.blackhole();
                } else {
                    p.cut();
                }
            }
        }
    }

    /// The proxy of the link from node `from` to node `to` (a proxied cluster).
    pub fn link(&self, from: u64, to: u64) -> &Proxy {
        &self.links[&(from, to)]
    }

    /// Sends `signal` (e.g. "STOP", "CONT") to node `id`'s process.
    pub fn signal(&self, id: u64, signal: &str) {
        let pid = self.node(id).child.lock().unwrap().as_ref().map(Child::id);
        if let Some(pid) = pid {
            let _ = Command::new("kill")
                .args([format!("-{signal}"), pid.to_string()])
                .status();
        }
    }

    /// Starts node `id` (stopped before) with its wall clock `offset` off (None: real), not
    /// waiting for it to be healthy.
    pub fn start_with_clock(&mut self, id: u64, offset: Option<&str>) {
        self.nodes[(id - 1) as usize].clock = offset.map(str::to_string);
        self.spawn(id);
    }

    /// Starts node `id` (stopped before) with extra environment `env` from now on, not
    /// waiting for it to be healthy.
    pub fn start_with_env(&mut self, id: u64, env: &[(&str, &str)]) {
        self.nodes[(id - 1) as usize].env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.spawn(id);
    }

    /// Node `id`'s process id, while it runs.
    pub fn pid(&self, id: u64) -> Option<u32> {
        self.node(id).child.lock().unwrap().as_ref().map(Child::id)
    }

    /// Node `id`'s resident memory, bytes (from /proc), while it runs.
    pub fn rss(&self, id: u64) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid(id)?)).ok()?;
        let kb: u64 = status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        Some(kb * 1024)
    }

    /// Node `id`'s data dir.
    pub fn data_dir(&self, id: u64) -> PathBuf {
        self.dir.path().join(format!("data{id}"))
    }

    /// Node `id`'s exit status, if its process has ended.
    pub fn exited(&self, id: u64) -> Option<std::process::ExitStatus> {
        let mut child = self.node(id).child.lock().unwrap();
        child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Restores every link.
    pub fn heal_all(&self) {
        self.links.values().for_each(Proxy::heal);
    }

    pub fn node(&self, id: u64) -> &NodeProc {
        &self.nodes[(id - 1) as usize]
    }

    fn spawn(&mut self, id: u64) {
        let node = &mut self.nodes[(id - 1) as usize];
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .unwrap();
        // `GOSCHED_BIN` runs another build of the node (e.g. an older one, for before/after
        // figures of the fault checker).
        let bin = std::env::var("GOSCHED_BIN").unwrap_or_else(|_| BIN.to_string());
        let mut command = Command::new(bin);
        if let Some(offset) = &node.clock {
            // Only the wall clock is off (NTP broken); monotonic time stays real.
            command
                .env("LD_PRELOAD", faketime_lib())
                .env("FAKETIME", offset)
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        }
        command.envs(node.env.iter().map(|(k, v)| (k, v)));
        let child = command
            .arg("--config")
            .arg(&node.config)
            .env("RUST_LOG", "info,openraft=warn")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn goscheduler");
        *node.child.lock().unwrap() = Some(child);
    }

    /// kill -9.
    pub fn kill(&mut self, id: u64) {
        let node = &mut self.nodes[(id - 1) as usize];
        if let Some(mut c) = node.child.lock().unwrap().take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM (a graceful stop); waits up to `within` for the node to exit and returns
    /// whether it exited cleanly (status 0) in time. A node still running is killed.
    pub async fn terminate(&mut self, id: u64, within: Duration) -> bool {
        let node = &mut self.nodes[(id - 1) as usize];
        let Some(mut child) = node.child.lock().unwrap().take() else {
            return false;
        };
        let pid = child.id().to_string();
        let sent = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + within;
        while sent && Instant::now() < deadline {
            if let Ok(Some(exit)) = child.try_wait() {
                return exit.success();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Kills node `id` and starts it again with its wall clock `offset` off (libfaketime,
    /// e.g. "+40s"; None: the real clock). Does not wait for it to be healthy: a node whose
    /// clock is off never is.
    pub fn restart_with_clock(&mut self, id: u64, offset: Option<&str>) {
        self.kill(id);
        self.start_with_clock(id, offset);
    }

    pub async fn restart(&mut self, id: u64) {
        self.spawn(id);
        self.wait_healthy(id, Duration::from_secs(60)).await;
    }

    pub fn url(&self, id: u64, path: &str) -> String {
        format!("http://{}{}", self.node(id).http, path)
    }

    /// Node `id`'s Prometheus metrics, as text.
    pub async fn metrics(&self, id: u64) -> String {
        let resp = self.http.get(self.url(id, "/metrics")).send().await;
        resp.unwrap().text().await.unwrap()
    }

    pub async fn wait_healthy(&self, id: u64, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let exited = match self.node(id).child.lock().unwrap().as_mut() {
                Some(child) => child.try_wait().ok().flatten(),
                None => None,
            };
            if let Some(exit) = exited {
                panic!("node {id} exited ({exit}) while starting\n{}", self.logs());
            }
            if let Ok(r) = self
                .http
                .get(self.url(id, "/goscheduler/healthcheck"))
                .send()
                .await
            {
                if r.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "node {id} not healthy in {within:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends a request and returns (HTTP status, JSON body).
    pub async fn call(
        &self,
        id: u64,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Value) {
        let (status, _, json) = self.call_with(id, method, path, body, &[]).await;
        (status, json)
    }

    /// Sends a request with extra `headers`; returns (HTTP status, headers, JSON body).
    pub async fn call_with(
        &self,
        id: u64,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self
            .http
            .request(method, self.url(id, path))
            .header("Content-Type", "application/json")
            .header("Accept", "application/json");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        match req.send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                let headers = r.headers().clone();
                let text = r.text().await.unwrap_or_default();
                let json = serde_json::from_str(&text).unwrap_or(Value::String(text));
                (status, headers, json)
            }
            Err(e) => (0, Default::default(), Value::String(e.to_string())),
        }
    }

    /// `goschedctl --addr <node> <args>`: its stdout, or a panic with its stderr.
    pub async fn ctl(&self, id: u64, args: &[&str]) -> String {
        self.try_ctl(id, args)
            .await
            .unwrap_or_else(|e| panic!("goschedctl {args:?} failed: {e}"))
    }

    /// `goschedctl --addr <node> <args>`: its stdout, or its stderr as the error.
    pub async fn try_ctl(&self, id: u64, args: &[&str]) -> Result<String, String> {
        let mut command = tokio::process::Command::new(CTL);
        if self.opts.tls {
            command.arg("--ca").arg(self.certs_dir().join("ca.pem"));
        }
        self.run_ctl_on(id, command, args).await
    }

    /// `goschedctl` without the cluster's CA (plaintext), even with TLS on.
    pub async fn try_ctl_plain(&self, id: u64, args: &[&str]) -> Result<String, String> {
        let command = tokio::process::Command::new(CTL);
        self.run_ctl_on(id, command, args).await
    }

    async fn run_ctl_on(
        &self,
        id: u64,
        mut command: tokio::process::Command,
        args: &[&str],
    ) -> Result<String, String> {
        let out = command
            .arg("--addr")
            .arg(&self.node(id).grpc)
            .args(args)
            .output()
            .await
            .expect("run goschedctl");
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8(out.stdout).unwrap())
    }

    /// `goschedctl status --json` through node `id`.
    pub async fn status(&self, id: u64) -> Value {
        serde_json::from_str(&self.ctl(id, &["status", "--json"]).await).unwrap()
    }

    /// Node `node`'s entry in the cluster status as node `via` gathers it.
    pub async fn status_of(&self, via: u64, node: u64) -> Value {
        let status = self.status(via).await;
        status["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["node_id"] == node))
            .cloned()
            .unwrap_or_else(|| panic!("node {node} not in node {via}'s status: {status}"))
    }

    /// Node `id`'s own entry in its status; `Null` while it does not answer.
    pub async fn own_status(&self, id: u64) -> Value {
        let Ok(out) = self.try_ctl(id, &["status", "--json"]).await else {
            return Value::Null;
        };
        let s: Value = serde_json::from_str(&out).unwrap();
        s["nodes"]
            .as_array()
            .and_then(|n| n.iter().find(|n| n["node_id"] == id))
            .cloned()
            .unwrap_or(Value::Null)
    }

    /// The leader of `group` as node `via` reports it.
    pub async fn leader_of(&self, via: u64, group: u64) -> Option<u64> {
        let s = self.status(via).await;
        let node = s["nodes"]
            .as_array()?
            .iter()
            .find(|n| n["node_id"] == via)?
            .clone();
        let g = node["groups"]
            .as_array()?
            .iter()
            .find(|g| g["group_id"] == group)?
            .clone();
        g["leader"].as_u64().filter(|l| *l != 0)
    }

    /// Polls a bulk job's progress until it is DONE; returns its `data`.
    pub async fn wait_bulk_done(&self, progress: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let (status, body) = self.call(3, reqwest::Method::GET, progress, None).await;
            assert_eq!(status, 200, "{body}");
            if body["data"]["state"] == "DONE" {
                return body["data"].clone();
            }
            assert!(Instant::now() < deadline, "bulk job not done: {body}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Creates `items` in one batch through node `via`; every item must be created.
    /// Returns their scheduleIds, in order.
    pub async fn create_batch(&self, via: u64, items: &[Value]) -> Vec<String> {
        let body = serde_json::json!({ "schedules": items }).to_string();
        let (status, reply) = self
            .call(
                via,
                reqwest::Method::POST,
                "/goscheduler/schedules/batch",
                Some(&body),
            )
            .await;
        assert_eq!(status, 200, "{reply}");
        let results = reply["data"]["results"].as_array().unwrap();
        assert_eq!(results.len(), items.len(), "{reply}");
        results
            .iter()
            .map(|r| {
                assert_eq!(r["statusCode"], 201, "{r}");
                r["schedule"]["scheduleId"].as_str().unwrap().to_string()
            })
            .collect()
    }

    /// Creates a schedule through node `via`; returns its id.
    pub async fn create(&self, via: u64, body: &Value) -> String {
        let (status, reply) = self
            .call(
                via,
                reqwest::Method::POST,
                "/goscheduler/schedules",
                Some(&body.to_string()),
            )
            .await;
        assert_eq!(status, 200, "create {body}: {reply}");
        reply["data"]["schedule"]["scheduleId"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// A schedule as node `via` reads it (`data.schedule`).
    pub async fn schedule(&self, via: u64, id: &str) -> Value {
        let path = format!("/goscheduler/schedules/{id}");
        let (status, reply) = self.call(via, reqwest::Method::GET, &path, None).await;
        assert_eq!(status, 200, "{id} not readable through node {via}: {reply}");
        reply["data"]["schedule"].clone()
    }

    /// Polls `check` every 200 ms until it returns true or `within` passes.
    pub async fn eventually(
        &self,
        what: &str,
        within: Duration,
        mut check: impl AsyncFnMut() -> bool,
    ) {
        let deadline = Instant::now() + within;
        while !check().await {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Builds a snapshot of every group on `nodes`, then waits until `group`'s leader (as
    /// node `nodes[0]` sees it) has purged its log up to its snapshot, which it does once no
    /// replication stream reads the entries. Answers the purged index.
    pub async fn snapshot_until_purged(&self, nodes: &[u64], group: u64) -> u64 {
        for &node in nodes {
            self.ctl(node, &["snapshot", "--all"]).await;
        }
        let mut purged = 0;
        self.eventually(
            "the group's leader purges its log",
            Duration::from_secs(20),
            async || {
                let s = self.status(nodes[0]).await;
                let leader = group_on(&s, nodes[0], group)["leader"]
                    .as_u64()
                    .unwrap_or(0);
                let g = group_on(&s, leader, group);
                purged = g["purged_index"].as_u64().unwrap_or(0);
                purged > 0 && Some(purged) == g["snapshot_index"].as_u64()
            },
        )
        .await;
        purged
    }

    /// The tail of every node's log, for failure messages.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| {
                let text = fs::read_to_string(&n.log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("--- node {} ---\n{}", n.id, tail.join("\n"))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.lock().unwrap().take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

/// The value of the unlabelled metric `name` in Prometheus `text` (0 when absent).
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Node `node`'s term of the meta group, from `goschedctl status`.
pub async fn meta_term(cluster: &Cluster, node: u64) -> u64 {
    let me = cluster.status_of(1, node).await;
    me["groups"][0]["term"].as_u64().expect("a term")
}
