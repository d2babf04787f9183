# hookguard — one binary; `make run` serves the webhook with development certificates,
# `make test` runs the tests. See README.md.

CARGO      ?= cargo
CERTS_DIR  ?= certs
ADDR       ?= 127.0.0.1:8443
ADMIN_ADDR ?= 127.0.0.1:8080
RUN_FLAGS  ?=
BIN        := target/release/hookguard

.PHONY: all build run certs test bench check fmt clippy clean-certs e2e control-plane chart-deps load load-smoke load-instructions release-pgo

all: build

build:
	$(CARGO) build --release --locked

# Development certificates (CA + serving cert for 127.0.0.1 and localhost), made once.
certs: $(CERTS_DIR)/tls.crt

$(CERTS_DIR)/tls.crt:
	$(CARGO) run --release --locked --quiet -- certs --out $(CERTS_DIR) --host 127.0.0.1 --host localhost

clean-certs:
	rm -f $(CERTS_DIR)/ca.crt $(CERTS_DIR)/tls.crt $(CERTS_DIR)/tls.key

# Serves /validate and /mutate over HTTPS on $(ADDR) until Ctrl-C.
run: certs
	$(CARGO) run --release --locked --quiet -- serve --addr $(ADDR) --admin-addr $(ADMIN_ADDR) \
		--tls-cert $(CERTS_DIR)/tls.crt --tls-key $(CERTS_DIR)/tls.key $(RUN_FLAGS)

test:
	$(CARGO) test --locked

# End-to-end tests against a real etcd + kube-apiserver + kube-controller-manager v1.20.2,
# built once from Debian's archive into ~/.cache/hookguard (see tests/e2e/README.md).
E2E_DIR   ?= $(CURDIR)/target/e2e-control-plane
E2E_TESTS ?= --test e2e_webhook --test e2e_finalizer --test e2e_chart --test e2e_faults

control-plane:
	tests/e2e/control-plane.sh install

# The chart test renders charts/hookguard with Go text/template + sprig (tests/chart/render.sh)
# and checks values.schema.json with python3-jsonschema: all from Debian's archive.
CHART_DEPS := golang-go golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev python3-jsonschema

chart-deps:
	@dpkg -s $(CHART_DEPS) >/dev/null 2>&1 || { \
		echo "e2e: installing $(CHART_DEPS)"; \
		apt-get update -qq && apt-get install -y -qq --no-install-recommends $(CHART_DEPS) \
		|| { echo "e2e: step 'install chart renderer packages' failed" >&2; exit 1; }; }

e2e: control-plane chart-deps
	$(CARGO) build --locked --features e2e --tests
	tests/e2e/control-plane.sh run $(E2E_DIR) -- \
		$(CARGO) test --locked --features e2e $(E2E_TESTS) -- --test-threads=2

bench:
	$(CARGO) bench --locked

fmt:
	$(CARGO) fmt --all

# The fuzz crate is its own workspace (fuzz/Cargo.toml), so it is checked on its own.
check:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --locked --all-targets --features e2e -- -D warnings
	cd fuzz && $(CARGO) fmt -- --check && $(CARGO) clippy --locked --all-targets -- -D warnings

# Profile-guided release build of hookguard and the ceiling (what the image ships and
# `make load` measures); prints the binaries' paths. See scripts/pgo.sh.
release-pgo:
	scripts/pgo.sh

# Load test: hookguard vs. the ceiling server, side by side, both profile-guided (PGO=0: the
# plain release builds). Needs wrk and h2load (installed when run as root); docs/performance.md.
load:
	scripts/load.sh

# Checks that `make load` works (all three servers, two short rounds, plain builds without LTO
# in target/load-smoke): the table's rows, no errors, RSS under target. Not a measurement. CI runs it.
load-smoke:
	scripts/load-smoke.sh

# The same traffic under callgrind: instructions per request, independent of the machine's load.
load-instructions:
	scripts/instructions.sh

# Regenerate the committed policy JSON Schema and rule reference (tests fail when stale).
.PHONY: schema docs
schema:
	$(CARGO) run --locked --quiet -- policy schema > schema/policy.schema.json

docs:
	$(CARGO) run --locked --quiet -- policy docs > docs/rules.md

# Container image (needs docker; not available on the development machines).
IMAGE ?= ghcr.io/hookguard/hookguard:$(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
.PHONY: image chart-render
image:
	docker build -t $(IMAGE) .

# Render the chart without Helm (Go text/template + sprig; see tests/chart/render.sh).
chart-render:
	tests/chart/render.sh

# Coverage-guided fuzzing (needs `cargo install cargo-fuzz`; libFuzzer wants nightly flags, so
# the stable toolchain runs it with RUSTC_BOOTSTRAP=1). Each target runs FUZZ_SECONDS on its
# committed seeds in fuzz/corpus/<target>/ (new finds stay local, see fuzz/.gitignore).
# Crashes land in fuzz/artifacts/<target>/. `make fuzz-replay` then times every corpus input
# (and large generated ones) in an optimised build without sanitizers: fails over 10 ms per
# product call (a target body that makes several calls gets 10 ms for each).
# See docs/reliability.md.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?= review annotations policy lint
.PHONY: fuzz fuzz-build fuzz-replay
fuzz-build:
	RUSTC_BOOTSTRAP=1 CARGO_INCREMENTAL=0 cargo fuzz build

fuzz: fuzz-build
	for t in $(FUZZ_TARGETS); do \
		RUSTC_BOOTSTRAP=1 CARGO_INCREMENTAL=0 cargo fuzz run $$t -- \
			-max_total_time=$(FUZZ_SECONDS) -max_len=65536 -timeout=1 -print_final_stats=1 || exit 1; \
	done

# Its own target dir: `cargo fuzz run` holds fuzz/target's lock while it fuzzes.
fuzz-replay:
	cd fuzz && CARGO_TARGET_DIR=target/replay CARGO_INCREMENTAL=0 \
		cargo run --release --locked --example replay -- $(FUZZ_TARGETS)
