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
# What a sample's innermost frame does: user code by its symbol; kernel time by the
# syscall or interrupt found among its kernel frames.
LEAVES = [
    ("malloc / free", r"malloc|_int_free|cfree|free@|__libc_free|realloc|malloc_consolidate|unlink_chunk|tcache|__rdl_alloc|__rdl_dealloc"),
    ("memcpy / memmove / memcmp", r"memmove|memcpy|memset|memcmp"),
    ("serde_json", r"serde_json|serde_core|itoa|ryu"),
    ("TLS (rustls, aws-lc)", r"rustls|aws_lc"),
    ("RocksDB", r"rocksdb"),
    ("h2 / hyper / http", r"h2::|hyper|http::|httparse|http_parser"),
    ("tokio (tasks, channels, timers)", r"tokio::|tokio_util"),
    ("openraft", r"openraft"),
    ("goscheduler", r"goscheduler"),
]
KERNEL = [
    ("kernel: WAL write and fsync", r"fdatasync|fsync|ext4|jbd2|blk_|nvme|virtio_blk|iowrite"),
    ("kernel: futex (thread wake-ups)", r"futex"),
    ("kernel: network (loopback TCP, both ends)", r"tcp_|__x64_sys_(sendto|sendmsg|recvfrom|recvmsg|writev|readv|read|write)|sock_|net_rx|softirq|__netif|ip_"),
    ("kernel: epoll (I/O driver)", r"epoll|__x64_sys_poll"),
    ("kernel: scheduler (context switches)", r"schedule|finish_task_switch|switch_to"),
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
        if frames and frames[0].startswith("k:"):
            kstack = " | ".join(f for f in frames if f.startswith("k:"))
            kind = next((n for n, p in KERNEL if re.search(p, kstack)), "kernel: other (interrupts, page faults)")
        else:
            kind = next((n for n, p in LEAVES if frames and re.search(p, frames[0])), "other code (libc, std)")
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
