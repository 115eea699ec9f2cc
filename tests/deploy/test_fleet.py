"""Shutdown survival with the real parts: reachwatch + vmagent in-country, VictoriaMetrics abroad.

The link is cut by the test censor for several scrape intervals, vmagent is restarted in the middle of
the cut, the link comes back; the central store must then hold the samples scraped during the cut, with
no gap beyond the seconds vmagent itself was down. A second test kills reachwatch with SIGKILL in the
middle of its work and checks that no committed journal row was lost and that the daemon resumes.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

import pytest

from tests.netlab import ROUTER_INNER_IP, SERVER_IP, Lab, Netns

pytestmark = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("vmagent") is None, reason="vmagent (Debian victoria-metrics) missing"),
]

REACHWATCH = str(Path(sys.executable).parent / "reachwatch")
SCRAPE = 1.0
VM_PORT = 8428
RW_PORT = 10491


def _http_get(ns: Netns, url: str) -> str | None:
    code = (
        "import sys,urllib.request\n"
        f"try: sys.stdout.write(urllib.request.urlopen({url!r}, timeout=3).read().decode())\n"
        "except Exception: sys.exit(1)\n"
    )
    out = ns.run([sys.executable, "-c", code], check=False)
    return out.stdout if out.returncode == 0 else None


def _wait(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def _config(tmp: Path, interval: str = "2s") -> Path:
    """A lab config: a domestic control on the router, one target abroad; fast intervals for the test."""
    cfg = tmp / "config.yaml"
    cfg.write_text(
        f"""
vantage: {{name: lab-vantage}}
defaults: {{interval: {interval}, timeout: 1s, jitter: 0.0}}
scheduler: {{min_destination_spacing: 0.1s, controls_interval: {interval}}}
controls:
  domestic:
    - {{name: dom, kind: tcp, host: {ROUTER_INNER_IP}, port: 9}}
targets:
  - {{name: abroad, kind: tcp, host: {SERVER_IP}, port: 9}}
