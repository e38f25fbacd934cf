//! The node's Prometheus metrics, served as text at `GET /metrics`.

use std::sync::LazyLock;

use prometheus::{
    exponential_buckets, Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::command::Groups;

pub struct Metrics {
    registry: Registry,
    /// Runs claimed by this node.
    pub claims: IntCounter,
    /// Claim entries committed by this node (each claims a batch of runs).
    pub claim_batches: IntCounter,
    /// Single creates this node's gateway took, and the proposals that carried them
    /// (`router::coalesce`: their ratio is the creates per entry).
    pub coalesced_creates: IntCounter,
    pub create_proposals: IntCounter,
    /// Callback attempts sent.
    pub fires: IntCounter,
    /// Runs finished, by status (SUCCESS, FAILURE, MISS), as proposed by this node.
    pub outcomes: IntCounterVec,
    /// How long callbacks took.
    pub callback_latency: Histogram,
    /// First call of a run minus its scheduled second.
    pub lateness: Histogram,
    /// Runs claimed by this node and not yet finished (waiting for their second, calling, retrying).
    pub queue_depth: IntGauge,
    /// Per group: log entries committed but not yet applied on this node.
    pub apply_lag: IntGaugeVec,
    /// Per peer: its wall clock minus this node's, in ms, as last measured.
    pub clock_offset: IntGaugeVec,
    /// 1 while this node trusts its wall clock (agrees with a majority of voters).
    pub clock_trusted: IntGauge,
    /// Free bytes on the data dir's file system.
    pub disk_free_bytes: IntGauge,
    /// 1 while a group of this node stopped on a storage (or other fatal) error.
    pub storage_failed: IntGauge,
    /// Memory by holder, read at each scrape: RocksDB's parts and the C heap (RocksDB's
    /// allocations go through the C library's malloc, not the Rust allocator).
    pub memory: IntGaugeVec,
}

fn seconds_histogram(name: &str, help: &str) -> Histogram {
    Histogram::with_opts(
        HistogramOpts::new(name, help).buckets(exponential_buckets(0.001, 2.0, 16).unwrap()),
    )
    .unwrap()
}

pub static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let m = Metrics {
        registry: Registry::new(),
        claims: IntCounter::new("goscheduler_claims_total", "Runs claimed by this node").unwrap(),
        claim_batches: IntCounter::new(
            "goscheduler_claim_batches_total",
            "Claim entries committed by this node",
        )
        .unwrap(),
        coalesced_creates: IntCounter::new(
            "goscheduler_coalesced_creates_total",
            "Single creates proposed together by this node",
        )
        .unwrap(),
        create_proposals: IntCounter::new(
            "goscheduler_create_proposals_total",
            "Proposals that carried this node's single creates",
        )
        .unwrap(),
        fires: IntCounter::new("goscheduler_fires_total", "Callback attempts sent").unwrap(),
        outcomes: IntCounterVec::new(
            Opts::new("goscheduler_outcomes_total", "Runs finished, by status"),
            &["status"],
        )
        .unwrap(),
        callback_latency: seconds_histogram(
            "goscheduler_callback_latency_seconds",
            "Callback round trip",
        ),
        lateness: seconds_histogram(
            "goscheduler_lateness_seconds",
            "First call of a run minus its scheduled time",
        ),
        queue_depth: IntGauge::new(
            "goscheduler_queue_depth",
            "Runs claimed by this node and not yet finished",
        )
        .unwrap(),
        apply_lag: IntGaugeVec::new(
            Opts::new(
                "goscheduler_raft_apply_lag",
                "Committed log entries not yet applied",
            ),
            &["group"],
        )
        .unwrap(),
        clock_offset: IntGaugeVec::new(
            Opts::new(
                "goscheduler_clock_offset_ms",
                "A peer's wall clock minus this node's",
            ),
            &["peer"],
        )
        .unwrap(),
        clock_trusted: IntGauge::new(
            "goscheduler_clock_trusted",
            "1 while this node's clock agrees with a majority of voters",
        )
        .unwrap(),
        disk_free_bytes: IntGauge::new(
            "goscheduler_disk_free_bytes",
            "free bytes on the data dir's file system",
        )
        .unwrap(),
        storage_failed: IntGauge::new(
            "goscheduler_storage_failed",
            "1 while a group of this node stopped on a storage error (writes answered 503)",
        )
        .unwrap(),
        memory: IntGaugeVec::new(
            Opts::new(
                "goscheduler_memory_bytes",
                "Memory by holder: RocksDB memtables, table readers, block cache; C heap in use and free",
            ),
            &["part"],
        )
        .unwrap(),
    };
    let r = &m.registry;
    r.register(Box::new(m.claims.clone())).unwrap();
    r.register(Box::new(m.claim_batches.clone())).unwrap();
    r.register(Box::new(m.coalesced_creates.clone())).unwrap();
    r.register(Box::new(m.create_proposals.clone())).unwrap();
    r.register(Box::new(m.fires.clone())).unwrap();
    r.register(Box::new(m.outcomes.clone())).unwrap();
    r.register(Box::new(m.callback_latency.clone())).unwrap();
    r.register(Box::new(m.lateness.clone())).unwrap();
    r.register(Box::new(m.queue_depth.clone())).unwrap();
    r.register(Box::new(m.apply_lag.clone())).unwrap();
    r.register(Box::new(m.clock_offset.clone())).unwrap();
    r.register(Box::new(m.clock_trusted.clone())).unwrap();
    r.register(Box::new(m.disk_free_bytes.clone())).unwrap();
    r.register(Box::new(m.storage_failed.clone())).unwrap();
    r.register(Box::new(m.memory.clone())).unwrap();
    m
});

/// The metrics in Prometheus text format, with Raft gauges read now.
pub fn render(groups: &Groups) -> String {
    for g in groups.iter() {
        let m = g.metrics();
        let committed = m.local_committed.map_or(0, |l| l.index);
        let applied = m.last_applied.map_or(0, |l| l.index);
        METRICS
            .apply_lag
            .with_label_values(&[&g.id.to_string()])
            .set(committed.saturating_sub(applied) as i64);
    }
    for (part, bytes) in crate::store::memory(groups.db())
        .into_iter()
        .chain(crate::heap::usage())
    {
        METRICS.memory.with_label_values(&[part]).set(bytes as i64);
    }
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&METRICS.registry.gather(), &mut out)
        .expect("text encoding");
    String::from_utf8(out).expect("utf-8 metrics")
}
