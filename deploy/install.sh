#!/usr/bin/env bash
# Install reachwatch on Debian / Raspberry Pi OS bookworm (amd64, arm64, armhf): no compiler needed.
#
# Idempotent: running it again upgrades the package and keeps the operator's config and journal.
#
#   sudo deploy/install.sh --country KZ --name almaty-home-1   # from a checkout (needs PyPI), or from an
#                                                              # unpacked bundle (`make bundle`: no PyPI)
#   sudo deploy/install.sh                 # asks for the vantage identity when run in a terminal
#   sudo deploy/install.sh --no-apt        # skip apt-get (packages already there)
#   deploy/install.sh --root /tmp/r        # stage into a throwaway root (tests; no apt, users, systemctl)
#   deploy/install.sh --dry-run            # print what would be done
#
# Options passed to `reachwatch init` for a first config: --country CC --name NAME [--asn AS..] [--isp ..]
# [--city ..] [--domestic HOST,HOST]. Without them (and without a terminal to ask in) no config is written
# and the service is not started: a sample identity on a real vantage would publish wrong labels.
set -euo pipefail

ROOT=/
DRY_RUN=0
APT=1
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${REACHWATCH_PYTHON:-/usr/bin/python3}   # Debian's python3: its python3-* packages are used below
WHEELHOUSE=""
ARCH=""
INIT_ARGS=()
# tor and the client transports the bridge probes drive; lyrebird (webtunnel) is added where packaged
PACKAGES=(python3 python3-venv tor obfs4proxy snowflake-client ca-certificates)

usage() { sed -n '2,17p' "$0"; exit 2; }
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=${2:?--root needs a directory}; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --no-apt) APT=0; shift ;;
    --wheelhouse) WHEELHOUSE=${2:?--wheelhouse needs a directory}; shift 2 ;;
    --arch) ARCH=${2:?--arch needs amd64, arm64 or armhf}; shift 2 ;;
    --country|--name|--asn|--isp|--city|--domestic|--timezone)
      INIT_ARGS+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
    -h|--help) usage ;;
    *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

staged() { [ "$ROOT" != "/" ]; }
run() {
  if [ "$DRY_RUN" -eq 1 ]; then printf 'would run:'; printf ' %q' "$@"; printf '\n'; else "$@"; fi
}
p() { printf '%s%s' "${ROOT%/}" "$1"; }  # a path inside the target root
say() { printf 'install.sh: %s\n' "$*"; }

if ! staged && [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  echo "install.sh: run as root (or use --root DIR / --dry-run)" >&2
  exit 2
fi

# the bundle (`make bundle`) sits beside this script: install from it with no package index
if [ -z "$WHEELHOUSE" ] && [ -d "$SRC/wheelhouse" ]; then WHEELHOUSE="$SRC/wheelhouse"; fi
if [ -z "$ARCH" ]; then ARCH=$(dpkg --print-architecture 2>/dev/null || echo unknown); fi
case "$ARCH" in
  amd64|arm64|armhf) ;;
  *) echo "install.sh: architecture $ARCH is not one reachwatch is built for (amd64, arm64, armhf)" >&2; exit 2 ;;
esac
if [ -n "$WHEELHOUSE" ] && [ ! -f "$WHEELHOUSE/requirements-$ARCH.txt" ]; then
  echo "install.sh: $WHEELHOUSE has no requirements-$ARCH.txt (a bundle built for other architectures?)" >&2
  exit 2
fi

# compiled Python packages taken from Debian on every architecture (no armv7 wheels; see the file)
mapfile -t DEBIAN_PYTHON < <(awk '!/^[[:space:]]*(#|$)/ {print $2}' "$SRC/deploy/debian-python.txt")

# 1. Debian packages: Python and its compiled packages, tor and the transports the bridge probes drive
LYREBIRD=0
if [ "$APT" -eq 1 ] && ! staged; then
  if apt-cache show lyrebird >/dev/null 2>&1; then PACKAGES+=(lyrebird); LYREBIRD=1; fi
  run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
    "${PACKAGES[@]}" "${DEBIAN_PYTHON[@]}"
  # reachwatch runs its own tor instance; the system tor service is not needed
  run systemctl disable --now tor.service || true
