#!/bin/sh
# lifecycleevh-health [-q]: asks lifecycleevh, through Janus's Admin API, for
# its `info`; exits 0 when the handler answers that it runs, 1 otherwise
# (no Admin API, handler missing, or disabled by a config error: the answer
# says why). Prints the answer unless -q. The image's HEALTHCHECK.
#
# The Admin API's port and secret come from the configs Janus runs with
# (janus.transport.http.jcfg, janus.jcfg); JANUS_ADMIN_URL and
# JANUS_ADMIN_SECRET override them.
set -eu
quiet=
[ "${1:-}" = -q ] && quiet=1

configs=/etc/janus
[ -f /tmp/janus/config/janus.jcfg ] && configs=/tmp/janus/config
value() { # value <file> <key>: the key's first value in a .jcfg, quotes removed
	sed -n "s/^[[:space:]]*$2[[:space:]]*=[[:space:]]*\"\{0,1\}\([^\"#[:space:]]*\).*/\1/p" "$configs/$1" 2>/dev/null | head -n 1
}
secret=${JANUS_ADMIN_SECRET:-$(value janus.jcfg admin_secret)}
port=$(value janus.transport.http.jcfg admin_port)
base=$(value janus.transport.http.jcfg admin_base_path)
url=${JANUS_ADMIN_URL:-http://127.0.0.1:${port:-7088}${base:-/admin}}

body='{"janus":"query_eventhandler","handler":"janus.eventhandler.lifecycleevh","request":{"request":"info"},"transaction":"healthcheck","admin_secret":"'"$secret"'"}'
if ! reply=$(curl -fsS -m 4 -H 'Content-Type: application/json' --data "$body" "$url" 2>&1); then
	echo "lifecycleevh-health: no answer from Janus's Admin API at $url: $reply"
	exit 1
fi
case $reply in
*'"result": 200'* | *'"result":200'*) ;;
*)
	echo "lifecycleevh-health: lifecycleevh is not running: $reply"
	exit 1
	;;
esac
[ -n "$quiet" ] || printf '%s\n' "$reply"
