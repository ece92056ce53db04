#!/usr/bin/env bash
# Makes the base image `debian:<release>-slim` locally, for machines that
# reach Debian's mirror but no image registry, so that the Dockerfile built
# here is the very one users build against Docker Hub. Does nothing when the
# image already exists (pulled, or made before).
#
#   docker/base-image.sh bookworm|sid|<any Debian suite>
#
# It is `debootstrap --variant=minbase` from the mirror apt uses on this
# machine (or $DEBIAN_MIRROR), slimmed the way Docker Hub's -slim images are
# (debuerreotype's dpkg excludes: no docs, man pages or locales) and
# `docker import`ed. Needs root (debootstrap chroots), debootstrap, a Docker
# engine.
set -euo pipefail

release=${1:?usage: $0 <debian release, e.g. bookworm or sid>}
image=debian:${release}-slim
DOCKER=${DOCKER:-docker}

if $DOCKER image inspect "$image" >/dev/null 2>&1; then
	echo "base image $image: already there"
	exit 0
fi

# The mirror apt is configured with (deb822 .sources or one-line sources.list),
# the Debian archive only (not -security, not third-party repositories).
find_mirror() {
	local f
	for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		sed -n -e 's/^URIs:[[:space:]]*//p' -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\([^[:space:]]\+\).*/\2/p' "$f"
	done | grep -E '/debian/?$' | grep -v -- '-security' | head -n 1
}
mirror=${DEBIAN_MIRROR:-$(find_mirror || true)}
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}
security=${mirror%/debian}/debian-security

command -v debootstrap >/dev/null || { echo "$0: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/base-image-$release.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
echo "base image $image: debootstrap --variant=minbase $release from $mirror"
start=$SECONDS
debootstrap --variant=minbase "$release" "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
	tail -n 40 "$work/debootstrap.log" >&2
	echo "$0: debootstrap failed (log above)" >&2
	exit 1
}

# What Docker Hub's images carry (debuerreotype's "slimify" and apt settings).
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
CFG
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
echo 'APT::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
find "$root/usr/share/doc" -mindepth 2 -not -name copyright -not -type d -delete 2>/dev/null || true
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -rf "$root/usr/share/man/"* "$root/usr/share/info/"* "$root/usr/share/groff/"* "$root/usr/share/linda/"* \
	"$root/usr/share/lintian/overrides/"*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true

# Sources as in Docker Hub's image (deb822), from this mirror.
rm -f "$root/etc/apt/sources.list"
case $release in
sid | unstable | experimental)
	suites="$release" ;;
*)
	suites="$release $release-updates" ;;
esac
{
	printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
		"$mirror" "$suites"
	case $release in
	sid | unstable | experimental) ;;
	*) printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
		"$security" "$release" ;;
	esac
} >"$root/etc/apt/sources.list.d/debian.sources"

# A mirror that is a frozen snapshot serves Release files past their
# Valid-Until (sid's is valid for a week): let apt in this image accept them,
# as the mirror's users must. Checked, not assumed.
cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
if ! chroot "$root" apt-get update -q >"$work/apt-update.log" 2>&1; then
	if grep -qi 'expired' "$work/apt-update.log"; then
		echo "base image $image: $mirror serves an expired $release Release file; apt in this image accepts it"
		echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99snapshot-mirror"
		chroot "$root" apt-get update -q >"$work/apt-update.log" 2>&1 || { cat "$work/apt-update.log" >&2; exit 1; }
	else
		cat "$work/apt-update.log" >&2
		echo "$0: apt-get update fails in the new $release root" >&2
		exit 1
	fi
fi
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin "$root/var/cache/apt/archives/"*.deb \
	"$root/var/log/"*.log "$root/var/log/apt/"* "$root/tmp/"* "$root/root/.bash_history"
: >"$root/etc/resolv.conf"

tar --numeric-owner -C "$root" -c . | $DOCKER import \
	--change 'CMD ["bash"]' \
	--message "debootstrap --variant=minbase $release $mirror (made by lifecycleevh's docker/base-image.sh)" \
	- "$image" >/dev/null
echo "base image $image: made in $((SECONDS - start)) s ($($DOCKER image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
