#!/usr/bin/env bash
# Runs the whole test suite: unit tests, openraft's storage suite, and the integration
# tests that start real 3-node clusters. Extra arguments go to `cargo test`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
# The clock-skew tests start a node under libfaketime.
ensure_system_packages faketime
# The signed-callback test verifies signatures with the reference `standardwebhooks` package.
ensure_python_package standardwebhooks
# The OpenAPI conformance test runs schemathesis against a node.
ensure_python_package schemathesis "schemathesis>=4.32,<5"
build_release
cd "$ROOT"
cargo test --release --all-targets "$@"
