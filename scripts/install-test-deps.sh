#!/usr/bin/env bash
# Install the Debian packages the test suite needs (only when root; otherwise say what is missing).
# Services that Debian starts on install (tor, dnsmasq, squid...) are stopped again: the tests start
# their own instances on loopback and in their own network namespaces.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
mapfile -t pkgs < <(grep -vE '^\s*(#|$)' "$here/tests/debian-packages.txt")
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "test packages: all ${#pkgs[@]} installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "test packages missing (run as root to install): ${missing[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
# keep package post-install scripts from starting daemons that would take the ports the tests use
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d
trap 'rm -f /usr/sbin/policy-rc.d' EXIT
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
