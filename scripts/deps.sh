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
# `scripts/deps.sh build` (make deb): only what building the package needs,
# for a host that installs it: no server, no test or bench tool.
if [ "${1:-}" = build ]; then
  packages=(
    build-essential debhelper dpkg-dev pkg-config apache2-dev
    libjansson-dev libargon2-dev libssl-dev libpq-dev libhiredis-dev
  )
fi

installed() { [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" = "install ok installed" ]; }
missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done
# A policy-rc.d this script left behind (below; killed mid-install) goes,
# whatever is missing now: it would refuse every service start on the machine.
# REDEEM_POLICY_RC_D moves the policy file, for t/deploy/deps.t only.
policy=${REDEEM_POLICY_RC_D:-/usr/sbin/policy-rc.d}
marker='# scripts/deps.sh of mod_redeem, while it installs packages'
if grep -qxF "$marker" "$policy" 2>/dev/null; then rm -f "$policy" 2>/dev/null || true; fi
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

# Debian's server packages start their servers system-wide as they install,
# and at every boot after: apache2 on port 80, PostgreSQL on 5432, Redis on
# 6379. mod_redeem runs private servers of its own and asks for none of
# those. So when one of them is to be installed, the install runs under a
# policy-rc.d that refuses every start (invoke-rc.d(8)), unless the machine
# has a policy of its own, which then stands; and a service
# that was not on the machine before is not started at boot either
# (update-rc.d ... disable; `update-rc.d NAME enable` undoes it). A service
# is known by the package that brings it: PostgreSQL's by postgresql-common,
# not the postgresql metapackage, so a PostgreSQL the machine runs already
# is left as it is.
declare -A provider_of=([apache2]=apache2 [postgresql]=postgresql-common [redis-server]=redis-server)
new_services=() servers_missing=0
for p in "${missing[@]}"; do
  case $p in apache2 | postgresql | redis-server) servers_missing=1 ;; esac
done
for service in apache2 postgresql redis-server; do
  installed "${provider_of[$service]}" || new_services+=("$service")
done
if [ "$servers_missing" = 1 ] && [ ! -e "$policy" ] && [ ! -L "$policy" ]; then
  printf '#!/bin/sh\n%s\nexit 101\n' "$marker" >"$policy.redeem"
  chmod 755 "$policy.redeem"
  mv "$policy.redeem" "$policy"
  trap 'rm -f "$policy"' EXIT
fi
$cmd >/dev/null

for service in "${new_services[@]}"; do
  installed "${provider_of[$service]}" || continue
  update-rc.d "$service" disable >/dev/null 2>&1 ||
    echo "deps: could not keep $service from starting at boot (update-rc.d $service disable)" >&2
  echo "deps: $service installed, its system-wide server neither started nor started at boot"
done