fi
if command -v lyrebird >/dev/null 2>&1; then LYREBIRD=1; fi

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

# 4. the package in its own venv, which sees Debian's python3-* packages (upgrade in place)
VENV=$(p /opt/reachwatch/venv)
if [ ! -x "$VENV/bin/python" ]; then
  run "$PYTHON" -m venv --system-site-packages "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --no-input)
if [ -n "$WHEELHOUSE" ]; then
  # every wheel checked against the hash the bundle recorded; nothing fetched from any index
  run "${PIP[@]}" install --quiet --no-index --find-links "$WHEELHOUSE" --require-hashes --no-deps \
    -r "$WHEELHOUSE/requirements-$ARCH.txt"
  # the same resolution with dependencies: fails, naming it, if a Debian package is missing or too old
  run "${PIP[@]}" install --quiet --no-index --find-links "$WHEELHOUSE" reachwatch
else
  # PIP_INSTALL_ARGS lets tests stage without re-downloading every dependency (e.g. --no-deps)
  # shellcheck disable=SC2086
  run "${PIP[@]}" install --quiet --upgrade --prefer-binary ${PIP_INSTALL_ARGS:-} "$SRC"
fi
run install -m 0644 "$SRC/README.md" "$(p /opt/reachwatch/README.md)"
RW="$VENV/bin/reachwatch"

# 5. config and environment: never overwrite what the operator edited; never a sample identity
CONFIG=$(p /etc/reachwatch/config.yaml)
HAVE_CONFIG=1
if [ ! -e "$CONFIG" ]; then
  if [ ${#INIT_ARGS[@]} -gt 0 ] || { [ -t 0 ] && [ "$DRY_RUN" -eq 0 ]; }; then
    run "$RW" init "${INIT_ARGS[@]}" --output "$CONFIG"
    if ! staged; then run chgrp reachwatch "$CONFIG"; run chmod 0640 "$CONFIG"; fi
  else
    HAVE_CONFIG=0
    say "no config written: give the vantage identity, e.g."
    say "  sudo $RW init --country KZ --name almaty-home-1 --output /etc/reachwatch/config.yaml"
    say "then: sudo systemctl enable --now reachwatch"
  fi
fi
if [ ! -e "$(p /etc/reachwatch/reachwatch.env)" ]; then
  run install -m 0640 -o "${owner_cfg%:*}" -g "${owner_cfg#*:}" "$SRC/deploy/systemd/reachwatch.env" "$(p /etc/reachwatch/reachwatch.env)"
fi

# 6. the unit
run install -d -m 0755 "$(p /etc/systemd/system)"
run install -m 0644 "$SRC/deploy/systemd/reachwatch.service" "$(p /etc/systemd/system/reachwatch.service)"
# the canary abroad (docs/CANARY.md): installed, not enabled; `systemctl enable --now reachwatch-canary`
run install -m 0644 "$SRC/deploy/systemd/reachwatch-canary.service" "$(p /etc/systemd/system/reachwatch-canary.service)"

if [ "$LYREBIRD" -eq 0 ]; then
  say "lyrebird (the webtunnel client) is not packaged here: webtunnel bridges will report tor_pt_missing."
  say "  Install it from bookworm-backports or Tor Project's packages, or leave webtunnel targets out."
fi
if staged; then
  if [ "$HAVE_CONFIG" -eq 1 ] && [ "$DRY_RUN" -eq 0 ]; then run "$RW" validate "$CONFIG"; fi
  say "staged into $ROOT"
  exit 0
fi
run systemctl daemon-reload
if [ "$HAVE_CONFIG" -eq 1 ]; then
  run runuser -u reachwatch -- "$RW" validate /etc/reachwatch/config.yaml
  run systemctl enable --now reachwatch.service
  say "installed. Metrics: curl http://127.0.0.1:10491/metrics ; status page: http://127.0.0.1:10491/"
  say "edit /etc/reachwatch/config.yaml, then: sudo systemctl reload reachwatch"
fi
