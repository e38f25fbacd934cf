#!/usr/bin/env bash
# Runs the whole test suite: unit tests, openraft's storage suite, and the integration
# tests that start real 3-node clusters. Extra arguments go to `cargo test`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
# The clock-skew tests start a node under libfaketime.
ensure_system_packages faketime
build_release
cd "$ROOT"
cargo test --release --all-targets "$@"
