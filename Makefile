# Switchboard: the two commands are `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo
# A fresh clone (CI) builds each crate once: incremental-compilation state would only take
# disk (1.2 GB of a fresh `make test`'s 4.9 GB). Iterating with make, set CARGO_INCREMENTAL=1.
export CARGO_INCREMENTAL ?= 0
DEV_SECRET ?= dev-secret-change-me
PORT ?= 3000
CBINDGEN_VERSION := 0.29.4
CBINDGEN ?= $(or $(CARGO_HOME),$(HOME)/.cargo)/bin/cbindgen

.PHONY: run test build node-addon client-build test-rust test-node test-c header cbindgen lint deps-node deps-demo deps-browser bench clean autobahn autobahn-golden fuzz soak

## run: build the Node addon and the client SDK, start the demo chat app (examples/fastify-chat) on
## http://127.0.0.1:3000 with a development secret (embedded engine, data in .data/)
run: node-addon deps-demo
	cd examples/fastify-chat && HOST=127.0.0.1 PORT=$(PORT) JWT_SECRET="$(DEV_SECRET)" exec node server.js

## test: build everything and run every test (installs what is missing)
test: lint build deps-browser deps-redis deps-demo test-rust test-c test-node test-node-redis-cluster test-attack test-client autobahn test-package
	@echo "make test: all suites passed"

build: node-addon
	$(CARGO) build --workspace --all-targets

# The Node addon, built from source (debug: it reuses the workspace's debug build).
# Regenerates node/index.d.ts; a test fails when the committed one is stale.
node-addon:
	cd node && npm ci --no-audit --no-fund && npm run build:debug

test-rust:
	$(CARGO) test --workspace

# The suites make self-signed certificates with the openssl command (bindings-tests/node/helpers/tls.js).
deps-node:
	@command -v openssl >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y openssl)
	cd bindings-tests/node && npm ci --no-audit --no-fund

# The demo app's packages (its @switchboard/node and @switchboard/client are links to node/
# and client/; the page loads the client's ES module build, so client/ is built first).
deps-demo: client-build
	cd examples/fastify-chat && npm ci --no-audit --no-fund

# Debian's chromium for the demo's browser test (bindings-tests/node/test/demo-browser.test.js).
deps-browser:
	@command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

# A real redis-server for the cluster tests (bindings-tests/node/test/cluster.test.js), and
# redis-cli (Debian's redis-tools) that creates the Redis Cluster of the cluster run.
.PHONY: deps-redis
deps-redis:
	@(command -v redis-server && command -v redis-cli) >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server redis-tools)

test-node: deps-node deps-redis
	cd bindings-tests/node && npm test

## test-node-redis-cluster: the cluster suite a second time, on a Redis Cluster of three masters
## with one replica each (SB_TEST_REDIS=cluster, bindings-tests/node/helpers/redis-setup.js);
## test-node ran it on one Redis. Only the tests named "[Redis Cluster]" run (one cluster per
## file); test/redis-cluster-faults.test.js (failover, shard down) is part of test-node.
REDIS_CLUSTER_TESTS := test/cluster.test.js test/cluster-recovery.test.js test/yjs-cluster.test.js \
	test/server-api-cluster.test.js test/plain-ws-cluster.test.js test/disconnect-user.test.js \
	test/fastify-paths.test.js
.PHONY: test-node-redis-cluster
test-node-redis-cluster: deps-node deps-redis
	cd bindings-tests/node && SB_TEST_REDIS=cluster node --test --test-concurrency=2 --test-timeout=180000 \
		--test-force-exit --test-name-pattern='\[Redis Cluster\]' $(REDIS_CLUSTER_TESTS)
	cd bindings-tests/node && SB_TEST_REDIS=cluster node --test --test-timeout=180000 --test-force-exit \
		--test-name-pattern='\[Redis Cluster\]' test-c/c-abi.test.js

