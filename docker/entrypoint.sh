#!/bin/sh
# The image's entrypoint: runs Janus with the image's configs (/etc/janus),
# each replaced by a file of the same name mounted into /config, if any:
#
#   docker run -v "$PWD/my-config:/config:ro" ... lifecycleevh:bookworm
#
# where my-config/ holds only the .jcfg files to change (e.g.
# janus.eventhandler.lifecycleevh.jcfg). Arguments starting with "-" are
# passed to Janus (e.g. --rtp-port-range=10000-10099 --nat-1-1=203.0.113.7,
# see janus --help); any other command runs instead of Janus (e.g. bash).
set -eu

overrides=${JANUS_CONFIG_OVERRIDES:-/config}
configs=/etc/janus
merged=/tmp/janus/config
rm -rf "$merged"
if ls "$overrides"/*.jcfg >/dev/null 2>&1; then
	mkdir -p "$merged"
	cp -L /etc/janus/*.jcfg "$merged"/
	for f in "$overrides"/*.jcfg; do
		echo "janus-entrypoint: using $f"
		cp -L "$f" "$merged"/
	done
	configs=$merged
fi

if [ $# -eq 0 ] || [ "${1#-}" != "$1" ]; then
	exec /usr/bin/janus --configs-folder="$configs" --config="$configs/janus.jcfg" --disable-colors "$@"
fi
exec "$@"
