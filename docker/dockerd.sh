#!/usr/bin/env bash
# Makes sure a Docker engine answers: does nothing when one does; otherwise
# starts Debian's docker.io service (systemd), or, on machines without
# systemd, dockerd by hand, detached, logging to /var/log/dockerd.log.
# DOCKERD_FLAGS are its flags by hand (default: --iptables=false
# --bridge=none, for machines where the engine may not change the firewall
# or make docker0; builds and containers then use --network host).
# Needs root.
set -euo pipefail
DOCKER=${DOCKER:-docker}
if $DOCKER info >/dev/null 2>&1; then
	exit 0
fi
command -v dockerd >/dev/null || { echo "$0: dockerd is missing (apt-get install docker.io)" >&2; exit 1; }

if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
	echo "dockerd.sh: systemctl start docker"
	systemctl start docker
else
	pidfile=/var/run/docker.pid
	# A dockerd killed hard leaves its pid file behind; the next refuses to start.
	if [ -f "$pidfile" ] && ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
		echo "dockerd.sh: removing stale $pidfile"
		rm -f "$pidfile"
	fi
	flags=${DOCKERD_FLAGS:---iptables=false --bridge=none}
	echo "dockerd.sh: starting dockerd $flags (log: /var/log/dockerd.log)"
	# shellcheck disable=SC2086 # flags are words
	setsid nohup dockerd $flags </dev/null >>/var/log/dockerd.log 2>&1 &
fi
for _ in $(seq 60); do
	if $DOCKER info >/dev/null 2>&1; then
		exit 0
	fi
	sleep 0.5
done
tail -n 30 /var/log/dockerd.log >&2 2>/dev/null || true
echo "$0: the Docker engine did not come up within 30 s" >&2
exit 1
