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

# Debian's server packages start their servers system-wide as they install,
# and at every boot after: apache2 on port 80, PostgreSQL on 5432, Redis on
# 6379. mod_redeem runs private servers of its own and asks for none of
# those. So the install runs under a policy-rc.d that refuses every start
# (invoke-rc.d(8)), unless the machine has a policy of its own, which then
# stands; and the servers of the packages this run installed are not started
# at boot either (update-rc.d ... disable; `update-rc.d NAME enable` undoes it).
# REDEEM_POLICY_RC_D moves the policy file, for t/deploy/deps.t only.
policy=${REDEEM_POLICY_RC_D:-/usr/sbin/policy-rc.d}
if [ ! -e "$policy" ] && [ ! -L "$policy" ]; then
  printf '#!/bin/sh\n# scripts/deps.sh of mod_redeem, while it installs packages\nexit 101\n' >"$policy.redeem"
  chmod 755 "$policy.redeem"
  mv "$policy.redeem" "$policy"
  trap 'rm -f "$policy"' EXIT
fi
$cmd >/dev/null

declare -A service_of=([apache2]=apache2 [postgresql]=postgresql [redis-server]=redis-server)
for p in "${missing[@]}"; do
  service=${service_of[$p]:-}
  [ -n "$service" ] || continue
  update-rc.d "$service" disable >/dev/null 2>&1 ||
    echo "deps: could not keep $service from starting at boot (update-rc.d $service disable)" >&2
  echo "deps: $p installed, its system-wide server neither started nor started at boot"
done
