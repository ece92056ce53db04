#!/usr/bin/env bash
# Check of the fleet example (compose.yaml here): brings it up, ends a
# session on each Janus and checks that the consumer printed both endings,
# each with its own Janus (the events' emitter); then kills RabbitMQ, ends a
# session while it is down, starts it again and checks that the ending
# arrives all the same (from janus-1's spool); then takes it all down
# (volumes too). Needs the image lifecycleevh:bookworm (make docker), the
# Debian base image (docker/base-image.sh bookworm) and free ports 18088,
# 18188, 28088, 28188 and 10000-10099/udp.
#
# LIFECYCLEEVH_SO=target/release/libjanus_lifecycleevh.so runs that build
# of the handler in the image instead of the image's own (to check a change
# before the image is rebuilt).
set -euo pipefail
so=${LIFECYCLEEVH_SO:+$(readlink -f "$LIFECYCLEEVH_SO")}
cd "$(dirname "$0")"
COMPOSE=${COMPOSE:-docker-compose}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-lifecycleevh-fleet-check}
files=(-f compose.yaml)
if [ -n "$so" ]; then
	[ -f "$so" ] || { echo "fleet-check: no file $LIFECYCLEEVH_SO" >&2; exit 1; }
	override=$(mktemp --suffix=.yaml)
	trap 'rm -f "$override"' EXIT
	events=/usr/lib/x86_64-linux-gnu/janus/events/libjanus_lifecycleevh.so
	printf 'services:\n' >"$override"
	for j in janus-1 janus-2; do
		printf '  %s:\n    volumes:\n      - %s:%s:ro\n' "$j" "$so" "$events" >>"$override"
	done
	files+=(-f "$override")
fi
compose() { $COMPOSE "${files[@]}" "$@"; }

fail() {
	echo "fleet-check: $*" >&2
	compose ps >&2 || true
	compose logs --tail=60 >&2 || true
	exit 1
}
cleanup() {
	compose down --volumes --timeout 30 >/dev/null 2>&1 || true
	rm -f "${override:-}"
}
trap cleanup EXIT

start=$SECONDS
../../docker/base-image.sh bookworm >/dev/null
compose build -q
compose up -d

healthy() {
	local c
	c=$(compose ps -q "$1")
	[ "$(docker inspect --format '{{.State.Health.Status}}' "$c")" = healthy ]
}
for _ in $(seq 120); do
	healthy janus-1 && healthy janus-2 && healthy rabbitmq && break
	sleep 1
done
healthy janus-1 && healthy janus-2 && healthy rabbitmq || fail "not healthy after 120 s"
echo "fleet-check: up and healthy ($((SECONDS - start)) s)"

# Creates and destroys a session on the Janus whose HTTP API is on $1;
# prints its id.
session() {
	local api=http://127.0.0.1:$1/janus reply id
	reply=$(curl -fsS -m 10 -d '{"janus":"create","transaction":"fleet-check"}' "$api") || fail "create: $reply"
	id=$(sed -n 's/.*"id": *\([0-9][0-9]*\).*/\1/p' <<<"$reply" | head -n 1)
	[ -n "$id" ] || fail "no session id in $reply"
	curl -fsS -m 10 -d '{"janus":"destroy","transaction":"fleet-check"}' "$api/$id" >/dev/null || fail "destroy $id"
	echo "$id"
}
# Waits until the consumer printed $1.
printed() {
	for _ in $(seq 60); do
		compose logs consumer | grep -qF "$1" && return 0
		sleep 1
	done
	fail "the consumer did not print: $1"
}

one=$(session 18088)
two=$(session 28088)
printed "janus-1: session $one ended (request)"
printed "janus-2: session $two ended (request)"
echo "fleet-check: each Janus's ending reached the consumer, with its emitter ($((SECONDS - start)) s)"

# RabbitMQ down: janus-1's ending waits in its spool, and arrives.
compose kill rabbitmq >/dev/null
three=$(session 18088)
sleep 2
compose logs consumer | grep -qF "session $three ended" && fail "printed while RabbitMQ was down?"
compose start rabbitmq >/dev/null
printed "janus-1: session $three ended (request)"
echo "fleet-check: an ending made while RabbitMQ was down arrived once it was back ($((SECONDS - start)) s)"

cleanup
trap - EXIT
echo "fleet-check: passed in $((SECONDS - start)) s"
