#!/usr/bin/env bash
# Runs the whole test suite: unit tests, openraft's storage suite, and the integration
# tests that start real 3-node clusters. Extra arguments go to `cargo test`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
# The clock-skew tests start a node under libfaketime.
ensure_system_packages faketime
# The signed-callback test verifies signatures with the reference `standardwebhooks` package.
ensure_python_package standardwebhooks
build_release
cd "$ROOT"
cargo test --release --all-targets "$@"
