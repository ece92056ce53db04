# lifecycleevh: make demo (see it work), make test (everything CI runs),
# make deb (the Debian package), make docker (the container images).
# Every target that builds first installs what is missing (Debian packages via
# apt-get, as root or with sudo; crates via cargo).

SHELL := /bin/bash
CARGO ?= cargo
MULTIARCH := $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
# Where Debian's Janus looks for event handlers and their configs.
JANUS_EVENTS_DIR ?= /usr/lib/$(MULTIARCH)/janus/events
JANUS_CONFIG_DIR ?= /etc/janus
DESTDIR ?=

# Debian packages the build, the tests and the demo need.
# prometheus (with promtool): the metrics tests scrape the handler with a real one.
# stress-ng: make test-loaded runs the real-Janus tests beside a CPU hog.
# e2fsprogs (mkfs.ext4, chattr) and util-linux (mount, setpriv): the full-disk
# tests fill a small ext4 and a tmpfs; a test runs Janus as an unprivileged user.
# chromium, iproute2, iptables: the quality tests make real WebRTC calls from a
# headless browser, in a network namespace of their own where iptables drops
# packets (tests/janus_quality.rs).
# rabbitmq-server, mosquitto, nats-server: the broker sinks' tests run the real ones.
DEB_PACKAGES := janus janus-dev libjansson-dev libglib2.0-dev libclang-dev clang \
	pkg-config build-essential ca-certificates valgrind prometheus stress-ng \
	e2fsprogs util-linux chromium iproute2 iptables rabbitmq-server mosquitto nats-server
# What the container images and the container test matrix need.
DOCKER_PACKAGES := docker.io debootstrap docker-compose
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SO := libjanus_lifecycleevh.so

# The images make docker builds: $(IMAGE):<release>, Debian's janus of that
# release (bookworm: 1.1.2, sid: 1.4.1) with lifecycleevh.
IMAGE ?= lifecycleevh
DOCKER_RELEASES ?= bookworm sid
DOCKER ?= docker
# Upstream Janus releases that make janus-upstream builds from source, each
# into target/janus-upstream/<version> (the tarballs and their SHA256SUMS are
# in JANUS_SRC: ../shared/janus-src in CI; not part of this repository).
JANUS_UPSTREAM ?= 0.11.8 0.16.1 1.4.1
JANUS_SRC ?= $(firstword $(wildcard ../shared/janus-src ../../shared/janus-src) ../shared/janus-src)
JANUS_UPSTREAM_DIR := $(CURDIR)/target/janus-upstream
# The Debian packages those builds need (the list in JANUS_SRC's README).
JANUS_BUILD_PACKAGES := build-essential autoconf automake libtool pkg-config gengetopt \
	libglib2.0-dev libjansson-dev libconfig-dev libnice-dev libssl-dev libsrtp2-dev \
	libmicrohttpd-dev libwebsockets-dev libcurl4-openssl-dev libopus-dev libogg-dev zlib1g-dev
# Where make test runs the real-Janus tests: native (this machine's Janus,
# with every other test), the release of an image ($(IMAGE):<release>, built
# when missing) and/or upstream-<version>, an upstream release built from
# source (make janus-upstream, run when missing). E.g.
# make test JANUS_TARGETS="native upstream-0.16.1"
# The upstream targets are in the default list when the tarballs are there,
# and always in CI (which has them: a missing one fails there).
JANUS_TARGETS ?= native $(DOCKER_RELEASES) \
	$(if $(or $(wildcard $(JANUS_SRC)/SHA256SUMS),$(filter true,$(CI))),$(addprefix upstream-,$(JANUS_UPSTREAM)))
