"""`reachwatch check "<bridge line>"`: bridge lines as people paste them, tested by a real tor in the private
Tor network (tests/tor/torlab.py), the verdict judged by a control."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.tor.torlab import TorLab, free_port

pytestmark = pytest.mark.slow


def test_pasted_bridge_lines_are_checked_by_a_real_tor(torlab: TorLab, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "scheduler": {"min_destination_spacing": "1ms", "per_destination": 8},
                "controls": {
                    "international": [
                        {"name": "lab-auth", "kind": "tcp", "host": "127.0.0.1", "port": torlab.auth.or_port}
                    ]
                },
                "tor": {"torrc": torlab.client_options(), "batch_timeout": "30s"},
            }
        )
    )
    vanilla = torlab.vanilla_bridge_line()
    address, fingerprint = vanilla.split()
    things = [
        torlab.obfs4_bridge_line(),
        f"Bridge {address} {fingerprint.lower()}",  # as a torrc has it, fingerprint in lower case
        f"127.0.0.1:{free_port()} {'A' * 40}",  # nothing listens there
    ]
    proc = subprocess.run(
        [sys.executable, "-m", "reachwatch", "check", "--config", str(cfg), "--json", *things],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    doc = json.loads(proc.stdout)
    assert doc["vantage"]["state"] == "online", proc.stderr
    rows = [t for t in doc["targets"] if t["role"] == "target"]
    assert [(r["kind"], r["verdict"]) for r in rows] == [
        ("tor_bridge", "reachable"),
        ("tor_bridge", "reachable"),
        ("tor_bridge", "unreachable"),
    ], rows
    assert [r["last"]["facts"]["transport"] for r in rows] == ["obfs4", "vanilla", "vanilla"]
    assert proc.returncode == 1
    # the bridges are private: neither address nor fingerprint appears in what check prints
    assert address not in proc.stdout and fingerprint not in proc.stdout.upper()
