#!/usr/bin/env bash
# Install reachwatch on Debian / Raspberry Pi OS (bookworm): packages, user, directories, venv, systemd unit.
#
# Idempotent: running it again upgrades the package and keeps the operator's config and journal.
#
#   sudo deploy/install.sh                # install from this checkout
#   sudo deploy/install.sh --no-apt       # skip apt-get (packages already there)
#   deploy/install.sh --root /tmp/r       # stage into a throwaway root (tests; no apt, no users, no systemctl)
#   deploy/install.sh --dry-run           # print what would be done
set -euo pipefail

ROOT=/
DRY_RUN=0
APT=1
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PACKAGES=(python3 python3-venv tor obfs4proxy snowflake-client ca-certificates)

usage() { sed -n '2,10p' "$0"; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --no-apt) APT=0; shift ;;
    -h|--help) usage ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

staged() { [ "$ROOT" != "/" ]; }
run() {
  if [ "$DRY_RUN" -eq 1 ]; then printf 'would run:'; printf ' %q' "$@"; printf '\n'; else "$@"; fi
}
p() { printf '%s%s' "${ROOT%/}" "$1"; }  # a path inside the target root

if ! staged && [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (or use --root DIR / --dry-run)" >&2
  exit 2
fi

# 1. Debian packages: tor and the transports the bridge probes drive
if [ "$APT" -eq 1 ] && ! staged; then
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PACKAGES[@]}"
  # reachwatch runs its own tor instance; the system tor service is not needed
  run systemctl disable --now tor.service || true
fi

# 2. the unprivileged user (no shell, no home)
if ! staged && ! getent passwd reachwatch >/dev/null; then
  run useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin reachwatch
fi

# 3. directories with safe permissions: config 0750 root:reachwatch, state 0700 reachwatch
owner_cfg=root:reachwatch
owner_state=reachwatch:reachwatch
if staged; then owner_cfg=$(id -u):$(id -g); owner_state=$owner_cfg; fi
run install -d -m 0750 -o "${owner_cfg%:*}" -g "${owner_cfg#*:}" "$(p /etc/reachwatch)"
run install -d -m 0700 -o "${owner_state%:*}" -g "${owner_state#*:}" "$(p /var/lib/reachwatch)"
run install -d -m 0755 "$(p /opt/reachwatch)"

# 4. the package in its own venv (upgrade in place)
if [ ! -x "$(p /opt/reachwatch/venv/bin/python)" ]; then
  run python3 -m venv "$(p /opt/reachwatch/venv)"
fi
# PIP_INSTALL_ARGS lets tests stage without re-downloading every dependency (e.g. --no-deps)
# shellcheck disable=SC2086
run "$(p /opt/reachwatch/venv/bin/python)" -m pip install --quiet --upgrade ${PIP_INSTALL_ARGS:-} "$SRC"
run install -m 0644 "$SRC/README.md" "$(p /opt/reachwatch/README.md)"

# 5. config and environment: never overwrite what the operator edited
if [ ! -e "$(p /etc/reachwatch/config.yaml)" ]; then
  run install -m 0640 -o "${owner_cfg%:*}" -g "${owner_cfg#*:}" "$SRC/config/example.yaml" "$(p /etc/reachwatch/config.yaml)"
fi
if [ ! -e "$(p /etc/reachwatch/reachwatch.env)" ]; then
  run install -m 0640 -o "${owner_cfg%:*}" -g "${owner_cfg#*:}" "$SRC/deploy/systemd/reachwatch.env" "$(p /etc/reachwatch/reachwatch.env)"
fi

# 6. the unit
run install -d -m 0755 "$(p /etc/systemd/system)"
run install -m 0644 "$SRC/deploy/systemd/reachwatch.service" "$(p /etc/systemd/system/reachwatch.service)"
if ! staged; then
  run "$(p /opt/reachwatch/venv/bin/reachwatch)" validate /etc/reachwatch/config.yaml
  run systemctl daemon-reload
  run systemctl enable --now reachwatch.service
  echo "reachwatch installed. Metrics: curl http://127.0.0.1:10491/metrics ; edit /etc/reachwatch/config.yaml then: systemctl reload reachwatch"
else
  echo "reachwatch staged into $ROOT"
fi
