#!/usr/bin/env bash
# Installs the pinned toolchain, skipping whatever is already there at the right version:
# the wasm target, worker-build, the wasm-bindgen CLI matching Cargo.lock, and the npm tools
# (wrangler, esbuild, binaryen) from package-lock.json. Idempotent; `make` runs it first.
set -euo pipefail
cd "$(dirname "$0")/.."

# `scripts/install.sh chromium rclone` (run by `make test`) installs only Debian packages the
# integration tests drive: chromium (tests/browser.rs) and rclone (tests/s3.rs), with apt-get
# as root, else it says how and fails.
if [ "${1:-}" = chromium ] || [ "${1:-}" = rclone ]; then
  missing=()
  for package in "$@"; do
    case "$package" in
      chromium) [ -x /usr/bin/chromium ] || missing+=(chromium) ;;
      rclone) command -v rclone >/dev/null || missing+=(rclone) ;;
      *) echo "install: unknown package $package" >&2; exit 1 ;;
    esac
  done
  [ ${#missing[@]} -eq 0 ] && exit 0
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "install: ${missing[*]} (apt-get), for the integration tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    exit 0
  fi
  echo "install: the integration tests need Debian's ${missing[*]};" >&2
  echo "         run \`sudo apt-get update && sudo apt-get install -y ${missing[*]}\` and \`make test\` again" >&2
  exit 1
fi
export PATH="$HOME/.cargo/bin:$PATH"

WORKER_BUILD_VERSION=0.8.7
# wasm-bindgen's CLI must match the library version the lock file resolved.
WASM_BINDGEN_VERSION=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print }' Cargo.lock)

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi

pids=()
if [ "$(worker-build --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+')" != "$WORKER_BUILD_VERSION" ]; then
  echo "install: worker-build $WORKER_BUILD_VERSION (a few minutes, once)"
  cargo install worker-build --version "$WORKER_BUILD_VERSION" --locked --quiet & pids+=($!)
fi
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WASM_BINDGEN_VERSION" ]; then
  # Not --locked: its lock file wants a crate version the registry mirror lacks.
  echo "install: wasm-bindgen-cli $WASM_BINDGEN_VERSION (a few minutes, once)"
  cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --quiet & pids+=($!)
fi

if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "install: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
fi

# Python tools the tests drive (generated clients, spec validation, schemathesis).
if [ ! -f .venv/.installed ] || [ tests/requirements.txt -nt .venv/.installed ]; then
  echo "install: python tools into .venv"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
  touch .venv/.installed
fi

for pid in "${pids[@]}"; do wait "$pid"; done
