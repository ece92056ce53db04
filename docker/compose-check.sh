#!/usr/bin/env bash
# CI's check of compose.yaml: brings it up (with Debian's docker-compose),
# checks that lifecycleevh answers `info` (the image's health check) and that
# a session's events reach the example backend and the JSON Lines file, then
# takes it all down (volumes too). Needs the image lifecycleevh:bookworm
# (make docker) and a free 8088, 8188 and 10000-10099/udp.
set -euo pipefail
cd "$(dirname "$0")/.."
COMPOSE=${COMPOSE:-docker-compose}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-lifecycleevh-check}
compose() { $COMPOSE -f compose.yaml "$@"; }

fail() {
	echo "compose-check: $*" >&2
	compose ps >&2 || true
	compose logs --tail=80 >&2 || true
	exit 1
}
trap 'compose down --volumes --timeout 30 >/dev/null 2>&1 || true' EXIT

start=$SECONDS
compose up -d
janus=$(compose ps -q janus)

# The image's HEALTHCHECK (lifecycleevh-health: the handler's Admin `info`).
for _ in $(seq 60); do
	health=$(docker inspect --format '{{.State.Health.Status}}' "$janus")
	[ "$health" = healthy ] && break
	[ "$health" = unhealthy ] && fail "janus is unhealthy"
	sleep 1
done
[ "$health" = healthy ] || fail "janus not healthy after 60 s ($health)"
info=$(compose exec -T janus lifecycleevh-health) || fail "lifecycleevh-health: $info"
grep -q '"http-example"' <<<"$info" || fail "info has no http-example sink: $info"
echo "compose-check: janus healthy, lifecycleevh answers info ($((SECONDS - start)) s)"

# A session over the published Janus API port, created and destroyed.
api=http://127.0.0.1:8088/janus
reply=$(curl -fsS -m 10 -d '{"janus":"create","transaction":"compose-check"}' "$api") || fail "create: $reply"
session=$(sed -n 's/.*"id": *\([0-9][0-9]*\).*/\1/p' <<<"$reply" | head -n 1)
[ -n "$session" ] || fail "no session id in $reply"
curl -fsS -m 10 -d '{"janus":"destroy","transaction":"compose-check"}' "$api/$session" >/dev/null || fail "destroy"

for _ in $(seq 30); do
	got=$(compose exec -T backend cat /data/events.jsonl 2>/dev/null | grep "\"session_id\":$session," || true)
	grep -q '"name":"destroyed","reason":"request","synthetic":false' <<<"$got" && break
	sleep 1
done
grep -q '"name":"created"' <<<"$got" || fail "the backend did not get session $session's created: $got"
grep -q '"name":"destroyed","reason":"request","synthetic":false' <<<"$got" ||
	fail "the backend did not get session $session's destroyed: $got"
compose logs backend | grep -q "session $session: destroyed (request)" || fail "the backend did not print it"
compose exec -T janus grep -c "\"session_id\":$session," /var/log/janus/lifecycleevh.jsonl >/dev/null ||
	fail "session $session is not in /var/log/janus/lifecycleevh.jsonl"
echo "compose-check: session $session's created and destroyed reached the backend and the file"

compose down --volumes --timeout 30
trap - EXIT
echo "compose-check: passed in $((SECONDS - start)) s"
