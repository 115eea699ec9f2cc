"""The soak (bench/soak.py) as a test: skipped by default (``pytest --soak`` or RW_SOAK=1 runs it).

A shorter run than the 90 minutes bench/README.md reports (RW_SOAK_MINUTES, default 8), with the same
invariants: no attempt lost, every attempt journaled, descriptors back to calm after the floods."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[2] / "bench" / "soak.py"


@pytest.mark.soak
@pytest.mark.root
@pytest.mark.slow
def test_the_daemon_keeps_measuring_through_reloads_floods_and_a_tor_kill(tmp_path: Path) -> None:
    minutes = os.environ.get("RW_SOAK_MINUTES", "8")
    argv = [sys.executable, str(SOAK), "--minutes", minutes, "--out", str(tmp_path)]
    proc = subprocess.run(
        [*argv, "--png", str(tmp_path / "p.png")],
        capture_output=True,
        text=True,
        timeout=float(minutes) * 60 + 600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (result_file,) = tmp_path.glob("run-*/results.json")
    result = json.loads(result_file.read_text())
    assert result["attempts_lost"] == 0 and result["rows_without_peer_connection"] == 0
    journal = result["journal_rows_vs_committed"]
    assert journal["rows"] == journal["committed_logged"] and result["journal_write_errors"] == 0
    assert result["fds"]["calm_max"] < 100  # the floods' connections are gone once they pass
    assert result["tor_bridge_attempts_after_kill"]["rows"] > 0
    reloads = [e for e in result["events"] if e["event"] == "reload"]
    assert reloads and all(e["successful_gauge"] == (0.0 if e["bad"] else 1.0) for e in reloads)
