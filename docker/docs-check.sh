#!/usr/bin/env bash
# CI's check of the Docker commands in the docs (README.md's "Run it in
# Docker" section, then docs/docker.md): runs every shell block marked
# `<!-- docs-check -->` as written, in that order, one line at a time in the
# repository's folder, as a person copying them would (who waits a moment
# when Janus is not up yet: a failing line is tried again for 30 s before it
# counts as failed). Then builds the Dockerfile block marked
# `<!-- docs-check: dockerfile -->` with `your-janus-image` standing for a
# Janus image built from source: upstream Janus 1.4.1 from its release
# tarball, installed under /usr/local as community images do
# (upstream/image.sh: $JANUS_FROM_SOURCE_IMAGE, default janus-upstream:1.4.1),
# with its own default configs and what the docs ask of them, and checks
# that Janus loads the builder stage's stripped handler from
# /usr/local/lib/janus/events: the handler answers the Admin API's `info`
# and names that Janus.
# Needs make docker's images and that one; uses the host's ports 8088, 8188, 7088.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-docker}
read -r -a docs <<<"${DOCS:-README.md docs/docker.md}"
[ ! -e janus-config ] || { echo "$0: ./janus-config exists; the docs' example makes it" >&2; exit 1; }
work=$(mktemp -d "${TMPDIR:-/tmp}/docs-check.XXXXXX")
cleanup() {
	$DOCKER rm -f janus lifecycleevh-docs-fromsource >/dev/null 2>&1 || true
	docker-compose down --volumes >/dev/null 2>&1 || true
	rm -rf janus-config "$work"
}
trap cleanup EXIT

# The blocks after a marker, in the order of the docs: block n goes to
# $work/<kind>.<n>.
awk -v dir="$work" '
	/^<!-- docs-check -->$/ { want = "sh"; next }
	/^<!-- docs-check: dockerfile -->$/ { want = "dockerfile"; next }
	want != "" && /^```/ && !inside { inside = 1; n++; file = dir "/" want "." n; next }
	inside && /^```$/ { inside = 0; want = ""; next }
	inside { print > file }
' "${docs[@]}"
ls "$work"/sh.* >/dev/null 2>&1 || { echo "$0: no docs-check blocks in ${docs[*]}" >&2; exit 1; }

start=$SECONDS
# (sorted by n alone: $work's own name has a dot in it)
for block in $(cd "$work" && ls sh.* | sort -t. -k2 -n); do
	while IFS= read -r line; do
		case $line in "" | "#"*) continue ;; esac
		echo "docs-check\$ $line"
		t0=$SECONDS
		until bash -c "set -o pipefail; $line" </dev/null; do
			if [ $((SECONDS - t0)) -ge 30 ]; then
				echo "docs-check: failed (for 30 s): $line" >&2
				exit 1
			fi
			sleep 2
			echo "docs-check: again: $line"
		done
	done <"$work/$block"
done
echo "docs-check: every command ran ($((SECONDS - start)) s)"

# The Dockerfile example, on a Janus image built from source.
dockerfile=$(ls "$work"/dockerfile.* | head -n 1)
grep -q '^FROM your-janus-image$' "$dockerfile" || { echo "$0: the example has no FROM your-janus-image" >&2; exit 1; }
base=${JANUS_FROM_SOURCE_IMAGE:-janus-upstream:1.4.1}
base_version=${base##*:}
$DOCKER image inspect "$base" >/dev/null 2>&1 || { echo "$0: no image $base (make janus-upstream-image)" >&2; exit 1; }
sed "s|^FROM your-janus-image\$|FROM $base|" "$dockerfile" >"$work/example.Dockerfile"
# Then what the docs ask of that Janus's configs (its defaults from `make
# configs`): events broadcast to the handlers; and, for this check, the
# Admin API (its default secret).
cat >>"$work/example.Dockerfile" <<'CONFIGS'
RUN set -eux; \
	sed -i 's|^\([[:space:]]*\)#\{0,1\}broadcast = .*|\1broadcast = true|' /usr/local/etc/janus/janus.jcfg; \
	grep -q '^[[:space:]]*broadcast = true' /usr/local/etc/janus/janus.jcfg; \
	sed -i 's|^\([[:space:]]*\)admin_http = false|\1admin_http = true|' /usr/local/etc/janus/janus.transport.http.jcfg; \
	grep -q '^[[:space:]]*admin_http = true' /usr/local/etc/janus/janus.transport.http.jcfg
CONFIGS
$DOCKER build --network host -q -t lifecycleevh-docs-fromsource -f "$work/example.Dockerfile" "$work" >/dev/null
$DOCKER run -d --name lifecycleevh-docs-fromsource --network host lifecycleevh-docs-fromsource >/dev/null
health() {
	JANUS_ADMIN_URL=http://127.0.0.1:7088/admin JANUS_ADMIN_SECRET=janusoverlord docker/healthcheck.sh "$@"
}
ok=
for _ in $(seq 30); do
	if health -q >/dev/null; then ok=1; break; fi
	sleep 1
done
log=$($DOCKER logs lifecycleevh-docs-fromsource 2>&1)
[ -n "$ok" ] || { echo "$log" >&2; health >&2 || true; echo "docs-check: the from-source example is not healthy" >&2; exit 1; }
info=$(health)
grep -q "\"janus_version\": *\"$base_version\"" <<<"$info" || {
	echo "$info" >&2; echo "docs-check: the handler does not run in Janus $base_version" >&2; exit 1; }
grep -q 'lifecycleevh [0-9.]* initialized (config /usr/local/etc/janus/janus.eventhandler.lifecycleevh.jcfg' <<<"$log" || {
	echo "$log" >&2; echo "docs-check: the handler did not start from /usr/local" >&2; exit 1; }
grep -q "Loading event handler plugin 'libjanus_lifecycleevh.so'" <<<"$log" || {
	echo "$log" >&2; echo "docs-check: Janus did not load the handler" >&2; exit 1; }
$DOCKER stop lifecycleevh-docs-fromsource >/dev/null
$DOCKER rm lifecycleevh-docs-fromsource >/dev/null
$DOCKER rmi lifecycleevh-docs-fromsource >/dev/null
echo "docs-check: the Dockerfile example loads the handler into Janus $base_version built from source under /usr/local"
echo "docs-check: passed in $((SECONDS - start)) s"