# The test binaries that drive a real Janus: those using the rig (tests/common).
JANUS_TESTS := $(sort $(basename $(notdir $(shell grep -l '^mod common;' tests/*.rs))))
# The broker sinks' tests (real RabbitMQ, Mosquitto and NATS servers, about
# 70 s a target) run Janus's stock rabbitmqevh and mqttevh beside the handler:
# Debian's Janus has them, the upstream builds do not (sampleevh only). They
# run natively (Debian's 1.1.2: native runs every test) and on the image and
# upstream targets of BROKER_TARGETS (Debian's 1.4.1: sid); the bookworm
# image holds the same Janus as native. make test says where they are left out.
BROKER_TESTS := janus_brokers
BROKER_TARGETS ?= sid

.PHONY: all deps build install demo test test-loaded lint bench fuzz fuzz-build fuzz-ci valgrind clean \
	deb docker docker-deps deb-check compose-check fleet-check docs-docker-check readme-docker-check \
	janus-upstream janus-upstream-image

all: build

# apt-get installs those of the packages $(1) that are missing.
define apt_install
	@missing=""; \
	for p in $(1); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages:$$missing"; \
		$(SUDO) apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call apt_install,$(DEB_PACKAGES))

# Upstream Janus from the release tarballs in JANUS_SRC (checksums checked),
# natively into target/janus-upstream/<version>, with the stock sampleevh
# (upstream/build-janus.sh; a version already built there is skipped). The
# rig runs one with LCEVH_JANUS=upstream-<version>.
janus-upstream:
	$(call apt_install,$(JANUS_BUILD_PACKAGES))
	@set -e; for v in $(JANUS_UPSTREAM); do \
		JANUS_SRC=$(JANUS_SRC) upstream/build-janus.sh $$v $(JANUS_UPSTREAM_DIR)/$$v; \
	done

# Docker's engine (started when none answers), debootstrap, docker-compose.
docker-deps:
	$(call apt_install,$(DOCKER_PACKAGES))
	@$(SUDO) docker/dockerd.sh

build: deps
	$(CARGO) build --release --locked

# Installs the handler into an existing Janus; never overwrites an existing config.
install: build
	install -D -m 0644 target/release/$(SO) $(DESTDIR)$(JANUS_EVENTS_DIR)/$(SO)
	@if [ -e $(DESTDIR)$(JANUS_CONFIG_DIR)/janus.eventhandler.lifecycleevh.jcfg ]; then \
		echo "Keeping existing $(DESTDIR)$(JANUS_CONFIG_DIR)/janus.eventhandler.lifecycleevh.jcfg"; \
	else \
		install -D -m 0644 conf/janus.eventhandler.lifecycleevh.jcfg \
			$(DESTDIR)$(JANUS_CONFIG_DIR)/janus.eventhandler.lifecycleevh.jcfg; \
	fi
	@echo "Installed. Restart Janus (make sure janus.jcfg has events: { broadcast = true })."

# Starts a real Janus in a temporary folder with the plugin, runs a short
# scripted client session, prints what the plugin wrote, stops Janus.
demo: deps
	$(CARGO) build --locked --quiet
	$(CARGO) run --locked --quiet --example demo

# The Debian packages: target/debian/lifecycleevh_<version>_<arch>.deb and
# its -dbgsym (packaging/build-deb.sh, dpkg-deb).
deb: deps
	$(CARGO) build --release --locked
	packaging/build-deb.sh target/release/$(SO) target/debian

# The images $(IMAGE):bookworm and $(IMAGE):sid from the Dockerfile. The base
# images debian:<release>-slim are made with debootstrap when missing (no
# image registry needed); the crates are vendored here (cargo vendor) so
# that the builder stage builds offline.
docker: docker-deps
	$(CARGO) vendor --locked --quiet vendor >/dev/null
	@set -eo pipefail; for r in $(DOCKER_RELEASES); do \
		t0=$$SECONDS; $(SUDO) DOCKER=$(DOCKER) docker/base-image.sh $$r; t1=$$SECONDS; \
		$(DOCKER) build --network host --build-arg DEBIAN_RELEASE=$$r -t $(IMAGE):$$r . 2>&1 \
			| while IFS= read -r line; do \
				case $$line in "Step "*) echo "[$$((SECONDS - t1)) s] $$line";; *) echo "$$line";; esac; \
			done; \
		echo "make docker: $(IMAGE):$$r built: base image $$((t1 - t0)) s, docker build $$((SECONDS - t1)) s"; \
	done

# Everything: unit tests, trace replays, property tests, the FFI harness, the
# ABI check against janus-dev, and the real-Janus integration tests, natively
# and then in each image of JANUS_TARGETS (only the real-Janus tests: the rig
# runs that image's Janus with the handler built here, see tests/common).
# Every target runs; failures are summed up at the end.
# cargo test does not build the cdylib the FFI harness and Janus load: build it first.
test: deps $(if $(filter-out native upstream-%,$(JANUS_TARGETS)),docker-deps)
	$(CARGO) build --locked --features fault-injection
	@failed=""; \
	for t in $(JANUS_TARGETS); do \
		t0=$$SECONDS; \
		tests="$(addprefix --test ,$(JANUS_TESTS))"; \
		case " native $(BROKER_TARGETS) " in *" $$t "*) ;; *) \
			tests="$(addprefix --test ,$(filter-out $(BROKER_TESTS),$(JANUS_TESTS)))"; \
			echo "== make test: not on $$t: $(BROKER_TESTS) (native and BROKER_TARGETS only: $(BROKER_TARGETS))";; \
		esac; \
		if [ "$$t" = native ]; then \
			echo "== make test: everything, with this machine's Janus"; \
			LCEVH_JANUS=native $(CARGO) test --locked --features fault-injection --no-fail-fast || failed="$$failed $$t"; \
		elif [ "$${t#upstream-}" != "$$t" ]; then \
			$(MAKE) --no-print-directory janus-upstream JANUS_UPSTREAM=$${t#upstream-} || { failed="$$failed $$t"; continue; }; \
			t0=$$SECONDS; \
			echo "== make test: the real-Janus tests with upstream Janus $${t#upstream-} built from source"; \
			LCEVH_JANUS=$$t $(CARGO) test --locked --features fault-injection --no-fail-fast \
				$$tests || failed="$$failed $$t"; \
		else \
			$(DOCKER) image inspect $(IMAGE):$$t >/dev/null 2>&1 || $(MAKE) --no-print-directory docker DOCKER_RELEASES=$$t || { failed="$$failed $$t"; continue; }; \
			t0=$$SECONDS; \
			echo "== make test: the real-Janus tests in $(IMAGE):$$t"; \
			LCEVH_JANUS=docker:$(IMAGE):$$t $(CARGO) test --locked --features fault-injection --no-fail-fast \
				$$tests || failed="$$failed $$t"; \
		fi; \
		echo "== make test: $$t took $$((SECONDS - t0)) s"; \
	done; \
	if [ -n "$$failed" ]; then echo "== make test: FAILED in:$$failed"; exit 1; fi; \
	echo "== make test: passed in: $(JANUS_TARGETS)"

# The real-Janus tests LOADED_RUNS times in a row beside a CPU hog
# (stress-ng, a worker per core), as on a busy CI machine; then how often
# each test failed. A test that fails only under load is flaky: it waits
# for something other than the state it asserts. LCEVH_JANUS picks the
# Janus (docs/testing.md), e.g.
# make test-loaded LOADED_RUNS=5 LCEVH_JANUS=docker:lifecycleevh:sid
LOADED_RUNS ?= 5
LOADED_CPUS ?= $(shell nproc)
test-loaded: deps
	$(CARGO) build --locked --features fault-injection
	$(CARGO) test --locked --features fault-injection --no-run $(addprefix --test ,$(JANUS_TESTS))
	@logs=target/test-loaded; mkdir -p $$logs; rm -f $$logs/run-*.log; \
	stress-ng --cpu $(LOADED_CPUS) --quiet & hog=$$!; \
	trap 'kill $$hog 2>/dev/null; wait $$hog 2>/dev/null' EXIT; \
	for i in $$(seq $(LOADED_RUNS)); do \
		t0=$$SECONDS; \
		$(CARGO) test --locked --features fault-injection --no-fail-fast \
			$(addprefix --test ,$(JANUS_TESTS)) >$$logs/run-$$i.log 2>&1; \
		echo "== make test-loaded: run $$i of $(LOADED_RUNS): $$(grep -c ' \.\.\. FAILED$$' $$logs/run-$$i.log) failed, $$((SECONDS - t0)) s"; \
	done; \
	echo "== make test-loaded: failures per test in $(LOADED_RUNS) runs (logs: $$logs/run-*.log):"; \
	grep -h ' \.\.\. FAILED$$' $$logs/run-*.log | sort | uniq -c; \
	! grep -q ' \.\.\. FAILED$$' $$logs/run-*.log

# The .deb in bare debian:<release>-slim containers (after make deb).
deb-check: deb docker-deps
	docker/deb-check.sh $(DOCKER_RELEASES)

# compose.yaml up, checked, down (needs $(IMAGE):bookworm: make docker).
compose-check: docker-deps
	@$(DOCKER) image inspect $(IMAGE):bookworm >/dev/null 2>&1 || $(MAKE) --no-print-directory docker DOCKER_RELEASES=bookworm
	docker/compose-check.sh

# contrib/fleet/: two Janus, RabbitMQ and a consumer, up, checked (endings
# from each Janus, one through a RabbitMQ outage), down (needs
# $(IMAGE):bookworm: make docker).
fleet-check: docker-deps
	@$(DOCKER) image inspect $(IMAGE):bookworm >/dev/null 2>&1 || $(MAKE) --no-print-directory docker DOCKER_RELEASES=bookworm
	contrib/fleet/check.sh

# The image janus-upstream:$(JANUS_IMAGE_VERSION): upstream Janus built from
# its tarball in JANUS_SRC, installed under /usr/local as community images do
# (upstream/Dockerfile), when missing.
JANUS_IMAGE_VERSION ?= 1.4.1
janus-upstream-image: docker-deps
	@JANUS_SRC=$(JANUS_SRC) DOCKER=$(DOCKER) SUDO=$(SUDO) upstream/image.sh $(JANUS_IMAGE_VERSION)

# The Docker commands of README.md and docs/docker.md, as written (and the
# example of lifecycleevh in that Janus image built from source).
docs-docker-check: docker-deps janus-upstream-image
	@$(DOCKER) image inspect $(IMAGE):bookworm >/dev/null 2>&1 || $(MAKE) --no-print-directory docker DOCKER_RELEASES=bookworm
	JANUS_FROM_SOURCE_IMAGE=janus-upstream:$(JANUS_IMAGE_VERSION) docker/docs-check.sh
# Its name before the docs left the README.
readme-docker-check: docs-docker-check

# rustfmt and clippy come with the rustup toolchain; a machine without them
# says so and skips that check rather than failing the build.
lint: deps
	@if $(CARGO) fmt --version >/dev/null 2>&1; then $(CARGO) fmt --check; \
	else echo "lint: rustfmt not installed, skipping the format check"; fi
	@if $(CARGO) clippy --version >/dev/null 2>&1; then \
		$(CARGO) clippy --locked --all-targets --features fault-injection -- -D warnings; \
	else echo "lint: clippy not installed, skipping clippy"; fi

# Benchmarks (results: target/bench-*.md; copied into BENCHMARKS.md by hand,
# with the machine and date). E2E_EVENTS=n sets the Janus flood size.
# hot_path also prints the instructions per incoming_event call, lifecycleevh's
# and sampleevh's side by side, counted by valgrind's callgrind (a deps package).
bench: deps
	$(CARGO) build --release --locked
	$(CARGO) bench --locked --bench hot_path
	$(CARGO) bench --locked --bench tracker
	$(CARGO) bench --locked --bench janus_e2e
	$(CARGO) bench --locked --bench metrics_endpoint

# Fuzzing with cargo fuzz (libFuzzer + AddressSanitizer). cargo fuzz wants
# nightly features: RUSTC_BOOTSTRAP enables them on the stable toolchain.
# Seeds and past crashes live in fuzz/seeds/<target>/ (a crash, once fixed,
# stays there as a regression input).
FUZZ_TARGETS := decode_track config admin recovery_reader spool_reader
FUZZ_BIN := fuzz/target/x86_64-unknown-linux-gnu/release
FUZZ_SEED ?= 1
# New inputs per target in fuzz-ci (about 30 s each on 2 cores).
FUZZ_RUNS_decode_track ?= 60000
FUZZ_RUNS_config ?= 15000
FUZZ_RUNS_admin ?= 100000
FUZZ_RUNS_recovery_reader ?= 20000
FUZZ_RUNS_spool_reader ?= 20000

fuzz-build: deps
	@$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build --fuzz-dir fuzz

# CI: reproducible. Every seed and past crash is run once, then each target
# tries FUZZ_RUNS_<target> new inputs from the fixed FUZZ_SEED, starting from
# the seeds alone (-reload=0: libFuzzer does not re-read its corpus on a
# timer, and the tracker hashes with a fixed seed under cfg(fuzzing), so the
# same build makes the same inputs). A crash prints its input in base64 and
# the command that replays it.
fuzz-ci: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
		runs=$$(make -s --no-print-directory fuzz-runs-$$t); \
		work=target/fuzz-ci/$$t; rm -rf $$work; mkdir -p $$work/corpus $$work/artifacts; \
		echo "fuzz-ci $$t: replaying fuzz/seeds/$$t, then $$runs runs from seed $(FUZZ_SEED)"; \
		if ! $(FUZZ_BIN)/$$t -runs=0 -rss_limit_mb=4096 -artifact_prefix=$$work/artifacts/ fuzz/seeds/$$t >$$work/replay.log 2>&1 \
		|| ! $(FUZZ_BIN)/$$t $$work/corpus fuzz/seeds/$$t -seed=$(FUZZ_SEED) -runs=$$runs -reload=0 \
			-rss_limit_mb=4096 -artifact_prefix=$$work/artifacts/ -print_final_stats=1 >$$work/fuzz.log 2>&1; then \
			tail -n 60 $$work/replay.log $$work/fuzz.log 2>/dev/null; \
			for a in $$work/artifacts/*; do [ -e "$$a" ] || continue; \
				echo "crash input $$a (base64):"; base64 -w0 "$$a"; echo; \
				echo "replay: echo <base64> | base64 -d > crash && $(FUZZ_BIN)/$$t crash"; done; \
			exit 1; \
		fi; \
		grep -h "DONE\|stat::number_of_executed_units" $$work/fuzz.log | tail -2; \
	done
fuzz-runs-%:
	@echo $(FUZZ_RUNS_$*)

# Longer, time-boxed runs that keep what they find in fuzz/corpus/<target>
# (not committed): make fuzz FUZZ_SECONDS=3600.
FUZZ_SECONDS ?= 60
fuzz: fuzz-build
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p fuzz/corpus/$$t; \
		echo "fuzzing $$t for $(FUZZ_SECONDS) s"; \
		$(FUZZ_BIN)/$$t fuzz/corpus/$$t fuzz/seeds/$$t -max_total_time=$(FUZZ_SECONDS) \
			-rss_limit_mb=4096 -artifact_prefix=fuzz/artifacts/$$t- -print_final_stats=1; \
	done

# The FFI harness under valgrind: no invalid access, no leak from the handler.
valgrind: deps
	$(CARGO) build --locked --features fault-injection
	@bin=$$($(CARGO) test --locked --features fault-injection --test ffi_harness --no-run 2>&1 \
		| sed -n 's/.*Executable .*(\(.*\))/\1/p'); \
	echo "valgrind $$bin"; \
	FFI_WATCHDOG_SECS=1800 valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite \
		--suppressions=tests/valgrind.supp --gen-suppressions=all -q \
		$$bin --test-threads=1

clean:
	$(CARGO) clean
	rm -rf vendor
