//! Node configuration: defaults → TOML file → `GOSCHED_*` environment, validated at start.
//!
//! With no file at all a node runs a single-node cluster on 127.0.0.1:8080 (HTTP) and
//! 127.0.0.1:9090 (gRPC), keeping its data in `./data/node1`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, NodeInfo};
pub use crate::tls::TlsSettings;

/// A member of the cluster as the config names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub id: NodeId,
    pub grpc_addr: String,
    pub http_addr: String,
}

impl Peer {
    pub fn info(&self) -> NodeInfo {
        NodeInfo {
            grpc_addr: self.grpc_addr.clone(),
            http_addr: self.http_addr.clone(),
        }
    }
}

/// Dial a peer at another address than the one it advertises (a port map, a proxy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dial {
    pub id: NodeId,
    pub grpc_addr: String,
}

/// Raft timing and log compaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RaftSettings {
    pub heartbeat_ms: u64,
    pub election_min_ms: u64,
    pub election_max_ms: u64,
    /// Build a snapshot once this many entries were applied since the last one.
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot (for followers a little behind).
    pub keep_after_snapshot: u64,
    /// How messages to peers are encoded: `binary` (the default), or `json` while a cluster
    /// is upgraded from a build that reads nothing else (every build reads both).
    pub wire_codec: crate::store::codec::Codec,
    /// How long, at most, a node holds its next proposal of single creates for a shard
    /// after one of at least four ended, while the callers just answered may send their
    /// next (it goes as soon as as many creates wait as the last proposal and its waiting
    /// neighbours had). Larger proposals share Raft's per-entry work; 0 turns it off.
    /// Tokio's timers tick in milliseconds: the wait ends within a millisecond after.
    pub create_linger_us: u64,
}

impl Default for RaftSettings {
    fn default() -> Self {
        RaftSettings {
            heartbeat_ms: 250,
            election_min_ms: 1500,
            election_max_ms: 3000,
            snapshot_every: 50_000,
            keep_after_snapshot: 5_000,
            wire_codec: Default::default(),
            create_linger_us: 1_000,
        }
    }
}

/// Who may use the REST API and the admin gRPC service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthSettings {
    /// The cluster's admin bearer token (at least 16 characters); empty: no authentication
    /// (the single-node default). Prefer `admin_token_file` in production.
    pub admin_token: String,
    /// A file holding the admin token (read at start, surrounding whitespace dropped).
    pub admin_token_file: Option<PathBuf>,
}

/// Shortest admin token accepted.
const MIN_TOKEN_LEN: usize = 16;

impl AuthSettings {
    /// The admin token in force, if any.
    pub fn admin_token(&self) -> anyhow::Result<Option<String>> {
        let token = match &self.admin_token_file {
            Some(file) => std::fs::read_to_string(file)
                .map_err(|e| anyhow::anyhow!("auth.admin_token_file {}: {e}", file.display()))?
                .trim()
                .to_string(),
            None => self.admin_token.clone(),
        };
        if token.is_empty() {
            return Ok(None);
        }
        anyhow::ensure!(
            token.len() >= MIN_TOKEN_LEN && token.bytes().all(|b| b.is_ascii_graphic()),
            "the admin token must be at least {MIN_TOKEN_LEN} visible ASCII characters"
        );
        Ok(Some(token))
    }
}

/// Where callbacks may go (the SSRF guard, `callback::guard`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CallbackSettings {
    /// CIDRs, addresses or host names callbacks may reach although they lie in a refused
    /// range (loopback, link-local, private, CGNAT, multicast). Empty by default.
    pub allow: Vec<String>,
    /// Follow redirects (up to 5, each target checked by the guard). Off by default: a
    /// redirect answer is the call's status (a FAILURE).
    pub follow_redirects: bool,
    /// A PEM file of CA certificates `https` callbacks trust besides the system's (an
    /// internal CA, say). None by default: the system's trust store only.
    pub ca_file: Option<std::path::PathBuf>,
}

impl CallbackSettings {
    /// The guard these settings describe, refusing `own` (the cluster's addresses) always.
    pub fn guard(
        &self,
        own: impl IntoIterator<Item = std::net::SocketAddr>,
    ) -> anyhow::Result<crate::callback::guard::Guard> {
        crate::callback::guard::Guard::new(&self.allow, own).map_err(anyhow::Error::msg)
    }

