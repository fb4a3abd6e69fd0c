# Two commands for a fresh clone: `make dev` and `make test`. Both install what is missing first.
.PHONY: dev test install chromium build cli lint unit integration

PORT ?= 8787
PERSIST_DIR ?= .wrangler/state
export WRANGLER_SEND_METRICS = false
# wrangler needs a newer Node.js than the machine may have: the pinned one is in node_modules.
export PATH := $(CURDIR)/node_modules/.bin:$(PATH)

install:
	@scripts/install.sh

build: install
	@scripts/build.sh

cli: install
	cargo build --release -p r2mpu

# The Worker on 127.0.0.1:$(PORT) with local R2, a dev key in .dev.vars and a ready token.
dev: build cli
	@PORT=$(PORT) PERSIST_DIR=$(PERSIST_DIR) scripts/dev.sh

# Everything: formatting and lints, fast unit tests, then the integration suites against a
# real `wrangler dev`, several test binaries at once (scripts/integration.sh; JOBS=3).
test: lint unit integration

lint: install
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

unit: install
	cargo test --workspace --lib --bins

# Debian's chromium and rclone, for the browser and S3 tests (installed as root, else a
# message says how).
chromium:
	@scripts/install.sh chromium rclone

# Every integration suite, in parallel against real `wrangler dev`s (scripts/integration.sh).
integration: build chromium
	@scripts/integration.sh
