#!/usr/bin/env bash
# Installs the Debian packages that mod_redeem needs to build, test and run.
# As root it runs apt-get; otherwise it prints the exact command and fails.
set -euo pipefail

packages=(
  build-essential apache2 apache2-dev libaprutil1-dbd-pgsql
  libjansson-dev libjwt-dev libargon2-dev libssl-dev libpq-dev
  postgresql postgresql-client libtest-base-perl wrk
  libhiredis-dev redis-server redis-tools
  debhelper dpkg-dev argon2 iproute2
  libjson-validator-perl libyaml-libyaml-perl
  clang libclang-rt-14-dev
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "mod_redeem needs these Debian packages; run as root:" >&2
  echo "  apt-get update && $cmd" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Debian's apache2 package starts its own server on port 80 where a service manager
# runs; we never want that instance, only the private one.
$cmd >/dev/null
