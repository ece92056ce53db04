#!/usr/bin/env bash
# Builds the image <name> (default janus-upstream:<version>): upstream Janus
# <version> from the tarball in $JANUS_SRC, installed under /usr/local in
# debian:bookworm-slim (upstream/Dockerfile), as community images build it.
# Does nothing when the image exists.
#
#   upstream/image.sh <version> [<name>]
#
# The base image comes from docker/base-image.sh (no image registry needed);
# the tarball is checked against SHA256SUMS (by build-janus.sh, in the build).
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:?usage: $0 <janus version, e.g. 1.4.1> [image name]}
image=${2:-janus-upstream:$version}
src=${JANUS_SRC:?set JANUS_SRC to the folder with the Janus tarballs and SHA256SUMS}
DOCKER=${DOCKER:-docker}

if $DOCKER image inspect "$image" >/dev/null 2>&1; then
	echo "image $image: already there"
	exit 0
fi
${SUDO:-} env DOCKER="$DOCKER" docker/base-image.sh bookworm
context=$(mktemp -d "${TMPDIR:-/tmp}/janus-image.XXXXXX")
trap 'rm -rf "$context"' EXIT
cp upstream/Dockerfile upstream/build-janus.sh "$src/SHA256SUMS" "$src/janus-gateway-$version.tar.xz" "$context/"
start=$SECONDS
$DOCKER build --network host --build-arg JANUS_VERSION="$version" -t "$image" "$context"
echo "image $image: built in $((SECONDS - start)) s"
