#!/usr/bin/env bash
# Builds the Worker to build/ (wrangler.toml's [build] command; `make build` runs it too).
# `scripts/build.sh faults` builds the test-only variant with fault injection (cargo feature
# `faults`) into build-faults/, with its own cargo target directory; the testkit runs it with wrangler.toml's bindings.
#
# worker-build would download wasm-bindgen and wasm-opt from GitHub; we point it at pinned
# local copies instead, so a plain `npx wrangler dev` or `npx wrangler deploy` works from a
# fresh shell once `make install` (or `make dev`/`make test`) has run.
set -euo pipefail
cd "$(dirname "$0")/.."

out=build
cargo_args=()
if [ "${1:-}" = faults ]; then
  out=build-faults
  cargo_args=(--features faults --target-dir target/faults)
fi

# The OpenAPI document and the upload page (web/) are served as static assets (wrangler.toml
# [assets]), not from the wasm.
mkdir -p "$out/assets" && cp openapi.yaml "$out/assets/openapi.yaml" && cp -R web/. "$out/assets/"

# Up to date? Then skip: worker-build re-runs wasm-bindgen and wasm-opt (~20 s) even when
# cargo has nothing to do, and every `wrangler dev` start runs this script.
stamp=$out/index_bg.wasm
if [ -f "$stamp" ] && [ -z "$(find src api Cargo.toml Cargo.lock wrangler.toml "$0" -newer "$stamp" -print -quit)" ]; then
  echo "build: up to date"
  exit 0
fi

export PATH="$HOME/.cargo/bin:$PATH"
missing() { echo "build: $1 is missing; run \`make install\` first" >&2; exit 1; }
command -v worker-build >/dev/null || missing worker-build
command -v wasm-bindgen >/dev/null || missing wasm-bindgen
[ -x node_modules/.bin/wasm-opt ] || missing "node_modules (wasm-opt, esbuild)"

export WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
export WASM_OPT_BIN="$PWD/node_modules/.bin/wasm-opt"
export ESBUILD_BIN="$PWD/node_modules/.bin/esbuild"
exec worker-build --release --out-dir "$out" . "${cargo_args[@]}"
