#!/usr/bin/env bash
# Builds upstream Janus from one of the release tarballs in $JANUS_SRC
# (checksums in its SHA256SUMS) and installs it into a prefix:
#
#   upstream/build-janus.sh <version> <prefix>      e.g. 0.16.1 target/janus-upstream/0.16.1
#
# A minimal Janus, enough for the tests and for an image: the EchoTest plugin,
# the HTTP and WebSockets transports, the stock sample event handler
# (sampleevh), no data channels, docs, loggers or post-processing (the
# configure flags $JANUS_SRC/README.md says were checked on every tarball).
# Does nothing when <prefix> already holds a build of the same tarball (the
# stamp <prefix>/.lifecycleevh-build names its checksum).
#
# Needs the Debian build packages of `make janus-upstream` (JANUS_BUILD_PACKAGES
# in the Makefile). Used natively by `make janus-upstream` and inside the
# image upstream/Dockerfile. JOBS sets make -j (default: the number of cores).
set -euo pipefail

version=${1:?usage: $0 <version, e.g. 0.16.1> <prefix>}
prefix=${2:?usage: $0 <version> <prefix>}
src=${JANUS_SRC:?set JANUS_SRC to the folder with the Janus tarballs and SHA256SUMS}
tarball=janus-gateway-$version.tar.xz

[ -r "$src/$tarball" ] || { echo "$0: $src/$tarball is missing" >&2; exit 1; }
[ -r "$src/SHA256SUMS" ] || { echo "$0: $src/SHA256SUMS is missing" >&2; exit 1; }
want=$(awk -v f="$tarball" '$2 == f || $2 == "*" f { print $1 }' "$src/SHA256SUMS")
[ -n "$want" ] || { echo "$0: $src/SHA256SUMS has no line for $tarball" >&2; exit 1; }
got=$(sha256sum "$src/$tarball" | cut -d' ' -f1)
[ "$got" = "$want" ] || {
	echo "$0: $src/$tarball: checksum $got, SHA256SUMS says $want" >&2
	exit 1
}

mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
stamp=$prefix/.lifecycleevh-build
if [ -x "$prefix/bin/janus" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$tarball $want" ]; then
	echo "janus $version: already built in $prefix"
	exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/janus-$version.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$SECONDS
log=$work/build.log
echo "janus $version: building into $prefix (log: $log while it runs)"
tar -xJf "$src/$tarball" -C "$work"
cd "$work/janus-gateway-$version"
rm -f "$stamp"
{
	./autogen.sh
	./configure --prefix="$prefix" --disable-docs --disable-data-channels --disable-all-plugins \
		--enable-plugin-echotest --disable-all-transports --enable-rest --enable-websockets \
		--disable-all-handlers --enable-sample-event-handler --disable-all-loggers \
		--disable-post-processing
	make -j"${JOBS:-$(nproc)}"
	make install
	make configs
} >"$log" 2>&1 || {
	tail -n 60 "$log" >&2
	echo "$0: building janus $version failed (last lines above)" >&2
	exit 1
}
"$prefix/bin/janus" --version >/dev/null
echo "$tarball $want" >"$stamp"
echo "janus $version: built in $((SECONDS - start)) s"
