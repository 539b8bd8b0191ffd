#!/usr/bin/env bash
# The whole test suite, from a fresh machine: installs what the tests need and is missing,
# checks formatting and lints, then runs every test (unit, integration, property, doc).
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
need_apt() { # need_apt COMMAND PACKAGE: install PACKAGE from Debian when COMMAND is missing
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "==> installing $2 (for $1)"
    if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
  fi
}

# Redis tests start their own redis-server processes on free ports.
need_apt redis-server redis-server
need_apt faketime faketime
# The live monitor's test runs it in a pseudo-terminal made by util-linux's `script`.
need_apt script bsdutils
# The web dashboard's end-to-end test drives headless Chromium; the Prometheus alert rules
# are checked with promtool.
need_apt chromium chromium
need_apt promtool prometheus

echo "==> cargo fmt --check"
cargo fmt --all -- --check

echo "==> cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

echo "==> tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast
else
  # Same tests, another runner: nextest is faster but not required.
  cargo test --workspace --no-fail-fast
fi

echo "==> doc tests"
cargo test --workspace --doc --quiet
