# Janus (Debian's package) with lifecycleevh, built from this source tree.
#
#   docker build --network host -t lifecycleevh:bookworm .                  # Janus 1.1.2
#   docker build --network host --build-arg DEBIAN_RELEASE=sid -t lifecycleevh:sid .   # Janus 1.4.1
#
# The builder stage compiles the handler with Debian's Rust toolchain and
# packages it (packaging/build-deb.sh); the runtime stage is Debian's janus
# plus that .deb. With a vendor/ folder in the build context (`make docker`
# makes one with `cargo vendor`), the crates come from it and the build is
# offline; without it, cargo fetches them from crates.io.
# Works with BuildKit and with the classic builder.

ARG DEBIAN_RELEASE=bookworm

# The build context, less what the builder does not need (docs, tests, the
# image's own scripts), so that changing those does not rebuild the handler;
# vendor/ is made empty when missing.
FROM debian:${DEBIAN_RELEASE}-slim AS source
COPY . /src
RUN cd /src && rm -rf tests examples fuzz docker .ci docs ./*.md compose.yaml Dockerfile .dockerignore && mkdir -p vendor

FROM debian:${DEBIAN_RELEASE}-slim AS builder
# bookworm's own rustc (1.63) is too old for this crate; its rustc-web is
# current (installed as rustc and cargo). Newer releases: rustc and cargo.
RUN set -eux; \
	apt-get update -q; \
	if apt-cache policy cargo-web | grep -q 'Candidate: [0-9]'; then rust="rustc-web cargo-web"; else rust="rustc cargo"; fi; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $rust \
		libclang-dev libjansson-dev pkg-config gcc libc6-dev binutils dpkg-dev ca-certificates; \
	rm -rf /var/lib/apt/lists/*; \
	rustc --version; cargo --version
ENV CARGO_HOME=/cargo
WORKDIR /src
COPY --from=source /src/ /src/
RUN set -eux; \
	offline=; \
	if [ -n "$(ls -A vendor)" ]; then \
		mkdir -p "$CARGO_HOME"; \
		printf '[source.crates-io]\nreplace-with = "vendored-sources"\n[source.vendored-sources]\ndirectory = "/src/vendor"\n' \
			>"$CARGO_HOME/config.toml"; \
		offline=--offline; \
	fi; \
	cargo build --release --locked $offline --lib; \
	packaging/build-deb.sh target/release/libjanus_lifecycleevh.so /lifecycleevh; \
	dpkg-deb --fsys-tarfile /lifecycleevh/lifecycleevh_*.deb \
		| tar -x -O --wildcards './usr/lib/*/janus/events/libjanus_lifecycleevh.so' >/lifecycleevh/libjanus_lifecycleevh.so; \
	test -s /lifecycleevh/libjanus_lifecycleevh.so; \
	cp conf/janus.eventhandler.lifecycleevh.jcfg /lifecycleevh/; \
	rm -rf target "$CARGO_HOME/registry"; \
	ls -l /lifecycleevh
# The builder stage leaves in /lifecycleevh/: the packages
# (lifecycleevh_<version>_<arch>.deb, lifecycleevh-dbgsym_...deb), and what
# they install, for images that have no dpkg or a Janus of their own: the
# stripped libjanus_lifecycleevh.so and the sample config.

FROM debian:${DEBIAN_RELEASE}-slim
LABEL org.opencontainers.image.title="Janus with lifecycleevh" \
	org.opencontainers.image.description="Debian's Janus WebRTC server with the lifecycleevh event handler" \
	org.opencontainers.image.licenses="GPL-3.0-only"
COPY --from=builder /lifecycleevh/*.deb /usr/share/lifecycleevh/
COPY docker/entrypoint.sh /usr/local/bin/janus-entrypoint
COPY docker/healthcheck.sh /usr/local/bin/lifecycleevh-health
# Debian's janus, curl for the health check, and lifecycleevh's package (its
# debug info stays in /usr/share/lifecycleevh/ for backtraces:
# apt-get install /usr/share/lifecycleevh/lifecycleevh-dbgsym_*.deb gdb).
# Then Debian's configs, changed where a container needs it (each checked):
# every event handler gets every event (Janus's default is none); the Admin
# API on (loopback only), for the health check; lifecycleevh's crash
# recovery on, in the state volume. Janus runs as the user janus, who may
# write where Debian's plugins keep recordings (recordplay, voicemail).
# lua-json and lua-ansicolors are janus's Recommends (its Lua plugin's needs).
RUN set -eux; \
	apt-get update -q; \
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
		janus lua-json lua-ansicolors curl ca-certificates /usr/share/lifecycleevh/lifecycleevh_*.deb; \
	rm -rf /var/lib/apt/lists/* /usr/share/lifecycleevh/lifecycleevh_*.deb; \
	cd /etc/janus; \
	sed -i 's/^\([[:space:]]*\)#[[:space:]]*broadcast = true/\1broadcast = true/' janus.jcfg; \
	sed -i -e 's/^\([[:space:]]*\)admin_http = false/\1admin_http = true/' \
		-e 's/^\([[:space:]]*\)#[[:space:]]*admin_ip = "[^"]*"/\1admin_ip = "127.0.0.1"/' janus.transport.http.jcfg; \
	sed -i 's|^\([[:space:]]*\)#[[:space:]]*state_dir = "/var/lib/janus/lifecycleevh"|\1state_dir = "/var/lib/janus/lifecycleevh"|' \
		janus.eventhandler.lifecycleevh.jcfg; \
	grep -q '^[[:space:]]*broadcast = true' janus.jcfg; \
	grep -q '^[[:space:]]*admin_http = true' janus.transport.http.jcfg; \
	grep -q '^[[:space:]]*admin_ip = "127.0.0.1"' janus.transport.http.jcfg; \
	grep -q '^[[:space:]]*state_dir = "/var/lib/janus/lifecycleevh"' janus.eventhandler.lifecycleevh.jcfg; \
	grep -q '^[[:space:]]*enabled = true' janus.eventhandler.lifecycleevh.jcfg; \
	useradd --system --user-group --home-dir /var/lib/janus --shell /usr/sbin/nologin janus; \
	install -d -o janus -g janus /var/log/janus /var/lib/janus /var/lib/janus/lifecycleevh \
		/usr/share/janus/recordings /usr/share/janus/demos/voicemail; \
	install -d /config; \
	dpkg-query -W janus lifecycleevh
# JSON Lines file (file.path) and crash-recovery state (general.state_dir).
VOLUME ["/var/log/janus", "/var/lib/janus/lifecycleevh"]
# Janus API over HTTP and WebSockets. Media (RTP/RTCP over UDP) uses an
# ephemeral port per PeerConnection unless --rtp-port-range narrows it:
# see docs/docker.md for host networking or a published UDP range.
EXPOSE 8088/tcp 8188/tcp
USER janus
WORKDIR /var/lib/janus
STOPSIGNAL SIGINT
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["lifecycleevh-health", "-q"]
ENTRYPOINT ["janus-entrypoint"]
