"""The daemon with a relay set: members walked one after another, aggregates only, the list refreshed
from its file without a reload, and a reload that keeps what members learned."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.core.test_daemon import Blackhole, _address, _get, _log_events, _metric, _run_argv, _wait
from tests.tor.lonerelay import TorRelayProcess

pytestmark = pytest.mark.slow


def _relays(tmp: Path, relay: TorRelayProcess, refused: int) -> None:
    entries = [
        {"fingerprint": relay.fingerprint, "or_addresses": [f"127.0.0.1:{relay.or_port}"], "flags": ["Guard"]}
    ]
    entries += [
        {"fingerprint": f"{i:X}" * 40, "or_addresses": [f"127.3.0.{i}:9"], "flags": ["Fast"], "country": "xb"}
        for i in range(1, 1 + refused)
    ]
    (tmp / "relays.json").write_text(json.dumps({"relays": entries}))


def test_the_daemon_walks_a_relay_set_and_follows_its_file_without_a_reload(
    tmp_path: Path, tor_relay_process: TorRelayProcess
) -> None:
    control = Blackhole()  # accepts: the vantage is online
    old_port = control.port
    cfg, state, log = tmp_path / "c.yaml", tmp_path / "state", tmp_path / "daemon.log"
    _relays(tmp_path, tor_relay_process, refused=2)
    cfg.write_text(
        "scheduler: {min_destination_spacing: 1ms, controls_interval: 1s}\n"
        "defaults: {interval: 1m, timeout: 3s, jitter: 0.1}\n"
        "controls:\n  international:\n"
        f"    - {{name: ctl, kind: tcp, host: 127.0.0.1, port: {control.port}}}\n"
        "tor:\n  relay_list: {refresh: 1s}\n"
        "  relay_sets: [{name: lab, source: relays.json, interval: 3s}]\n"
    )
    cfg.chmod(0o600)

    def metrics() -> str:
        return _get(f"{base}/metrics")[1]

    def value(name: str, **labels: str) -> float | None:
        inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        return _metric(metrics(), f"reachwatch_tor_relayset_{name}{{{inner}}}")

    with (
        log.open("wb") as logf,
        subprocess.Popen(_run_argv(cfg, state), stdout=logf, stderr=subprocess.STDOUT) as proc,
    ):
        try:
            base = _wait(lambda: _address(log), 30, "listening")
            # one walk over three members in 3 s: every one probed within a few seconds, one reachable
            _wait(lambda: value("probed", set="lab", flag="all") == 3, 20, "all three members probed")
            assert value("reachable", set="lab", flag="all") == 1
            assert value("country_reachable", set="lab", country="xb") == 0
            assert value("source_members", set="lab", source="file") == 3
            assert 'target="lab:' not in metrics()  # aggregates only: no per-relay series
            reloaded_at = _metric(metrics(), "reachwatch_config_last_reload_success_timestamp_seconds")

            # the file changes: one relay leaves, with no reload
            _relays(tmp_path, tor_relay_process, refused=1)
            _wait(lambda: value("relays", set="lab", flag="all") == 2, 15, "the refresh to drop a member")
            assert (
                _metric(metrics(), "reachwatch_config_last_reload_success_timestamp_seconds") == reloaded_at
            )
            assert value("refreshes_total", set="lab", source="file", result="success") >= 2  # type: ignore[operator]

            # a reload (same config) keeps the members and what they learned
            os.kill(proc.pid, signal.SIGHUP)
            _wait(
                lambda: any(e.get("event") == "config_reloaded" for e in _log_events(log)), 10, "the reload"
            )
            assert value("relays", set="lab", flag="all") == 2
            assert value("probed", set="lab", flag="all") == 2
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            control.sock.close()
    refreshed = [e for e in _log_events(log) if e.get("event") == "relay_set_refreshed"]
    assert refreshed and refreshed[-1]["removed"] == 1

    # a restart: the walk now takes a day (no member comes round during this test), yet the aggregates
    # start from the members' journaled results in the current sweep, not from nothing
    cfg.write_text(cfg.read_text().replace("interval: 3s", "interval: 1d"))
    log2 = tmp_path / "daemon2.log"
    control = Blackhole()
    cfg.write_text(cfg.read_text().replace(f"port: {old_port}", f"port: {control.port}"))
    with (
        log2.open("wb") as logf,
        subprocess.Popen(_run_argv(cfg, state), stdout=logf, stderr=subprocess.STDOUT) as proc,
    ):
        try:
            log = log2
            base = _wait(lambda: _address(log2), 30, "listening again")
            assert value("relays", set="lab", flag="all") == 2
            assert value("probed", set="lab", flag="all") == 2
            assert value("reachable", set="lab", flag="all") == 1
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            control.sock.close()
    assert any(e.get("event") == "relay_set_members_resumed" for e in _log_events(log2))
