#!/usr/bin/env python3
"""Where the nodes' CPU goes, from `perf script` output of a system-wide DWARF profile.

    perf record -a -F 99 --call-graph dwarf,32768 -o perf.data -- sleep 6   # under load
    perf script -i perf.data | scripts/bench/perf-categories.py

Each goscheduler sample is given to the component that owns its stack (the outermost frame
that names one: the state machine worker, the Raft core, the peer gRPC service, the REST
gateway, ...) and, separately, to what its innermost frames do (allocation, copying,
JSON, TLS, syscalls). Prints both tables in % of all samples of the goscheduler process.
"""
import re
import sys
from collections import Counter

# (component, stack-frame pattern), outermost-first priority: the first that matches any
# frame of the sample wins.
OWNERS = [
    ("apply: read the entries back from the log", r"sm::worker.*|try_get_log_entries", r"try_get_log_entries|RaftLogReader"),
    ("apply: decode entries (serde_json)", r"sm::worker", r"serde|Deserialize"),
    ("apply: shard logic + index writes", r"sm::worker", r"shard::|meta::logic|SmTxn|store::txn"),
    ("apply: RocksDB write of the applied batch", r"sm::worker", r"rocksdb"),
    ("apply: other (openraft state machine worker)", r"sm::worker", None),
    ("Raft core: log append (RocksDB write)", r"RaftCore|raft_core", r"LogStore.*append|RaftLogStorage.*append"),
    ("Raft core: replication (AppendEntries sends)", r"RaftCore|raft_core|replication", r"append_entries|NetAppend|replication::"),
    ("Raft core: other bookkeeping", r"RaftCore|raft_core|openraft", None),
    ("peer gRPC service (raft RPC receive, forwarded writes)", r"TransportService|tonic::transport::server|raft::service", None),
    ("router: forwarding to a leader on another node (tonic client, h2)", r"router::|tonic::client|H2ClientFuture|h2::client|hyper::proto::h2::client", None),
    ("REST gateway (HTTP/1, JSON, validation)", r"axum::|hyper::proto::h1|gateway::", None),
    ("peer h2 server framing", r"h2::server|hyper::proto::h2::server|h2::proto", None),
    ("timer / workers", r"timer::|workers::|callback::", None),
    ("tokio runtime (scheduling, wake-ups, I/O driver)", r"tokio::runtime", None),
]
LEAVES = [
    ("malloc / free", r"malloc|_int_free|cfree|free@|realloc|malloc_consolidate|unlink_chunk|__rdl_alloc|__rdl_dealloc"),
    ("memcpy / memmove", r"memmove|memcpy|memset"),
    ("serde_json", r"serde_json|serde_core"),
    ("TLS (rustls, aws-lc)", r"rustls|aws_lc"),
    ("RocksDB", r"rocksdb"),
    ("kernel: network", r"tcp_|ip_|sock_|skb|net_rx|__netif|loopback|inet_"),
    ("kernel: futex / scheduler", r"futex|schedule|finish_task_switch|try_to_wake_up|_raw_spin_unlock_irq|ttwu|select_task_rq|enqueue_task|dequeue_task|pick_next"),
    ("kernel: file I/O (WAL write/fsync)", r"ext4|jbd2|blk_|fsync|vfs_write|iowrite|nvme|virtio|filemap|xfs_|file_write"),
    ("kernel: other", r"\[kernel\]|^k:"),
    ("h2 / hyper / http", r"h2::|hyper|http::|httparse|http_parser"),
    ("tokio", r"tokio::"),
    ("openraft", r"openraft"),
]


def samples(lines):
    head, frames = None, []
    for line in lines:
        if not line.strip():
            if head is not None:
                yield head, frames
            head, frames = None, []
        elif not line.startswith((" ", "\t")):
            head = line
        else:
            parts = line.strip().split(None, 1)
            sym = parts[1] if len(parts) > 1 else parts[0]
            if "[kernel.kallsyms]" in sym:
                sym = "k:" + sym
            frames.append(sym)
    if head is not None:
        yield head, frames


def main():
    owners, leaves, threads = Counter(), Counter(), Counter()
    total = 0
    for head, frames in samples(sys.stdin):
        comm = head.split()[0] if head else "?"
        if "goscheduler" not in head and not comm.startswith(("tokio-rt", "wal-sync", "rocksdb")):
            continue
        total += 1
        threads[comm] += 1
        stack = " | ".join(frames)
        owner = None
        if comm == "wal-sync":
            owner = "WAL fsync thread (group commit)"
        elif comm.startswith("rocksdb"):
            owner = "RocksDB background (flush, compaction)"
        else:
            for name, where, inner in OWNERS:
                if re.search(where, stack) and (inner is None or re.search(inner, stack)):
                    owner = name
                    break
        owners[owner or ("kernel only" if all(f.startswith("k:") for f in frames) else "other / unwound too short")] += 1
        leaf = " | ".join(frames[:3])
        kind = next((n for n, p in LEAVES if re.search(p, leaf)), "other code")
        leaves[kind] += 1
    if not total:
        sys.exit("no goscheduler samples")
    print(f"{total} samples of goscheduler threads\n")
    for title, counter in (("component (outermost owner)", owners), ("what the innermost frames do", leaves)):
        print(f"| {title} | % of node CPU |\n| --- | --- |")
        for name, n in counter.most_common():
            print(f"| {name} | {100 * n / total:.1f} |")
        print()


if __name__ == "__main__":
    main()