    /// The certificates of `ca_file` (none without one); an unreadable file, one without a
    /// certificate or with one rustls cannot take as a trust anchor is an error.
    pub fn extra_roots(&self) -> anyhow::Result<Vec<rustls_pki_types::CertificateDer<'static>>> {
        use rustls_pki_types::pem::PemObject;
        let Some(path) = &self.ca_file else {
            return Ok(vec![]);
        };
        let at = |e: &dyn std::fmt::Display| {
            anyhow::anyhow!("callbacks.ca_file {}: {e}", path.display())
        };
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| at(&e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| at(&e))?;
        anyhow::ensure!(!certs.is_empty(), at(&"no PEM certificate in it"));
        let mut store = rustls::RootCertStore::empty();
        for cert in &certs {
            store.add(cert.clone()).map_err(|e| at(&e))?;
        }
        Ok(certs)
    }
}

/// How this node fires the runs of the shards it leads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FiringSettings {
    /// Most callbacks in flight at once on this node.
    pub concurrency: usize,
    /// Most callbacks in flight at once for one app (its fair share).
    pub per_app_concurrency: usize,
    /// Most runs claimed and not yet finished on this node (back-pressure on claiming).
    pub max_outstanding: usize,
    /// Claims are committed this long before the runs' second, so they fire on it.
    pub claim_ahead_ms: u64,
    /// Added to a claim's deadline beyond the app's timeouts and retries: how long a
    /// claimer cut off from its peers has to report the outcome before another node re-fires.
    pub claim_margin_ms: u64,
    /// On a graceful stop (SIGTERM), how long the callbacks in flight may take to finish
    /// and commit their outcomes, after leadership has been handed over.
    pub drain_ms: u64,
}

impl Default for FiringSettings {
    fn default() -> Self {
        FiringSettings {
            concurrency: 512,
            per_app_concurrency: 64,
            max_outstanding: 100_000,
            claim_ahead_ms: 300,
            claim_margin_ms: 10_000,
            drain_ms: 10_000,
        }
    }
}

/// Bounds on what one request may ask of a node (each answered with a 4xx/503 naming it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Largest payload of any schedule, bytes: the ceiling of every app's `payloadSize`.
    pub max_payload_bytes: usize,
    /// Largest body of a single request, bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Largest body of a batch create, bytes (413 beyond).
    pub max_batch_body_bytes: usize,
    /// Largest log entry a create may become, bytes: a batch larger than this is split
    /// into several entries. Far below the transport's message cap, so every entry fits.
    pub max_entry_bytes: usize,
    /// How far ahead a one-time schedule may be due, days (400 beyond). 100 years by
    /// default: the wiki's own example schedules 29 years ahead.
    pub max_schedule_ahead_days: u32,
    /// Most SCHEDULED crons one app may have (429 beyond).
    pub max_crons_per_app: usize,
    /// Most REST requests a node works on at once (503 with `Retry-After` beyond).
    pub max_concurrent_requests: usize,
    /// Most time a REST request may take before it is answered 503.
    pub request_timeout_ms: u64,
    /// Most gRPC requests (Raft, forwards, admin) one peer connection may have in work at
    /// once: beyond it requests are refused at once (`RESOURCE_EXHAUSTED`).
    pub max_concurrent_peer_requests: usize,
    /// Most pending (not yet finished) schedules and runs one app may have (429 beyond),
    /// shared among the app's shards in proportion to its partitions there.
    pub max_pending_per_app: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload_bytes: 64 << 10,
            max_body_bytes: 1 << 20,
            max_batch_body_bytes: 16 << 20,
            max_entry_bytes: 4 << 20,
            max_schedule_ahead_days: 36_500,
            max_crons_per_app: 1000,
            max_concurrent_requests: 1024,
            request_timeout_ms: 30_000,
            max_concurrent_peer_requests: 4096,
            max_pending_per_app: 10_000_000,
        }
    }
}

