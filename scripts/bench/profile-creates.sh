#!/usr/bin/env bash
# Where the nodes' CPU goes under create load: wrk posts single or batch-100 creates to each
# node of the running cluster (22 connections each, 14 s) while perf samples the whole box for
# 6 s of it; prints wrk's rates and the tables of scripts/bench/perf-categories.py.
#   scripts/cluster.sh up && scripts/bench/profile-creates.sh single|batch [OUT]
# OUT.data / OUT.txt keep perf's samples (default /tmp/profile-creates). The bench app
# (bench-vs-etcd, 16 partitions) is registered if missing; schedules are a day ahead.
set -euo pipefail
source "$(dirname "$0")/../env.sh"
cd "$ROOT"
kind=${1:?single or batch}
out=${2:-/tmp/profile-creates}
export GOSCHED_ADMIN_TOKEN="${GOSCHED_ADMIN_TOKEN:-dev-admin-token-change-me}"
command -v perf >/dev/null && command -v wrk >/dev/null || ensure_system_packages linux-perf wrk
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
curl -s -H "Authorization: Bearer $GOSCHED_ADMIN_TOKEN" -XPOST http://127.0.0.1:8081/goscheduler/apps \
    -d '{"appId":"bench-vs-etcd","partitions":16,"active":true}' >/dev/null
at=$(( $(date +%s) + 86400 ))
one="{\"appId\":\"bench-vs-etcd\",\"payload\":\"{}\",\"scheduleTime\":$at,\"callback\":{\"type\":\"http\",\"details\":{\"url\":\"http://127.0.0.1:9/cb\",\"method\":\"POST\",\"headers\":{}}}}"
echo "$one" >"$work/single.json"
python3 -c "import sys,json; o=json.loads(sys.argv[1]); print(json.dumps({'schedules':[o]*100}))" "$one" >"$work/batch.json"
path=/goscheduler/schedules
[ "$kind" = batch ] && path=/goscheduler/schedules/batch
for n in 1 2 3; do
    BODY_FILE="$work/$kind.json" KEY_PREFIX="p$n$RANDOM" wrk -t1 -c22 -d14s -s scripts/bench/post-body.lua \
        "http://127.0.0.1:808$n$path" >"$work/wrk$n" 2>&1 &
done
sleep 4
perf record -a -F 99 --call-graph dwarf,32768 -o "$out.data" -- sleep 6 2>&1 | tail -1
wait
grep -H "Requests/sec" "$work"/wrk*
perf script -i "$out.data" 2>/dev/null >"$out.txt"
scripts/bench/perf-categories.py <"$out.txt"
