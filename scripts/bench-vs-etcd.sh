#!/usr/bin/env bash
# Replicated writes side by side in one run on this machine: goscheduler creates against a
# 3-node etcd's puts, the same load generator (wrk), method and connection count, one after
# the other, round by round (this box is noisy: only ratios within one run mean anything).
#
#   scripts/cluster.sh up && scripts/bench-vs-etcd.sh [--secs 15] [--conns 22] [--rounds 2] [--batch 100]
#
# Per round: single creates (POST /goscheduler/schedules, one wrk per node, --conns
# connections each), the same against etcd 3.4 (POST /v3/kv/put through its JSON gateway,
# a new key per put, fsync on: etcd's defaults), then batch creates of --batch items. Prints
# requests/s, items/s, p50/p99 per system (p99: the worst of the three wrk processes) and
# the ratios. Installs etcd-server, etcd-client and wrk when missing; etcd runs from a temp dir and is
# stopped at the end; the bench app's schedules (a day ahead) are deleted at the end.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"

SECS=15 CONNS=22 ROUNDS=2 BATCH=100
while [ $# -gt 0 ]; do
    case "$1" in
        --secs) SECS=$2; shift 2 ;;
        --conns) CONNS=$2; shift 2 ;;
        --rounds) ROUNDS=$2; shift 2 ;;
        --batch) BATCH=$2; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
export GOSCHED_ADMIN_TOKEN="${GOSCHED_ADMIN_TOKEN:-dev-admin-token-change-me}"
REST=(127.0.0.1:8081 127.0.0.1:8082 127.0.0.1:8083)
APP=bench-vs-etcd

# etcdctl (the health check) comes in its own package on Debian.
command -v etcd >/dev/null && command -v etcdctl >/dev/null && command -v wrk >/dev/null ||
    ensure_system_packages etcd-server etcd-client wrk
for r in "${REST[@]}"; do
    curl -sf "http://$r/goscheduler/healthcheck" >/dev/null ||
        { echo "no goscheduler node at $r: start the cluster with scripts/cluster.sh up" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/bench-vs-etcd.XXXXXX)
ETCD_PIDS=()
cleanup() {
    for p in "${ETCD_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- etcd: 3 members on loopback, next to the cluster ---
members="e1=http://127.0.0.1:23801,e2=http://127.0.0.1:23802,e3=http://127.0.0.1:23803"
for i in 1 2 3; do
    etcd --name "e$i" --data-dir "$WORK/e$i" \
        --listen-client-urls "http://127.0.0.1:2379$i" --advertise-client-urls "http://127.0.0.1:2379$i" \
        --listen-peer-urls "http://127.0.0.1:2380$i" --initial-advertise-peer-urls "http://127.0.0.1:2380$i" \
        --initial-cluster "$members" --initial-cluster-state new --initial-cluster-token bench \
        --logger zap --log-level error >"$WORK/e$i.log" 2>&1 &
    ETCD_PIDS+=($!)
done
ETCD=(127.0.0.1:23791 127.0.0.1:23792 127.0.0.1:23793)
for _ in $(seq 1 100); do
    ETCDCTL_API=3 etcdctl --endpoints "$(IFS=,; echo "${ETCD[*]}")" endpoint health >/dev/null 2>&1 && break
    sleep 0.2
done
ETCDCTL_API=3 etcdctl --endpoints "$(IFS=,; echo "${ETCD[*]}")" endpoint health >/dev/null 2>&1 ||
    { echo "etcd did not come up; see $WORK/e*.log" >&2; exit 1; }

# --- the bench app and the bodies ---
auth=(-H "Authorization: Bearer $GOSCHED_ADMIN_TOKEN")
curl -s "${auth[@]}" -XPOST "http://${REST[0]}/goscheduler/apps" \
    -d "{\"appId\":\"$APP\",\"partitions\":16,\"active\":true}" >/dev/null
at=$(( $(date +%s) + 86400 ))
one="{\"appId\":\"$APP\",\"payload\":\"{}\",\"scheduleTime\":$at,\"callback\":{\"type\":\"http\",\"details\":{\"url\":\"http://127.0.0.1:9/cb\",\"method\":\"POST\",\"headers\":{}}}}"
echo "$one" >"$WORK/single.json"
python3 -c "import sys,json; o=json.loads(sys.argv[1]); print(json.dumps({'schedules':[o]*int(sys.argv[2])}))" "$one" "$BATCH" >"$WORK/batch.json"

# ms of a wrk latency figure (e.g. 812.00us, 70.12ms, 1.02s)
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n *= 1; else if (v ~ /s$/) n *= 1000; printf "%.1f", n }'; }

