# Two commands for a fresh clone: `make dev` and `make test`. Both install what is missing first.
.PHONY: dev test install build cli unit integration

PORT ?= 8787
PERSIST_DIR ?= .wrangler/state
export WRANGLER_SEND_METRICS = false

install:
	@scripts/install.sh

build: install
	@scripts/build.sh

cli: install
	cargo build --release -p r2mpu

# The Worker on 127.0.0.1:$(PORT) with local R2, a dev key in .dev.vars and a ready token.
dev: build cli
	@PORT=$(PORT) PERSIST_DIR=$(PERSIST_DIR) scripts/dev.sh

# Everything: fast unit tests first, then the integration suites against a real `wrangler dev`.
test: unit integration

unit: install
	cargo test --workspace --lib --bins

integration: build
	cargo test --workspace --test '*'
