# Sourced by the other scripts: one persistent target dir outside the clone (RocksDB's C++
# build is slow; keeping it makes rebuilds incremental), and the system packages a fresh
# machine lacks (libclang for RocksDB's bindgen; libfaketime for the clock-skew tests).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/goscheduler-target}"
export ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export BIN_DIR="$CARGO_TARGET_DIR/release"

ensure_system_packages() {
    local missing=()
    for p in clang libclang-dev "$@"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]}" >&2
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

# One build serves running and testing: release profile, all targets (same feature set).
build_release() {
    ensure_system_packages
    (cd "$ROOT" && cargo build --release --all-targets)
}

# A Python package the tests use (module $1, pip requirement $2, default $1), installed
# for the current python3 when missing.
ensure_python_package() {
    local spec="${2:-$1}"
    python3 -c "import $1" 2>/dev/null && return 0
    echo "installing python package $spec" >&2
    python3 -m pip install -q "$spec" 2>/dev/null ||
        python3 -m pip install -q --break-system-packages "$spec"
}

# The dev cluster's CA and node certificates (mutual TLS between nodes), made once in $1
# for nodes 1..3 by the freshly built goschedctl.
ensure_dev_certs() {
    local dir="$1"
    [ -f "$dir/ca.pem" ] && return 0
    "$BIN_DIR/goschedctl" certs init --dir "$dir" --cluster goscheduler-local
    "$BIN_DIR/goschedctl" certs issue --dir "$dir" --node 1 --node 2 --node 3
}