# Runs one wrk per target in parallel: $1 label, $2 items per request, $3 path, $4 script,
# then the targets. Prints "label req/s items/s p50 p99 non2xx" and appends it to $WORK/results.
drive() {
    local label=$1 items=$2 path=$3 script=$4; shift 4
    local i=0 pids=()
    for t in "$@"; do
        i=$((i + 1))
        KEY_PREFIX="$label-$i-$RANDOM" wrk -t1 -c"$CONNS" -d"${SECS}s" --latency -s "$script" \
            "http://$t$path" >"$WORK/wrk.$i" 2>&1 &
        pids+=($!)
    done
    wait "${pids[@]}"
    local rps=0 p50=0 p99=0 bad=0
    for j in $(seq 1 $i); do
        local f="$WORK/wrk.$j"
        grep -q "Requests/sec" "$f" || { echo "wrk failed:"; cat "$f"; exit 1; } >&2
        rps=$(awk -v a="$rps" '/Requests\/sec/ { printf "%.0f", a + $2 }' "$f")
        local q50 q99 n
        q50=$(to_ms "$(awk '$1 == "50%" { print $2 }' "$f")")
        q99=$(to_ms "$(awk '$1 == "99%" { print $2 }' "$f")")
        n=$(awk '/Non-2xx/ { print $NF }' "$f"); n=${n:-0}
        p50=$(awk -v a="$p50" -v b="$q50" 'BEGIN { print (b > a ? b : a) }')
        p99=$(awk -v a="$p99" -v b="$q99" 'BEGIN { print (b > a ? b : a) }')
        bad=$((bad + n))
    done
    printf "%-22s %9s %10s %8s %8s %7s\n" "$label" "$rps" "$((rps * items))" "$p50" "$p99" "$bad" | tee -a "$WORK/results"
}

echo "goscheduler (3 nodes, $(nproc) cores) vs etcd $(etcd --version | awk '/etcd Version/ { print $3 }') (3 members), $CONNS connections per node, ${SECS} s per run"
printf "%-22s %9s %10s %8s %8s %7s\n" "run" "req/s" "items/s" "p50 ms" "p99 ms" "non-2xx"
for round in $(seq 1 "$ROUNDS"); do
    BODY_FILE="$WORK/single.json" drive "r$round goscheduler single" 1 /goscheduler/schedules scripts/bench/post-body.lua "${REST[@]}"
    drive "r$round etcd put" 1 "" scripts/bench/etcd-put.lua "${ETCD[@]}"
    BODY_FILE="$WORK/batch.json" drive "r$round goscheduler batch$BATCH" "$BATCH" /goscheduler/schedules/batch scripts/bench/post-body.lua "${REST[@]}"
done
echo
awk '
    $3 == "single" { s[$1] = $4 } $2 == "etcd" { e[$1] = $4 } $3 ~ /^batch/ { b[$1] = $5 }
    END { for (r in e) printf "%s: single creates / etcd puts %.2f   batch items / etcd puts %.1f\n", r, s[r] / e[r], b[r] / e[r] }
' "$WORK/results" | sort

# The bench's schedules are a day ahead: delete them (a bulk job on the cluster).
curl -s "${auth[@]}" -XPOST "http://${REST[0]}/goscheduler/apps/$APP/bulk-action/delete?start_time=$(date -u -d @$((at - 60)) +%Y-%m-%dT%H:%M:%SZ)&end_time=$(date -u -d @$((at + 60)) +%Y-%m-%dT%H:%M:%SZ)" >/dev/null || true