"""
    )
    return cfg


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[ExitStack]:
    """Log files of the processes a test starts, closed after the test (warnings are errors)."""
    with ExitStack() as stack:
        yield stack


def _log(stack: ExitStack, path: Path) -> BinaryIO:
    return stack.enter_context(path.open("ab"))


def _start_reachwatch(lab: Lab, tmp: Path, state: Path, stack: ExitStack) -> subprocess.Popen[bytes]:
    log = _log(stack, tmp / "reachwatch.log")
    return lab.client.popen(
        [
            REACHWATCH,
            "run",
            "--config",
            str(_config(tmp)),
            "--state-dir",
            str(state),
            "--web.listen-address",
            f"127.0.0.1:{RW_PORT}",
            "--log.level",
            "debug",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _start_vmagent(lab: Lab, tmp: Path, stack: ExitStack) -> subprocess.Popen[bytes]:
    scrape = tmp / "scrape.yml"
    scrape.write_text(
        "global:\n"
        f"  scrape_interval: {SCRAPE:g}s\n"
        "  external_labels: {vantage: lab-vantage, country: KZ, asn: AS64500, isp: lab, city: lab}\n"
        "scrape_configs:\n"
        f"  - job_name: reachwatch\n    static_configs: [{{targets: ['127.0.0.1:{RW_PORT}']}}]\n"
    )
    log = _log(stack, tmp / "vmagent.log")
    return lab.client.popen(
        [
            "vmagent",
            f"-promscrape.config={scrape}",
            f"-remoteWrite.url=http://{SERVER_IP}:{VM_PORT}/api/v1/write",
            f"-remoteWrite.tmpDataPath={tmp / 'vmagent-queue'}",
            "-remoteWrite.flushInterval=1s",
            "-httpListenAddr=127.0.0.1:8429",
            "-loggerLevel=WARN",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _exported_timestamps(lab: Lab, metric: str) -> list[float]:
    body = _http_get(lab.server, f"http://127.0.0.1:{VM_PORT}/api/v1/export?match[]={metric}")
    stamps: list[float] = []
    for line in (body or "").splitlines():
        series = json.loads(line)
        if series["metric"].get("vantage") == "lab-vantage":
            stamps.extend(t / 1000.0 for t in series["timestamps"])
    return sorted(set(stamps))


def test_samples_scraped_during_a_cut_reach_the_central_store_even_across_a_vmagent_restart(
    tmp_path: Path, logs: ExitStack
) -> None:
    with Lab("flt") as lab:
        vm_log = _log(logs, tmp_path / "vm.log")
        lab.server.popen(
            [
                "victoria-metrics",
                f"-storageDataPath={tmp_path / 'vm'}",
                f"-httpListenAddr=:{VM_PORT}",
                "-search.latencyOffset=0s",
                "-retentionPeriod=1d",
                "-loggerLevel=WARN",
            ],
            stdout=vm_log,
            stderr=subprocess.STDOUT,
        )
        _start_reachwatch(lab, tmp_path, tmp_path / "state", logs)
        _wait(
            lambda: _http_get(lab.client, f"http://127.0.0.1:{RW_PORT}/-/ready") is not None, 30, "reachwatch"
        )
        vmagent = _start_vmagent(lab, tmp_path, logs)
        _wait(
            lambda: len(_exported_timestamps(lab, "reachwatch_build_info")) >= 3,
            30,
            "first samples centrally",
        )

        cut_start = time.time()
        lab.shutdown()
        time.sleep(4 * SCRAPE)
        restart_gap_start = time.time()  # from here until the new vmagent scrapes, nothing is scraped
        vmagent.send_signal(signal.SIGINT)  # graceful restart: the on-disk queue must survive it
        vmagent.wait(timeout=30)
        vmagent = _start_vmagent(lab, tmp_path, logs)
        restart_gap_end = time.time()
        time.sleep(4 * SCRAPE)
        cut_end = time.time()
        lab.uncensor()

        def caught_up() -> bool:
            stamps = _exported_timestamps(lab, "reachwatch_build_info")
            return bool(stamps) and stamps[-1] > cut_end + 1

        _wait(caught_up, 60, "the backlog of the cut to arrive")
        stamps = [
            t for t in _exported_timestamps(lab, "reachwatch_build_info") if cut_start - 1 <= t <= cut_end + 1
        ]
        during_cut = [t for t in stamps if cut_start < t < cut_end]
        # these were scraped by the FIRST vmagent while the link was down: only its disk queue kept them
        before_restart = [t for t in during_cut if t < restart_gap_start]
        assert len(before_restart) >= 3 * SCRAPE, before_restart
        # every scrape of the cut arrived: about one per interval, except while vmagent itself was down
        expected = (cut_end - cut_start - (restart_gap_end - restart_gap_start)) / SCRAPE
        assert len(during_cut) >= expected - 3, (len(during_cut), expected)
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        allowed = (restart_gap_end - restart_gap_start) + 3 * SCRAPE
        assert max(gaps) <= allowed, (max(gaps), allowed)


def _journal_rows(state: Path) -> set[tuple[str, float]]:
    db = state / "journal.sqlite3"
    if not db.exists():
        return set()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return {(t, s) for t, s in conn.execute("SELECT target, started_at FROM results")}
    finally:
        conn.close()


def test_kill_9_mid_sweep_loses_no_committed_row_and_the_daemon_resumes(
    tmp_path: Path, logs: ExitStack
) -> None:
    with Lab("k9") as lab:
        state = tmp_path / "state"
        proc = _start_reachwatch(lab, tmp_path, state, logs)
        _wait(lambda: len(_journal_rows(state)) >= 6, 40, "journal rows")
        committed = _journal_rows(state)
        # ip netns exec execs the daemon in place, so proc.pid is reachwatch itself
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        after_kill = _journal_rows(state)
        assert committed <= after_kill
        _start_reachwatch(lab, tmp_path, state, logs)
        _wait(lambda: _http_get(lab.client, f"http://127.0.0.1:{RW_PORT}/-/ready") is not None, 30, "restart")
        _wait(lambda: len(_journal_rows(state)) > len(after_kill), 30, "new rows after restart")
        assert after_kill <= _journal_rows(state)
