#!/usr/bin/env bash
# CI's check of the Debian packages (make deb): in a bare
# debian:<release>-slim container for each release given (default: bookworm
# sid), `apt-get install ./lifecycleevh_*.deb` pulls in Debian's janus, Janus
# starts with the handler loaded and writing its file; an edited config
# survives `apt-get remove` and a reinstall (a conffile), `purge` removes
# it; the -dbgsym package holds the debug info for the installed .so's
# build id.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKER=${DOCKER:-docker}
debs=$(cd target/debian && ls lifecycleevh_*.deb lifecycleevh-dbgsym_*.deb 2>/dev/null | wc -l)
[ "$debs" -ge 2 ] || { echo "$0: no packages in target/debian (make deb)" >&2; exit 1; }

releases=("$@")
[ ${#releases[@]} -gt 0 ] || releases=(bookworm sid)
for release in "${releases[@]}"; do
	start=$SECONDS
	echo "deb-check: debian:$release-slim"
	docker/base-image.sh "$release"
	$DOCKER run --rm --network host --volume "$PWD/target/debian:/debs:ro" "debian:$release-slim" bash -euc '
		export DEBIAN_FRONTEND=noninteractive
		cd /debs
		apt-get update -q >/dev/null
		apt-get install -y -q --no-install-recommends ./lifecycleevh_*.deb >/tmp/apt.log || { cat /tmp/apt.log; exit 1; }
		dpkg-query -W janus lifecycleevh
		so=$(dpkg -L lifecycleevh | grep "/janus/events/libjanus_lifecycleevh.so$")
		cfg=/etc/janus/janus.eventhandler.lifecycleevh.jcfg
		grep -qx "$cfg" /var/lib/dpkg/info/lifecycleevh.conffiles

		# Janus starts with the handler, which writes its file.
		sed -i "s/^\([[:space:]]*\)#[[:space:]]*broadcast = true/\1broadcast = true/" /etc/janus/janus.jcfg
		timeout -s INT 4 janus --disable-colors >/tmp/janus.log 2>&1 || [ $? = 124 ]
		grep -q "Loading event handler plugin .libjanus_lifecycleevh.so" /tmp/janus.log
		grep "lifecycleevh [0-9.]* initialized (config $cfg" /tmp/janus.log
		grep "lifecycleevh destroyed" /tmp/janus.log
		grep -q "\"subtype\":2" /var/log/janus/lifecycleevh.jsonl   # the shutdown event
		echo "janus ran with the handler: $(wc -l </var/log/janus/lifecycleevh.jsonl) events in its file"

		# The config is a conffile: an edit survives remove and reinstall, not purge.
		echo "# edited by the operator" >>"$cfg"
		apt-get remove -y -q lifecycleevh >/dev/null
		[ ! -e "$so" ]
		grep -q "edited by the operator" "$cfg"
		apt-get install -y -q ./lifecycleevh_*.deb >/dev/null
		grep -q "edited by the operator" "$cfg"
		apt-get purge -y -q lifecycleevh >/dev/null
		[ ! -e "$cfg" ]
		echo "conffile: kept on remove and reinstall, gone on purge"

		# The debug info, found by build id.
		apt-get install -y -q --no-install-recommends ./lifecycleevh_*.deb ./lifecycleevh-dbgsym_*.deb binutils >/dev/null
		id=$(readelf -n "$so" | sed -n "s/^ *Build ID: *//p")
		debug=/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug
		readelf -S "$debug" | grep -q "\.debug_info"
		if readelf -S "$so" | grep -q "\.debug_info"; then echo "$so is not stripped"; exit 1; fi
		echo "debug info: $debug ($(du -k "$debug" | cut -f1) kB; the .so: $(du -k "$so" | cut -f1) kB)"
	'
	echo "deb-check: debian:$release-slim passed in $((SECONDS - start)) s"
done