## test-attack: the black-box attack suite of issue 16 (bindings-tests/node/attack): one
## scripted attack per class against a debug `switchboard serve` (and a Node host for the slow
## hook), each held to the budgets: server RSS growth < 64 MB, /healthz < 1 s throughout,
## runtime tasks back to baseline within 10 s, the attacker cut off with a clear reason.
## One attack at a time (the budgets measure one attacker); prints `attack <name>: …` figures.
.PHONY: test-attack
test-attack: deps-node
	$(CARGO) build -p switchboard --bin switchboard
	@ls node/*.node >/dev/null 2>&1 || $(MAKE) node-addon
	cd bindings-tests/node && node --test --test-concurrency=1 --test-timeout=180000 --test-force-exit attack/

## test-client: the @switchboard/client SDK and its React hooks (client/), built and tested
## against a real `switchboard serve`
.PHONY: test-client
test-client: client-build
	$(CARGO) build -p switchboard --bin switchboard
	cd client && npm test

# The @switchboard/client SDK built (dist/esm, dist/cjs): the demo page and test-client use it.
client-build:
	cd client && npm ci --no-audit --no-fund && npm run build

## test-c: the C ABI: include/switchboard.h is fresh, and the C11/C++17 programs of
## bindings-tests/c (AddressSanitizer) pass with real socket.io clients and misuse
test-c: cbindgen deps-node deps-redis
	CBINDGEN=$(CBINDGEN) bindings-tests/c/check-header.sh
	cd bindings-tests/node && node --test --test-timeout=180000 --test-force-exit test-c/c-abi.test.js

## header: regenerate include/switchboard.h (commit it)
header: cbindgen
	$(CBINDGEN) --quiet --config ffi/cbindgen.toml --output include/switchboard.h ffi

# The pinned cbindgen, installed when it is missing or another version.
cbindgen:
	@if [ "$$($(CBINDGEN) --version 2>/dev/null)" != "cbindgen $(CBINDGEN_VERSION)" ]; then \
		$(CARGO) install cbindgen --version $(CBINDGEN_VERSION) --locked; \
	fi

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	# The library as an embedding program builds it: no `cli`, no `testing` (the workspace
	# build above turns both on through feature unification).
	$(CARGO) clippy -p switchboard --lib --no-default-features -- -D warnings
	# The crate's documentation is its guide: no broken or private links.
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc -p switchboard --no-deps

## autobahn: WebSocket conformance (Autobahn|Testsuite, Python 2.7; skipped without it)
## against the engine's echo, Socket.IO, Yjs and plain-WebSocket endpoints, compared with
## bindings-tests/autobahn/golden.txt
autobahn:
	CARGO=$(CARGO) bindings-tests/autobahn/run.sh

## autobahn-golden: rerun Autobahn and rewrite its golden file (review the diff, commit it)
autobahn-golden:
	CARGO=$(CARGO) AUTOBAHN_GOLDEN=update bindings-tests/autobahn/run.sh

FUZZ_SECONDS ?= 30
FUZZ_TARGETS := engineio socketio yjs token http_head
## fuzz: each cargo-fuzz target of fuzz/ for FUZZ_SECONDS (default 30) on nightly, from its
## committed seed corpus (installs cargo-fuzz when missing). A crash fails the run and leaves
## its input in fuzz/artifacts/<target>/: fix it and add it as a regression test in core.
## Memory that is used counts (-rss_limit_mb); a reservation that is never touched and may
## fail (yrs' try_reserve of a declared count) does not.
fuzz:
	@command -v cargo-fuzz >/dev/null || $(CARGO) install cargo-fuzz --locked
	cd fuzz && $(CARGO) +nightly fuzz build -O
	@cd fuzz && for t in $(FUZZ_TARGETS); do \
		mkdir -p ../target/fuzz-corpus/$$t && \
		ASAN_OPTIONS=allocator_may_return_null=1 \
		$(CARGO) +nightly fuzz run -O $$t ../target/fuzz-corpus/$$t corpus/$$t -- \
			-max_total_time=$(FUZZ_SECONDS) -rss_limit_mb=2048 -malloc_limit_mb=1048576 \
			-print_final_stats=1 2>&1 \
			| grep -E '^(stat::number_of_executed_units|stat::peak_rss|==[0-9]+== ERROR|SUMMARY|Done)' \
			| sed "s/^/fuzz $$t: /"; \
		test $${PIPESTATUS[0]} -eq 0 || exit 1; \
	done

## soak: every fault at once under load against `switchboard serve` (SOAK_CHURN=5000
## connects, half abrupt; SOAK_LOAD=50 clients; slow readers, slowloris, floods past
## --max-connections); reports counts and RSS before/after
soak:
	$(CARGO) build -p switchboard --bin switchboard
	cd bindings-tests/node && npm ci --no-audit --no-fund && node soak/soak.js

bench:
	bench/run.sh

## bench-cluster: fan-out on one node, on two nodes sharing one Redis, and on two nodes on a
## three-master Redis Cluster (same run); deliveries/s and Redis CPU per shard in bench/results/cluster.json
.PHONY: bench-cluster
bench-cluster: deps-redis
	bench/cluster.sh

clean:
	$(CARGO) clean

# ---- Packages (issue 17): npm tarballs, the C library's install, the crate, the server tarball.

# One version for the workspace and the npm packages (bindings-tests/node/test/versions.test.js
# fails when they drift).
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
SB_TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)
HOST_TRIPLE = $(shell rustc -vV | sed -n 's/^host: //p')
# This machine's napi platform (x86_64-unknown-linux-gnu is the only Rust target here).
NAPI_PLATFORM ?= linux-x64-gnu
NPM_PACKAGES := $(SB_TARGET_DIR)/npm-packages

## package: the Node addon for this machine's target (`dist` profile), then `npm pack` of
## @switchboard/node, its @switchboard/node-$(NAPI_PLATFORM) platform package and
## @switchboard/client into target/npm-packages/ (the release workflow runs the same steps
## per target)
.PHONY: package
package: client-build
	cd node && npm ci --no-audit --no-fund && npm run build:package
	cp $(SB_TARGET_DIR)/napi-release/switchboard.$(NAPI_PLATFORM).node node/npm/$(NAPI_PLATFORM)/
	cp LICENSE node/npm/$(NAPI_PLATFORM)/LICENSE
	rm -rf $(NPM_PACKAGES) && mkdir -p $(NPM_PACKAGES)
	cd node && node scripts/pack.js $(NPM_PACKAGES)
	cd node/npm/$(NAPI_PLATFORM) && npm pack --silent --pack-destination $(NPM_PACKAGES)
	cd client && npm pack --silent --pack-destination $(NPM_PACKAGES)
	@ls -l $(NPM_PACKAGES)

## test-package: installs the tarballs of `make package` into a fresh Fastify app with no Rust
## toolchain on PATH; `make install` into a temporary prefix and a C11 program built with
## pkg-config only; the crate packaged as crates.io would get it; the server tarball
.PHONY: test-package test-crate
test-package: package deps-node test-crate
	@command -v pkg-config >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y pkg-config)
	$(CARGO) build -p switchboard --bin switchboard
	cd bindings-tests/node && node --test --test-concurrency=1 --test-timeout=600000 --test-force-exit package/

# The crate as crates.io would get it (built from the packaged sources), and the library
# without the command's dependencies. The packaged crate is built outside the workspace, so
# it gets the workspace's dev profile here: otherwise every dependency compiles again, with
# full DWARF (+2.4 GB in target/debug, 3 min).
test-crate:
	$(CARGO) package -p switchboard $(if $(CI),,--allow-dirty) \
		--config 'profile.dev.debug="line-tables-only"' --config 'profile.dev.package."*".debug=false'
	@if $(CARGO) tree -p switchboard --no-default-features -e normal | grep -E '^.* (clap|toml|tracing-subscriber) v'; then \
		echo "switchboard --no-default-features depends on a CLI-only crate" >&2; exit 1; fi

# C library install (`make install PREFIX=/usr/local DESTDIR=`): the header, the shared library
# with its soname and symlinks, the static library and a pkg-config file. Built with the
# `dist` profile (release without debug info, Cargo.toml); PROFILE=release or PROFILE=debug
# installs that build instead (the tests use debug, to save a build).
PREFIX ?= /usr/local
DESTDIR ?=
PROFILE ?= dist
SB_PROFILE_DIR = $(if $(filter debug dev,$(PROFILE)),debug,$(PROFILE))
SB_PROFILE_FLAG = --profile $(if $(filter debug dev,$(PROFILE)),dev,$(PROFILE))
SONAME_MAJOR = $(firstword $(subst ., ,$(VERSION)))
# What the static library needs besides libc (`cargo rustc -p switchboard-ffi --crate-type
# staticlib -- --print native-static-libs`).
LIBS_PRIVATE := -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
.PHONY: install
install:
	$(CARGO) build -p switchboard-ffi $(SB_PROFILE_FLAG)
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 include/switchboard.h $(DESTDIR)$(PREFIX)/include/switchboard.h
	install -m 755 $(SB_TARGET_DIR)/$(SB_PROFILE_DIR)/libswitchboard.so $(DESTDIR)$(PREFIX)/lib/libswitchboard.so.$(VERSION)
	ln -sf libswitchboard.so.$(VERSION) $(DESTDIR)$(PREFIX)/lib/libswitchboard.so.$(SONAME_MAJOR)
	ln -sf libswitchboard.so.$(SONAME_MAJOR) $(DESTDIR)$(PREFIX)/lib/libswitchboard.so
	install -m 644 $(SB_TARGET_DIR)/$(SB_PROFILE_DIR)/libswitchboard.a $(DESTDIR)$(PREFIX)/lib/libswitchboard.a
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(LIBS_PRIVATE)|' \
		ffi/switchboard.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/switchboard.pc

## dist: target/dist/switchboard-VERSION-TRIPLE.tar.gz: the standalone server (`dist` profile,
## stripped), README, LICENSE, CHANGELOG, an example systemd unit and --config file
DIST_DIR ?= $(SB_TARGET_DIR)/dist
.PHONY: dist
dist:
	$(CARGO) build -p switchboard --bin switchboard $(SB_PROFILE_FLAG)
	@set -e; name=switchboard-$(VERSION)-$(HOST_TRIPLE); dir=$(DIST_DIR)/$$name; \
	rm -rf $$dir && mkdir -p $$dir; \
	install -m 755 -s $(SB_TARGET_DIR)/$(SB_PROFILE_DIR)/switchboard $$dir/switchboard; \
	install -m 644 README.md LICENSE CHANGELOG.md examples/server/switchboard.service examples/server/switchboard.toml $$dir/; \
	tar -C $(DIST_DIR) -czf $(DIST_DIR)/$$name.tar.gz $$name; rm -rf $$dir; \
	ls -l $(DIST_DIR)/$$name.tar.gz
