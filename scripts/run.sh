#!/usr/bin/env bash
# Starts one goscheduler node in the foreground. With no arguments: a single-node cluster
# (REST on 127.0.0.1:8080, gRPC on 127.0.0.1:9090, data in ./data/node1).
# Arguments are passed on, e.g. `scripts/run.sh --config cluster-config/node1.toml`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
build_release
cd "$ROOT"
exec "$BIN_DIR/goscheduler" "$@"
