#!/usr/bin/env bash
# Builds the Debian package from this tree:
#   build/deb/libapache2-mod-redeem_VERSION_ARCH.deb
# The files of the tree as git sees them (tracked ones, and new ones not yet
# committed; nothing that .gitignore ignores) are copied into build/deb/src and built there with dpkg-buildpackage -b, without the test
# suite (`make test` runs it). Needs debhelper, dpkg-dev and the build
# dependencies of debian/control (scripts/deps.sh installs them all).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/build/deb
src=$out/src

version=$(cat "$root/VERSION")
changelog_version=$(dpkg-parsechangelog -l "$root/debian/changelog" -S Version)
if [ "${changelog_version%-*}" != "$version" ]; then
  echo "deb: VERSION says $version but debian/changelog $changelog_version: add a changelog entry" >&2
  exit 1
fi
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
deb=$out/libapache2-mod-redeem_${changelog_version}_$arch.deb

rm -rf "$src"
mkdir -p "$src"
rm -f "$out"/libapache2-mod-redeem*.deb "$out"/libapache2-mod-redeem*.ddeb \
  "$out"/libapache2-mod-redeem*.changes "$out"/libapache2-mod-redeem*.buildinfo
cd "$root"
if files=$(git ls-files -z --cached --others --exclude-standard 2>/dev/null | tr '\0' '\n') && [ -n "$files" ]; then
  # Only files that exist: a deleted one stays listed until the deletion is committed.
  while IFS= read -r f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done <<<"$files" |
    tar --null -T - -cf - | tar -xf - -C "$src"
else
  tar --exclude=./build --exclude=./.git -cf - . | tar -xf - -C "$src"
fi

log=$out/build.log
echo "deb: building $(basename "$deb") (log: $log)"
cd "$src"
if ! DEB_BUILD_OPTIONS="nocheck ${DEB_BUILD_OPTIONS:-}" \
  dpkg-buildpackage -b -us -uc -Jauto >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  echo "deb: dpkg-buildpackage failed (whole log: $log)" >&2
  exit 1
fi
[ -f "$deb" ] || { echo "deb: $deb was not made (log: $log)" >&2; exit 1; }
echo "deb: $deb"
