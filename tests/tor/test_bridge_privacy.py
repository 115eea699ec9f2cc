"""Bridge privacy through the real daemon: private bridges (vanilla, obfs4, a dead one) and a bootstrap
through the obfs4 bridge are measured against the private Tor network, then /metrics, /api/v1/status and
the debug log are searched for every address, fingerprint and cert= of those bridges."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reachwatch.config.bridgeline import parse_bridge_line
from tests.tor.torlab import TorLab, free_port

pytestmark = pytest.mark.slow


def _wait(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def _address(log: Path) -> str | None:
    for line in log.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "web_listening":
            return str(event["address"])
    return None


def _verdicts(base: str) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in json.loads(_get(f"{base}/api/v1/status"))["targets"]}


def test_private_bridges_never_appear_in_metrics_api_or_logs(torlab: TorLab, tmp_path: Path) -> None:
    bridges = {
        "priv-vanilla": torlab.vanilla_bridge_line(),
        "priv-obfs4": torlab.obfs4_bridge_line(),
        "priv-dead": f"127.0.0.1:{free_port()} {'C' * 40}",
    }
    targets = "".join(
        f'  - {{name: {name}, kind: tor_bridge, private: true, bridge: "{line}"}}\n'
        for name, line in bridges.items()
    )
    targets += (
        f'  - {{name: priv-boot, kind: tor_bootstrap, private: true, bridges: ["{bridges["priv-obfs4"]}"]}}\n'
    )
    client = torlab.client_options()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "scheduler: {min_destination_spacing: 1ms, controls_interval: 1s, per_destination: 8}\n"
        "defaults: {interval: 5s, timeout: 45s, jitter: 0.1}\n"
        "confirmation: {attempts: 1, required: 1, residual_window: 1s}\n"
        "controls:\n  international:\n"
        f"    - {{name: ctl, kind: tcp, host: 127.0.0.1, port: {torlab.auth.or_port}}}\n"
        f"targets:\n{targets}"
        "tor:\n  batch_timeout: 20s\n  bootstrap_timeout: 30s\n  torrc:\n"
        + "".join(f"    {key}: {json.dumps(value)}\n" for key, value in client.items())
    )
    cfg.chmod(0o600)
    log = tmp_path / "daemon.log"
    # the web listener on 127.0.0.2: the lab's bridges all live on 127.0.0.1, which the log redacts
    argv = [sys.executable, "-m", "reachwatch", "run", "--config", str(cfg), "--state-dir",
            str(tmp_path / "s"), "--web.listen-address", "127.0.0.2:0", "--log.format", "json",
            "--log.level", "debug"]  # fmt: skip
    with log.open("wb") as logf, subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT) as proc:
        try:
            base = _wait(lambda: _address(log), 30, "daemon listening")

            def measured() -> bool:
                status = _verdicts(base)
                return all(status[name].get("last") for name in [*bridges, "priv-boot"])

            _wait(measured, 90, "every private target measured")
            status = _verdicts(base)
            metrics = _get(f"{base}/metrics")
            api = _get(f"{base}/api/v1/status")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert status["priv-obfs4"]["last"]["success"], status["priv-obfs4"]
    assert status["priv-vanilla"]["last"]["success"], status["priv-vanilla"]
    assert status["priv-dead"]["last"]["failure"] == "connection_refused"
    assert status["priv-boot"]["last"]["success"], status["priv-boot"]
    assert 'target="priv-obfs4"' in metrics  # known by name
    # the bootstrap is exported as metrics (metrics.FACT_METRICS), still by name only
    progress = [
        ln for ln in metrics.splitlines()
        if ln.startswith("reachwatch_tor_bootstrap_progress_percent{") and 'target="priv-boot"' in ln
    ]  # fmt: skip
    assert len(progress) == 1 and float(progress[0].rsplit(" ", 1)[1]) == 100.0, progress
    published = {"metrics": metrics, "api": api, "log": log.read_text(errors="replace")}
    for line in bridges.values():
        parsed = parse_bridge_line(line)
        secrets = [v for v in parsed.sensitive_values() if v != "127.0.0.1"]  # the lab's shared address
        for where, text in published.items():
            for secret in secrets:
                assert secret not in text, f"{secret[:12]}... leaked into {where}"
