#!/usr/bin/env bash
# Builds the Debian packages from a release build of the handler, with
# dpkg-deb only (no cargo-deb: the Docker builder cannot fetch tools from
# crates.io, and this is all a plugin package needs). Used by `make deb`
# and by the Dockerfile's builder stage.
#
#   packaging/build-deb.sh [path/to/libjanus_lifecycleevh.so] [output folder]
#
# Defaults: target/release/libjanus_lifecycleevh.so, target/debian/. Writes
#   lifecycleevh_<version>_<arch>.deb         the stripped handler in Debian Janus's
#                                             events folder, the sample config as a
#                                             conffile in /etc/janus
#   lifecycleevh-dbgsym_<version>_<arch>.deb  its debug info, found by gdb through
#                                             the build id (/usr/lib/debug/.build-id)
# Needs dpkg-dev (dpkg-shlibdeps, dpkg-architecture) and binutils (objcopy).
set -euo pipefail
cd "$(dirname "$0")/.."

so=${1:-target/release/libjanus_lifecycleevh.so}
out=${2:-target/debian}
[ -f "$so" ] || { echo "$0: $so is missing (cargo build --release --locked)" >&2; exit 1; }

name=lifecycleevh
upstream=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)
version=${DEB_VERSION:-$upstream-1}
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)
events_dir=usr/lib/$multiarch/janus/events
config=etc/janus/janus.eventhandler.lifecycleevh.jcfg

work=$(mktemp -d "${TMPDIR:-/tmp}/lifecycleevh-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
pkg=$work/$name
dbg=$work/$name-dbgsym
mkdir -p "$pkg/DEBIAN" "$pkg/$events_dir" "$pkg/etc/janus" "$pkg/usr/share/doc/$name" \
	"$dbg/DEBIAN" "$dbg/usr/share/doc"

# Split the debug info off (as dh_strip does), keyed by the build id.
build_id=$(readelf -n "$so" | sed -n 's/^ *Build ID: *\([0-9a-f]*\)$/\1/p')
[ -n "$build_id" ] || { echo "$0: $so has no build id (gcc/ld without --build-id?)" >&2; exit 1; }
debug_file=usr/lib/debug/.build-id/${build_id:0:2}/${build_id:2}.debug
mkdir -p "$dbg/$(dirname "$debug_file")"
objcopy --only-keep-debug --compress-debug-sections "$so" "$dbg/$debug_file"
chmod 0644 "$dbg/$debug_file"
objcopy --remove-section=.comment --remove-section=.note --strip-unneeded \
	--add-gnu-debuglink="$dbg/$debug_file" "$so" "$pkg/$events_dir/libjanus_lifecycleevh.so"
chmod 0644 "$pkg/$events_dir/libjanus_lifecycleevh.so"
ln -s $name "$dbg/usr/share/doc/$name-dbgsym"

install -m 0644 conf/janus.eventhandler.lifecycleevh.jcfg "$pkg/$config"
cat >"$pkg/usr/share/doc/$name/copyright" <<COPYRIGHT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: $name
License: GPL-3.0-only

Files: *
License: GPL-3.0-only
 On Debian systems, the full text of the GNU General Public License
 version 3 can be found in /usr/share/common-licenses/GPL-3.
COPYRIGHT
echo "/$config" >"$pkg/DEBIAN/conffiles"

# Shared-library dependencies as dpkg computes them (libc6, libgcc-s1, libjansson4).
mkdir -p "$work/src/debian"
printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' $name $name >"$work/src/debian/control"
shlibs=$(cd "$work/src" && dpkg-shlibdeps -O "$pkg/$events_dir/libjanus_lifecycleevh.so" 2>/dev/null |
	sed -n 's/^shlibs:Depends=//p')
[ -n "$shlibs" ] || { echo "$0: dpkg-shlibdeps found no dependencies" >&2; exit 1; }

maintainer="lifecycleevh maintainers <maintainers@users.noreply.r-seed-c16bc015.example>"
size() { du -k -s --apparent-size "$1" | cut -f1; }
cat >"$pkg/DEBIAN/control" <<CONTROL
Package: $name
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(size "$pkg")
Depends: janus (>= 1.1), $shlibs
Section: net
Priority: optional
Description: Janus event handler: one "destroyed" per session, with its reason
 lifecycleevh is an event handler for the Janus WebRTC server. It tracks every
 Janus session and emits the "destroyed" events Janus does not send (session
 timeouts, dropped WebSocket connections on Janus < 1.3.2, shutdown, crashes),
 each with the reason the session ended, and forwards the event stream to a
 JSON Lines file, HTTP backends (in the format of Janus's sample handler) and
 Janus's own event bus.
 .
 Enable it in /etc/janus/janus.eventhandler.lifecycleevh.jcfg, with
 "events: { broadcast = true }" in janus.jcfg.
CONTROL
cat >"$dbg/DEBIAN/control" <<CONTROL
Package: $name-dbgsym
Source: $name
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $(size "$dbg")
Depends: $name (= $version)
Section: debug
Priority: optional
Auto-Built-Package: debug-symbols
Build-Ids: $build_id
Description: debug symbols for $name
 Lets gdb show the Rust source lines of a lifecycleevh backtrace.
CONTROL

for dir in "$pkg" "$dbg"; do
	(cd "$dir" && find . -type f -not -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) >"$dir/DEBIAN/md5sums"
done
mkdir -p "$out"
dpkg-deb --root-owner-group -Zxz --build "$pkg" "$out/${name}_${version}_${arch}.deb" >/dev/null
dpkg-deb --root-owner-group -Zxz --build "$dbg" "$out/${name}-dbgsym_${version}_${arch}.deb" >/dev/null
ls -l "$out/${name}_${version}_${arch}.deb" "$out/${name}-dbgsym_${version}_${arch}.deb" | awk '{print $5, $NF}'
