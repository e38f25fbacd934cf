# Sourced by the other scripts: one persistent target dir outside the clone (RocksDB's C++
# build is slow; keeping it makes rebuilds incremental), and the system packages a fresh
# machine lacks (libclang for RocksDB's bindgen).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/goscheduler-target}"
export ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export BIN_DIR="$CARGO_TARGET_DIR/release"

ensure_system_packages() {
    if ! dpkg -s libclang-dev >/dev/null 2>&1 || ! dpkg -s clang >/dev/null 2>&1; then
        echo "installing clang and libclang-dev (needed to build RocksDB's bindings)" >&2
        local sudo=""
        [ "$(id -u)" = 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq clang libclang-dev >/dev/null
    fi
}

# One build serves running and testing: release profile, all targets (same feature set).
build_release() {
    ensure_system_packages
    (cd "$ROOT" && cargo build --release --all-targets)
}