impl Limits {
    fn validate(&self) -> anyhow::Result<()> {
        let cap = crate::raft::peers::MAX_MESSAGE_BYTES;
        anyhow::ensure!(
            (1..=1 << 20).contains(&self.max_payload_bytes),
            "limits.max_payload_bytes must be within 1..=1048576"
        );
        anyhow::ensure!(
            self.max_body_bytes > self.max_payload_bytes
                && self.max_batch_body_bytes >= self.max_body_bytes,
            "limits must satisfy max_payload_bytes < max_body_bytes <= max_batch_body_bytes"
        );
        anyhow::ensure!(
            self.max_entry_bytes >= 2 * self.max_body_bytes && self.max_entry_bytes <= cap / 4,
            "limits.max_entry_bytes must be at least 2 x max_body_bytes and at most {} (a quarter of the transport's message cap)",
            cap / 4
        );
        anyhow::ensure!(
            (1..=36_500).contains(&self.max_schedule_ahead_days),
            "limits.max_schedule_ahead_days must be within 1..=36500"
        );
        anyhow::ensure!(
            self.max_concurrent_requests > 0
                && self.request_timeout_ms >= 1000
                && self.max_crons_per_app > 0
                && self.max_concurrent_peer_requests > 0
                && self.max_pending_per_app > 0,
            "limits.max_concurrent_requests, max_concurrent_peer_requests, max_crons_per_app and max_pending_per_app must be positive and limits.request_timeout_ms at least 1000"
        );
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    /// This node's id; never reused for another node.
    pub node_id: NodeId,
    /// Name of the cluster: messages for another cluster are refused.
    pub cluster_id: String,
    /// Where the REST gateway listens (and what peers are told).
    pub http_addr: String,
    /// Where the gRPC transport and admin service listen (and what peers are told).
    pub grpc_addr: String,
    /// RocksDB and snapshot files live here.
    pub data_dir: PathBuf,
    /// Number of shard groups (fixed for the life of the cluster).
    pub shards: u32,
    /// Partitions given to an app registered with `partitions: 0`.
    pub default_partitions: u32,
    /// Initialise the cluster with `peers` as voters if it was never initialised.
    /// Exactly one node of a new cluster sets it; a restart never re-initialises.
    pub bootstrap: bool,
    /// The cluster's initial members (including this node). Empty: this node alone.
    pub peers: Vec<Peer>,
    /// Keep shard leaders spread over the voters (leader transfer on start and on return).
    pub balance_leaders: bool,
    /// Per-peer dial addresses overriding what peers advertise (this node only).
    pub dial: Vec<Dial>,
    /// Most a node's wall clock may be off a majority of the voters' for it to lead groups
    /// and fire runs (measured continuously; see `skew`).
    pub max_clock_offset_ms: u64,
    /// IANA zone of `YYYY-MM-DD HH:MM:SS` times in queries (RFC 3339 times carry their own).
    pub time_zone: String,
    pub raft: RaftSettings,
    pub firing: FiringSettings,
    pub limits: Limits,
    pub callbacks: CallbackSettings,
    pub auth: AuthSettings,
    pub tls: TlsSettings,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            node_id: 1,
            cluster_id: "goscheduler".into(),
            http_addr: "127.0.0.1:8080".into(),
            grpc_addr: "127.0.0.1:9090".into(),
            data_dir: PathBuf::from("data/node1"),
            shards: 8,
            default_partitions: 5,
            bootstrap: true,
            peers: vec![],
            balance_leaders: true,
            dial: vec![],
            max_clock_offset_ms: 500,
            time_zone: "UTC".into(),
            raft: RaftSettings::default(),
            firing: FiringSettings::default(),
            limits: Limits::default(),
            callbacks: CallbackSettings::default(),
            auth: AuthSettings::default(),
            tls: TlsSettings::default(),
        }
    }
}

