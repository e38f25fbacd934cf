//! The node's one RocksDB: every group's Raft log, vote and state machine, in shared
//! column families under group-prefixed keys, so all groups share one WAL (one fsync
//! serves many groups' appends).

pub mod codec;
pub mod keys;
pub mod txn;

pub use codec::{decode, encode, encoded_len};

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};

/// Raft log entries: `group ‖ index` → entry.
pub const CF_LOG: &str = "raft_log";
/// Raft's own durable state per group: `group ‖ name` → vote, committed, purged.
pub const CF_RAFT: &str = "raft_state";
/// State machine data: `group ‖ table ‖ key` → value. Written only by apply and snapshot install.
pub const CF_SM: &str = "sm_data";
/// State machine bookkeeping: `group ‖ name` → last applied, membership, install marker.
pub const CF_SM_META: &str = "sm_meta";

const ALL_CFS: [&str; 4] = [CF_LOG, CF_RAFT, CF_SM, CF_SM_META];

/// All memtables of all column families together.
const MEMTABLES_BYTES: usize = 384 << 20;
/// One memtable of the two column families every write goes to (log, state machine), and
/// the L0 files that wait before a compaction into the next level. Each such compaction
/// rewrites most of that level (new schedules' time and app index keys fall all over it),
/// so fewer, larger ones cost less: with RocksDB's 64 MiB and 4, compaction took a third of
/// the nodes' CPU by 9 million schedules (perf), 8 % at 1 million.
const BUSY_MEMTABLE_BYTES: usize = 128 << 20;
const BUSY_L0_FILES: i32 = 8;
/// The WAL files kept before the column families holding the oldest are flushed.
const MAX_WAL_BYTES: u64 = 512 << 20;
/// Data, index and filter blocks of every column family.
const BLOCK_CACHE_BYTES: usize = 256 << 20;

/// Opens (creating if needed) the node's database under `dir`.
pub fn open(dir: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut opts = Options::default();
    opts.create_if_missing(true);
    opts.create_missing_column_families(true);
    opts.set_max_background_jobs(2);
    opts.set_bytes_per_sync(1 << 20);
    // Memory stays bounded however many schedules are stored: all memtables together, and
    // one block cache that also holds the SST index and filter blocks.
    opts.set_db_write_buffer_size(MEMTABLES_BYTES);
    // A column family written rarely (votes, snapshot meta) holds the oldest WAL file: with
    // no cap the WAL grew to ~2.5 GB per node before RocksDB flushed it, then the forced
    // flush stalled creates (28 % of the rate for that million, in the 10M run).
    opts.set_max_total_wal_size(MAX_WAL_BYTES);
    let cache = rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES);
    let cfs = ALL_CFS.iter().map(|name| {
        let mut table = rocksdb::BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        // Partitioned: a lookup reads one small index and filter partition, not the
        // whole file's. With whole-file blocks, once the data outgrew the cache (about
        // 3 million schedules) every create's existence check re-read and re-checksummed
        // filter blocks of hundreds of KiB: 70 % of the box's CPU, creates 28,000 → 10,000/s.
        table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
        table.set_partition_filters(true);
        table.set_pin_top_level_index_and_filter(true);
        table.set_cache_index_and_filter_blocks_with_high_priority(true);
        // Point reads of absent keys (a new schedule id, a run not yet materialised) stop
        // at the filter instead of reading blocks.
        table.set_bloom_filter(10.0, false);
        let mut cf_opts = Options::default();
        cf_opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
        cf_opts.set_block_based_table_factory(&table);
        if [CF_LOG, CF_SM].contains(name) {
            cf_opts.set_write_buffer_size(BUSY_MEMTABLE_BYTES);
            cf_opts.set_level_zero_file_num_compaction_trigger(BUSY_L0_FILES);
        }
        ColumnFamilyDescriptor::new(*name, cf_opts)
    });
    Ok(Arc::new(DB::open_cf_descriptors(&opts, dir, cfs)?))
}

/// What the node's RocksDB holds in memory, bytes, by part: memtables, table readers (what
/// of the SST indexes and filters is outside the block cache), the block cache.
pub fn memory(db: &DB) -> Vec<(&'static str, u64)> {
    let mut parts = match rocksdb::perf::get_memory_usage_stats(Some(&[db]), None) {
        Ok(m) => vec![
            ("rocksdb_memtables", m.mem_table_total),
            ("rocksdb_table_readers", m.mem_table_readers_total),
        ],
        Err(e) => {
            tracing::warn!("reading RocksDB's memory usage: {e}");
            Vec::new()
        }
    };
    // One cache serves every column family (the stats above count only caches passed in).
    let cf = db.cf_handle(CF_SM).expect("sm column family");
    if let Ok(Some(bytes)) = db.property_int_value_cf(cf, "rocksdb.block-cache-usage") {
        parts.push(("rocksdb_block_cache", bytes));
    }
    parts
}

/// Free bytes on the file system holding `path` (for an unprivileged writer).
pub fn free_bytes(path: &Path) -> Option<u64> {
    let s = rustix::fs::statvfs(path).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Space a node keeps free on its data dir's file system: below it, storage counts as full
/// (writes fail, a snapshot that would eat into it is refused).
pub const DISK_ROOM: u64 = 64 << 20;

/// Turns a RocksDB or codec error into the `io::Error` openraft's storage traits speak,
/// remembering the node's first I/O error (see [`first_io_error`]).
pub fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    let text = e.to_string();
    if text.starts_with("IO error") && !text.contains(AFTER_AN_EARLIER_ERROR) {
        let _ = FIRST_IO_ERROR.set(text.clone());
    }
    std::io::Error::other(text)
}

/// How RocksDB refuses every write after its WAL writer failed once: it names no cause.
const AFTER_AN_EARLIER_ERROR: &str = "previous error";

/// The node's first RocksDB I/O error (one database per process), kept because the groups
/// that write after it only hear "Writer has previous error", which names no cause.
static FIRST_IO_ERROR: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The first RocksDB I/O error this node met, if any (e.g. "No space left on device").
pub fn first_io_error() -> Option<&'static str> {
    FIRST_IO_ERROR.get().map(String::as_str)
}

#[cfg(test)]
mod tests {
    /// The only test in this process that meets an I/O error: the static is its own.
    #[test]
    fn the_first_io_error_is_kept_and_second_hand_ones_are_not() {
        assert_eq!(super::first_io_error(), None);
        let _ = super::io_err("IO error: Writer has previous error.");
        let _ = super::io_err("a codec error");
        assert_eq!(super::first_io_error(), None);
        let _ = super::io_err("IO error: No space left on device: While appending to file");
        let _ = super::io_err("IO error: Writer has previous error.");
        let _ = super::io_err("IO error: something later");
        assert_eq!(
            super::first_io_error(),
            Some("IO error: No space left on device: While appending to file")
        );
    }
}
