"""The systemd unit and the installer: verified by systemd itself, shellcheck, and a staged install."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "reachwatch.service"
INSTALL = REPO / "deploy" / "install.sh"
DROP_IN = REPO / "deploy" / "systemd" / "reachwatch.service.d" / "openvpn-tunnel.conf"
CANARY_UNIT = REPO / "deploy" / "systemd" / "reachwatch-canary.service"


def _unit_with_exec(tmp_path: Path, source: Path = UNIT) -> Path:
    """A copy of the unit whose binaries exist here, so `verify` checks everything else for real."""
    fake = tmp_path / "bin" / "reachwatch"
    fake.parent.mkdir(exist_ok=True)
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    text = source.read_text().replace("/opt/reachwatch/venv/bin/reachwatch", str(fake))
    unit = tmp_path / source.name
    unit.write_text(text)
    return unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("source", [UNIT, CANARY_UNIT], ids=lambda p: p.name)
def test_unit_passes_systemd_analyze_verify(tmp_path: Path, source: Path) -> None:
    unit = _unit_with_exec(tmp_path, source)
    out = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_canary_unit_keeps_only_the_capability_to_bind_low_ports(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(CANARY_UNIT, root / "etc/systemd/system/reachwatch-canary.service")
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--root={root}", "reachwatch-canary.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    table = out.stdout
    granted = [ln.split()[1] for ln in table.splitlines() if ln.startswith("✗ CapabilityBoundingSet")]
    # systemd rates the networking group (BIND_SERVICE, BROADCAST, RAW) as one: only that group is open
    assert granted == ["CapabilityBoundingSet=~CAP_NET_(BIND_SERVICE|BROADCAST|RAW)"], table
    line = [ln for ln in table.splitlines() if "Overall exposure level" in ln]
    assert line and float(line[0].split(":")[1].split()[0]) <= 2.0, line
    text = CANARY_UNIT.read_text()
    assert "AmbientCapabilities=CAP_NET_BIND_SERVICE\n" in text
    assert "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n" in text
    for directive in ("NoNewPrivileges=yes", "ProtectSystem=strict", "User=reachwatch", "ExecReload="):
        assert directive in text, directive


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_exposure_is_low(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system/reachwatch.service")
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--root={root}", "reachwatch.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    line = [ln for ln in out.stdout.splitlines() if "Overall exposure level" in ln]
    assert line, out.stdout + out.stderr
    exposure = float(line[0].split(":")[1].split()[0])
    assert exposure <= 2.0, line[0]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_openvpn_tunnel_drop_in_opens_only_user_and_net_namespaces_and_the_tun_device(tmp_path: Path) -> None:
    """The drop-in for openvpn_tunnel's data stage keeps exposure low and grants no capability."""
    root = tmp_path / "root"
    units = root / "etc/systemd/system"
    (units / "reachwatch.service.d").mkdir(parents=True)
    shutil.copy(UNIT, units / "reachwatch.service")
    shutil.copy(DROP_IN, units / "reachwatch.service.d" / DROP_IN.name)
    out = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", f"--root={root}", "reachwatch.service"],
        capture_output=True,
        text=True,
        check=False,
    )
    table = out.stdout
    opened = {ln.split()[1] for ln in table.splitlines() if ln.startswith("✗ RestrictNamespaces")}
    assert opened == {"RestrictNamespaces=~user", "RestrictNamespaces=~net"}, table
    assert "/dev/net/tun:rw" in table, table
    assert not [ln for ln in table.splitlines() if ln.startswith("✗ CapabilityBoundingSet")], table
    line = [ln for ln in table.splitlines() if "Overall exposure level" in ln]
    assert line and float(line[0].split(":")[1].split()[0]) <= 2.0, line


def test_unit_hardening_directives_present() -> None:
    text = UNIT.read_text()
    for directive in (
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "StateDirectory=reachwatch",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=",
        "MemoryMax=",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "User=reachwatch",
    ):
        assert directive in text, directive


def test_unit_gives_the_descriptor_budget_the_listener_cap_is_computed_from() -> None:
    from reachwatch.weblisten import NOFILE_TARGET  # noqa: PLC0415

    limits = [ln for ln in UNIT.read_text().splitlines() if ln.startswith("LimitNOFILE=")]
    # the unit's SystemCallFilter denies setrlimit: the daemon cannot raise its own limit there
    assert limits == [f"LimitNOFILE={NOFILE_TARGET}"]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_install_script_is_shellcheck_clean() -> None:
    out = subprocess.run(["shellcheck", str(INSTALL)], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout


def test_install_dry_run_lists_every_step_and_changes_nothing(tmp_path: Path) -> None:
    out = subprocess.run(
        ["bash", str(INSTALL), "--dry-run", "--root", str(tmp_path / "r")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "install -d -m 0700" in out.stdout and "/var/lib/reachwatch" in out.stdout
    assert "reachwatch.service" in out.stdout
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_install_without_an_identity_writes_no_config_and_says_how(tmp_path: Path) -> None:
    """No flags and no terminal to ask in: no sample identity, no config, the way to write one."""
    env = {**os.environ, "PIP_INSTALL_ARGS": "--no-deps"}  # init is not run: no dependency needed
    root = tmp_path / "r"
    proc = subprocess.run(
        ["bash", str(REPO / "deploy" / "install.sh"), "--root", str(root), "--arch", "amd64"],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert not (root / "etc/reachwatch/config.yaml").exists()
    assert "reachwatch init --country" in proc.stdout
    assert stat.S_IMODE((root / "var/lib/reachwatch").stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "etc/reachwatch").stat().st_mode) == 0o750
    assert (root / "etc/systemd/system/reachwatch.service").read_text() == UNIT.read_text()
    assert (root / "etc/systemd/system/reachwatch-canary.service").read_text() == CANARY_UNIT.read_text()
    assert (root / "opt/reachwatch/venv/bin/reachwatch").exists()