impl Config {
    /// Loads defaults, then `file` if given, then `GOSCHED_*` variables (`GOSCHED_RAFT__HEARTBEAT_MS`
    /// for nested keys), and validates the result.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        if let Some(f) = file {
            anyhow::ensure!(f.exists(), "config file {} not found", f.display());
            fig = fig.merge(Toml::file(f));
        }
        let config: Config = fig.merge(Env::prefixed("GOSCHED_").split("__")).extract()?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(self.node_id > 0, "node_id must be positive");
        anyhow::ensure!(
            (1..=256).contains(&self.shards),
            "shards must be within 1..=256"
        );
        anyhow::ensure!(
            self.default_partitions > 0,
            "default_partitions must be positive"
        );
        anyhow::ensure!(!self.cluster_id.is_empty(), "cluster_id must not be empty");
        let f = &self.firing;
        anyhow::ensure!(
            f.concurrency > 0 && f.per_app_concurrency > 0 && f.max_outstanding > 0,
            "firing.concurrency, firing.per_app_concurrency and firing.max_outstanding must be positive"
        );
        anyhow::ensure!(
            f.claim_ahead_ms < 1000,
            "firing.claim_ahead_ms must be below 1000"
        );
        anyhow::ensure!(
            self.max_clock_offset_ms >= 10,
            "max_clock_offset_ms must be at least 10"
        );
        anyhow::ensure!(
            f.claim_margin_ms > 2 * self.max_clock_offset_ms,
            "firing.claim_margin_ms must exceed twice max_clock_offset_ms (two trusted clocks may differ by that much)"
        );
        self.zone()?;
        self.limits.validate()?;
        self.callback_guard()?;
        self.callbacks.extra_roots()?;
        self.auth.admin_token()?;
        let r = &self.raft;
        anyhow::ensure!(
            r.heartbeat_ms > 0
                && r.election_min_ms > r.heartbeat_ms
                && r.election_max_ms > r.election_min_ms,
            "raft timing must satisfy 0 < heartbeat_ms < election_min_ms < election_max_ms"
        );
        anyhow::ensure!(
            r.create_linger_us <= 50_000,
            "raft.create_linger_us must be at most 50000 (50 ms)"
        );
        if !self.peers.is_empty() {
            anyhow::ensure!(
                self.peers.iter().any(|p| p.id == self.node_id),
                "peers must include this node ({})",
                self.node_id
            );
        }
        self.tls
            .validate(self.peers.iter().any(|p| p.id != self.node_id))?;
        Ok(())
    }

    /// The callbacks' SSRF guard: `callbacks.allow`, and never the REST or gRPC address of
    /// a configured member (names among them resolved now).
    pub fn callback_guard(&self) -> anyhow::Result<crate::callback::guard::Guard> {
        use std::net::ToSocketAddrs;
        let own = self
            .initial_members()
            .into_iter()
            .chain([self.me()])
            .flat_map(|p| [p.http_addr, p.grpc_addr])
            .flat_map(|a| a.to_socket_addrs().map(|a| a.collect()).unwrap_or(vec![]));
        self.callbacks.guard(own.collect::<Vec<_>>())
    }

    /// This node's address record.
    pub fn me(&self) -> Peer {
        Peer {
            id: self.node_id,
            grpc_addr: self.grpc_addr.clone(),
            http_addr: self.http_addr.clone(),
        }
    }

    /// The initial members: `peers`, or this node alone.
    pub fn initial_members(&self) -> Vec<Peer> {
        if self.peers.is_empty() {
            vec![self.me()]
        } else {
            self.peers.clone()
        }
    }

    pub fn openraft_config(&self) -> anyhow::Result<openraft::Config> {
        let r = &self.raft;
        let c = openraft::Config {
            cluster_name: self.cluster_id.clone(),
            heartbeat_interval: r.heartbeat_ms,
            election_timeout_min: r.election_min_ms,
            election_timeout_max: r.election_max_ms,
            install_snapshot_timeout: 30_000,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(r.snapshot_every),
            max_in_snapshot_log_to_keep: r.keep_after_snapshot,
            purge_batch_size: 1024,
            ..Default::default()
        };
        Ok(c.validate()?)
    }

    /// The zone of `time_zone`.
    pub fn zone(&self) -> anyhow::Result<chrono_tz::Tz> {
        self.time_zone
            .parse()
            .map_err(|_| anyhow::anyhow!("time_zone {:?} is not an IANA zone", self.time_zone))
    }

    /// The dial overrides by node id.
    pub fn dial_map(&self) -> std::collections::HashMap<NodeId, String> {
        self.dial
            .iter()
            .map(|d| (d.id, d.grpc_addr.clone()))
            .collect()
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.raft.heartbeat_ms)
    }

    /// A peer that acked a heartbeat this recently counts as alive (for handing it a
    /// group's leadership: the balancer and a graceful stop).
    pub fn peer_alive_within(&self) -> Duration {
        self.heartbeat() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_make_a_single_node_cluster() {
        let c = Config::load(None).unwrap();
        assert_eq!(c.initial_members(), vec![c.me()]);
        assert!(c.bootstrap);
        assert_eq!(c.shards, 8);
        c.openraft_config().unwrap();
    }

    #[test]
    fn a_file_overrides_defaults_and_is_validated() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("n.toml");
        std::fs::write(
            &f,
            "node_id = 2\nshards = 4\nbootstrap = false\n[raft]\nheartbeat_ms = 100\n\
             [[peers]]\nid = 2\ngrpc_addr = \"127.0.0.1:1\"\nhttp_addr = \"127.0.0.1:2\"\n",
        )
        .unwrap();
        let c = Config::load(Some(&f)).unwrap();
        assert_eq!(
            (c.node_id, c.shards, c.bootstrap, c.raft.heartbeat_ms),
            (2, 4, false, 100)
        );
        assert_eq!(c.raft.election_min_ms, 1500);

        std::fs::write(
            &f,
            "node_id = 3\n[[peers]]\nid = 1\ngrpc_addr = \"a\"\nhttp_addr = \"b\"\n",
        )
        .unwrap();
        let err = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(err.contains("peers must include this node"), "{err}");
        assert!(Config::load(Some(Path::new("/nonexistent.toml"))).is_err());
    }

    #[test]
    fn several_nodes_talk_tls_unless_knowingly_insecure() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("n.toml");
        let peers = "[[peers]]\nid = 1\ngrpc_addr = \"a\"\nhttp_addr = \"b\"\n\
                     [[peers]]\nid = 2\ngrpc_addr = \"c\"\nhttp_addr = \"d\"\n";
        let load = |tls: &str| {
            std::fs::write(&f, format!("node_id = 1\n[tls]\n{tls}\n{peers}")).unwrap();
            Config::load(Some(&f)).map_err(|e| e.to_string())
        };
        let plaintext = load("").unwrap_err();
        assert!(plaintext.contains("insecure = true"), "{plaintext}");
        load("insecure = true").unwrap();
        let partial = load("ca_file = \"ca.pem\"").unwrap_err();
        assert!(partial.contains("all of"), "{partial}");
        let certs = dir.path().join("certs");
        crate::tls::certs::init(&certs, "t").unwrap();
        crate::tls::certs::issue(&certs, 1, &[]).unwrap();
        let files = format!(
            "ca_file = \"{0}/ca.pem\"\ncert_file = \"{0}/node1.pem\"\nkey_file = \"{0}/node1.key\"",
            certs.display()
        );
        assert!(load(&files).unwrap().tls.cert_file.is_some());
        let both = load(&format!("{files}\ninsecure = true")).unwrap_err();
        assert!(both.contains("contradicts"), "{both}");
        // A single node needs no TLS.
        std::fs::write(&f, "node_id = 1\n").unwrap();
        Config::load(Some(&f)).unwrap();
    }

    #[test]
    fn a_callback_ca_file_must_hold_usable_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("n.toml");
        let load = |ca: &Path| {
            std::fs::write(&f, format!("[callbacks]\nca_file = \"{}\"\n", ca.display())).unwrap();
            Config::load(Some(&f)).map_err(|e| e.to_string())
        };
        let missing = load(&dir.path().join("none.pem")).unwrap_err();
        assert!(missing.contains("callbacks.ca_file"), "{missing}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = load(&empty).unwrap_err();
        assert!(err.contains("no PEM certificate"), "{err}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(load(&garbage).is_err());
        let certs = dir.path().join("certs");
        let ca = crate::tls::certs::init(&certs, "t").unwrap();
        let c = load(&ca).unwrap();
        assert_eq!(c.callbacks.extra_roots().unwrap().len(), 1);
    }
}
