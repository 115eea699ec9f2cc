"""The daemon as a process: reload (SIGHUP and POST) keeps the last good config, SIGTERM drains and
flushes, and with no network at all it says so and calls nothing blocked."""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from reachwatch import logging as rwlog
from reachwatch.app import Daemon, RunOptions
from reachwatch.config.load import LoadedConfig, parse_config
from reachwatch.errors import ConfigError
from reachwatch.model import ProbeResult

REACHWATCH = [sys.executable, "-m", "reachwatch"]


def _wait(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _log_events(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events


def _address(log: Path) -> str | None:
    for ev in _log_events(log):
        if ev.get("event") == "web_listening":
            return str(ev["address"])
    return None


def _get(url: str, method: str = "GET") -> tuple[int, str]:
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _metric(text: str, prefix: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.rsplit(" ", 1)[1])
    return None


class Blackhole:
    """Accepts TCP connections (kernel backlog) and never says a word: a TLS handshake hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    b = Blackhole()
    yield b
    b.sock.close()


def _run_argv(cfg: Path, state: Path) -> list[str]:
    """``reachwatch run`` on an ephemeral port with JSON logs (the tests read the address from the log)."""
    return [
        *REACHWATCH,
        "run",
        "--config",
        str(cfg),
        "--state-dir",
        str(state),
        "--web.listen-address",
        "127.0.0.1:0",
        "--log.format",
        "json",
    ]


def _write_config(path: Path, control_port: int, targets: str) -> None:
    path.write_text(
        "scheduler: {min_destination_spacing: 1ms, controls_interval: 1s, per_destination: 8}\n"
        "defaults: {interval: 1s, timeout: 3s, jitter: 0.1}\n"
        "confirmation: {attempts: 1, required: 1, residual_window: 1s}\n"
        "controls:\n  international:\n"
        f"    - {{name: ctl, kind: tcp, host: 127.0.0.1, port: {control_port}}}\n"
        f"targets:\n{targets}"
    )
    path.chmod(0o600)


def _silent_tls(port: int) -> str:
    return f"  - {{name: silent-tls, kind: tls, host: 127.0.0.1, server_name: localhost, port: {port}}}\n"


def _journal_rows(state: Path, target: str) -> int:
    db = state / "journal.sqlite3"
    if not db.exists():
        return 0
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM results WHERE target = ?", (target,)).fetchone()[0])
    except sqlite3.OperationalError:  # created a moment ago, schema not yet written
        return 0
    finally:
        conn.close()


@pytest.mark.slow
def test_reload_keeps_last_good_config_and_sigterm_drains_and_flushes(
    tmp_path: Path, blackhole: Blackhole
) -> None:
    cfg = tmp_path / "c.yaml"
    state = tmp_path / "state"
    log = tmp_path / "daemon.log"
    _write_config(
        cfg,
        blackhole.port,
        f"  - {{name: old-site, kind: tcp, host: 127.0.0.1, port: {blackhole.port}}}\n"
        + _silent_tls(blackhole.port),
    )
    with (
        log.open("wb") as logf,
        subprocess.Popen(
            _run_argv(cfg, state),
            stdout=logf,
            stderr=subprocess.STDOUT,
        ) as proc,
    ):
        try:
            base = _wait(lambda: _address(log), 30, "listening")
            _wait(lambda: _get(f"{base}/-/ready")[0] == 200, 10, "ready")
            _wait(
                lambda: (
                    _metric(
                        _get(f"{base}/metrics")[1],
                        'reachwatch_probe_success{group="default",kind="tcp",role="target",target="old-site"}',
                    )
                    == 1
                ),
                20,
                "old-site probed",
            )

            # a bad config: rejected, one line logged, last good config kept, gauge 0
            cfg.write_text("targets: [{name: x, kind: tcp, host: a, port: 1, bogus: 2}]\n")
            os.kill(proc.pid, signal.SIGHUP)
            _wait(
                lambda: _metric(_get(f"{base}/metrics")[1], "reachwatch_config_last_reload_successful") == 0,
                10,
                "reload failure gauge",
            )
            failed = [e for e in _log_events(log) if e.get("event") == "config_reload_failed"]
            assert failed and failed[0]["error"] == f"{cfg}: targets[0] (name 'x').bogus: unknown key"
            names = {t["name"] for t in json.loads(_get(f"{base}/api/v1/status")[1])["targets"]}
            assert names == {"ctl", "old-site", "silent-tls"}

            # a good config through POST /-/reload: new target in, old one gone from /metrics, gauge 1
            _write_config(
                cfg,
                blackhole.port,
                f"  - {{name: new-site, kind: tcp, host: 127.0.0.1, port: {blackhole.port}}}\n"
                + _silent_tls(blackhole.port),
            )
            status, body = _get(f"{base}/-/reload", method="POST")
            assert status == 200, body
            metrics = _get(f"{base}/metrics")[1]
            assert _metric(metrics, "reachwatch_config_last_reload_successful") == 1
            assert 'target="old-site"' not in metrics
            _wait(lambda: 'target="new-site"' in _get(f"{base}/metrics")[1], 10, "new target")

            # SIGTERM while the silent TLS handshake is in flight: it is drained and journaled
            _wait(
                lambda: _metric(_get(f"{base}/metrics")[1], "reachwatch_probes_in_flight") == 1,
                20,
                "in flight",
            )
            before = _journal_rows(state, "silent-tls")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    assert _journal_rows(state, "silent-tls") >= before + 1
    events = [e.get("event") for e in _log_events(log)]
    assert "probes_drained" in events and "journal_closed" in events and events[-1] == "stopped"
    conn = sqlite3.connect(f"file:{state / 'journal.sqlite3'}?mode=ro", uri=True)
    failure, stage = conn.execute(
        "SELECT failure, stage FROM results WHERE target = 'silent-tls' ORDER BY id DESC LIMIT 1"
    ).fetchone()
    conn.close()
    assert (failure, stage) == ("generic_timeout_error", "tls_handshake")


@pytest.mark.slow
def test_after_kill_9_the_daemon_resumes_from_the_journal(tmp_path: Path, blackhole: Blackhole) -> None:
    cfg = tmp_path / "c.yaml"
    state = tmp_path / "state"
    site = f"  - {{name: site, kind: tcp, host: 127.0.0.1, port: {blackhole.port}}}\n"
    _write_config(cfg, blackhole.port, site)

    def start(log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as logf:
            return subprocess.Popen(
                _run_argv(cfg, state),
                stdout=logf,
                stderr=subprocess.STDOUT,
            )

    first = start(tmp_path / "1.log")
    try:
        _wait(lambda: _journal_rows(state, "site") >= 2, 20, "journaled results")
    finally:
        first.kill()  # SIGKILL: no drain, no flush
        first.wait()
    # restart with an interval long enough that nothing is probed again during the test
    cfg.write_text(
        cfg.read_text()
        .replace("interval: 1s", "interval: 1h")
        .replace("controls_interval: 1s", "controls_interval: 1h")
    )
    second = start(tmp_path / "2.log")
    try:
        base = _wait(lambda: _address(tmp_path / "2.log"), 30, "listening")
        doc = json.loads(_get(f"{base}/api/v1/status")[1])
        site_state = next(t for t in doc["targets"] if t["name"] == "site")
        assert site_state["last"] is not None and site_state["last"]["success"] is True
        assert site_state["verdict"] == "reachable"
        assert doc["vantage"]["state"] == "online"  # from the resumed control result
        assert any(e.get("event") == "resumed_from_journal" for e in _log_events(tmp_path / "2.log"))
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()


@pytest.mark.root
@pytest.mark.slow
def test_embedded_default_with_no_network_says_offline_and_blocks_nothing(tmp_path: Path) -> None:
    ns = f"rw-off-{secrets.token_hex(4)}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    log = tmp_path / "daemon.log"
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)  # loopback only: no links out
        with (
            log.open("wb") as logf,
            subprocess.Popen(
                [
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    *REACHWATCH,
                    "run",
                    "--state-dir",
                    str(tmp_path / "st"),
                    "--web.listen-address",
                    "127.0.0.1:0",
                    "--log.format",
                    "json",
                ],
                stdout=logf,
                stderr=subprocess.STDOUT,
            ) as proc,
        ):
            try:
                _wait(
                    lambda: any(
                        e.get("event") == "vantage offline, nothing called blocked" for e in _log_events(log)
                    ),
                    40,
                    "the offline message",
                )
                base = _address(log)
                assert base
                fetch = (
                    "import sys,urllib.request;"
                    "print(urllib.request.urlopen(sys.argv[1]+sys.argv[2],timeout=10).read().decode())"
                )
                status = json.loads(
                    subprocess.run(
                        ["ip", "netns", "exec", ns, sys.executable, "-c", fetch, base, "/api/v1/status"],
                        capture_output=True,
                        text=True,
                        check=True,
                        timeout=30,
                    ).stdout
                )
                metrics = subprocess.run(
                    ["ip", "netns", "exec", ns, sys.executable, "-c", fetch, base, "/metrics"],
                    capture_output=True,
                    text=True,
                    check=True,
                    timeout=30,
                ).stdout
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
    assert status["vantage"]["state"] == "offline"
    targets = [t for t in status["targets"] if t["role"] == "target"]
    assert len(targets) >= 5
    assert {t["verdict"] for t in targets} == {"unknown"}
    blocked = [
        ln
        for ln in metrics.splitlines()
        if ln.startswith("reachwatch_target_verdict{") and 'verdict="blocked"' in ln
    ]
    assert blocked and all(ln.endswith(" 0.0") for ln in blocked)
    assert "reachwatch_target_blocked{" not in metrics
    assert 'reachwatch_vantage_state{state="offline"} 1.0' in metrics


def test_status_api_redacts_private_values_even_if_a_probe_leaked_one(tmp_path: Path) -> None:
    loaded = parse_config(
        "targets: [{name: hidden, kind: tcp, host: 192.0.2.44, port: 443, private: true}]\n",
        "c.yaml",
        tmp_path,
    )
    daemon = Daemon(RunOptions(state_dir=tmp_path))
    rwlog.update_redaction(loaded)
    try:
        state = daemon.store.ensure(loaded.config.targets[0], None)
        state.record(
            ProbeResult(
                target="hidden",
                kind="tcp",
                started_at=1.0,
                duration_s=0.1,
                success=True,
                facts={"oops": "connected to 192.0.2.44:443"},
            )
        )
        doc = json.dumps(daemon.status())
    finally:
        rwlog.REDACTOR.update([])
    assert "192.0.2.44" not in doc and "[redacted]:443" in doc


async def test_reload_parses_the_config_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parsing, relay-set expansion (up to 64 MB of Onionoo JSON) and secret checks must not stall
    probing and the web server: the reload runs them in a worker thread. A failure there still
    reaches the caller and keeps the last good config."""
    loaders: list[int] = []

    def recording_load(path: Path | None, *, web_config_file: str | None = None) -> LoadedConfig:
        loaders.append(threading.get_ident())
        raise ConfigError("c.yaml", "bad on purpose")

    monkeypatch.setattr("reachwatch.app.load_full_config", recording_load)
    daemon = Daemon(RunOptions(state_dir=tmp_path, config_path=tmp_path / "c.yaml"))
    ok, message = await daemon.reload()
    assert (ok, "bad on purpose" in message) == (False, True)
    assert daemon.daemon_status.reload_successful is False
    assert loaders and threading.get_ident() not in loaders


@pytest.mark.slow
def test_a_damaged_journal_is_set_aside_and_the_daemon_keeps_measuring(
    tmp_path: Path, blackhole: Blackhole
) -> None:
    cfg = tmp_path / "c.yaml"
    state = tmp_path / "state"
    state.mkdir()
    garbage = os.urandom(64 * 1024)  # what a power cut on an SD card can leave
    (state / "journal.sqlite3").write_bytes(garbage)
    site = f"  - {{name: site, kind: tcp, host: 127.0.0.1, port: {blackhole.port}}}\n"
    _write_config(cfg, blackhole.port, site)

    def run_until(log: Path, metric: str, value: float) -> None:
        argv = _run_argv(cfg, state)
        with log.open("wb") as logf, subprocess.Popen(argv, stdout=logf, stderr=logf) as proc:
            try:
                base = _wait(lambda: _address(log), 30, "listening")
                _wait(lambda: _metric(_get(f"{base}/metrics")[1], metric) == value, 20, metric)
                _wait(lambda: _journal_rows(state, "site") >= 2, 20, "journaled results")
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 0
            finally:
                if proc.poll() is None:
                    proc.kill()
        assert "Traceback" not in log.read_text()

    run_until(tmp_path / "1.log", "reachwatch_journal_damaged_set_aside_total", 1)
    (aside,) = state.glob("journal.damaged-*.sqlite3")
    assert aside.read_bytes() == garbage
    damage = [e for e in _log_events(tmp_path / "1.log") if "damaged" in str(e.get("event"))]
    assert len(damage) == 1 and damage[0]["level"] == "error"

    # a downgrade: the newest row names a failure this version does not know; skipped and counted
    conn = sqlite3.connect(state / "journal.sqlite3")
    conn.execute("UPDATE results SET success = 0, failure = 'quic_handshake_failed', stage = 'connect'")
    conn.commit()
    conn.close()
    run_until(tmp_path / "2.log", "reachwatch_journal_rows_skipped_total", 2)  # site and the control
    assert any(e.get("event") == "journal_rows_skipped" for e in _log_events(tmp_path / "2.log"))


async def test_a_bug_during_reload_is_a_failed_reload_not_an_exception(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGHUP's reload task had nobody to retrieve an unexpected exception ("Task exception was never
    retrieved"), POST /-/reload answered aiohttp's 500 page, and the success gauge stayed 1."""

    def broken_load(path: Path | None, *, web_config_file: str | None = None) -> LoadedConfig:
        raise FileNotFoundError(2, "No such file or directory")

    monkeypatch.setattr("reachwatch.app.load_full_config", broken_load)
    daemon = Daemon(RunOptions(state_dir=tmp_path, config_path=tmp_path / "c.yaml"))
    ok, message = await daemon.reload()
    assert (ok, message) == (False, "internal error (FileNotFoundError: [Errno 2] No such file or directory)")
    assert daemon.daemon_status.reload_successful is False


@pytest.mark.slow
def test_a_bad_web_config_on_reload_is_one_line_and_the_gauge_says_so(
    tmp_path: Path, blackhole: Blackhole
) -> None:
    cfg, web, log = tmp_path / "c.yaml", tmp_path / "web.yml", tmp_path / "daemon.log"
    web.write_text("http_server_config: {headers: {X-Frame-Options: deny}}\n")
    site = f"  - {{name: site, kind: tcp, host: 127.0.0.1, port: {blackhole.port}}}\n"
    _write_config(cfg, blackhole.port, site)
    cfg.write_text(cfg.read_text() + f"web: {{config_file: {web}}}\n")
    argv = _run_argv(cfg, tmp_path / "st")
    with log.open("wb") as logf, subprocess.Popen(argv, stdout=logf, stderr=logf) as proc:
        try:
            base = _wait(lambda: _address(log), 30, "listening")
            # a TLS section whose client CA file does not exist: a FileNotFoundError traceback before
            cert = trustme.CA().issue_cert("127.0.0.1")
            cert.private_key_pem.write_to_path(str(tmp_path / "k.pem"))
            (tmp_path / "k.pem").chmod(0o600)
            cert.cert_chain_pems[0].write_to_path(str(tmp_path / "c.pem"))
            web.write_text(
                "tls_server_config: {cert_file: c.pem, key_file: k.pem, client_ca_file: ca.pem,"
                " client_auth_type: RequireAndVerifyClientCert}\n"
            )
            os.kill(proc.pid, signal.SIGHUP)
            gauge = "reachwatch_config_last_reload_successful"
            _wait(lambda: _metric(_get(f"{base}/metrics")[1], gauge) == 0, 10, "reload failure gauge")
            status, body = _get(f"{base}/-/reload", method="POST")
            assert status == 500 and body.count("\n") == 1
            assert body.startswith(f"failed to reload config: {web}: tls_server_config.client_ca_file: ")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log.read_text()
    assert "Traceback" not in text and "never retrieved" not in text
    failed = [e for e in _log_events(log) if e.get("event") == "config_reload_failed"]
    assert len(failed) == 2 and all(str(e["error"]).startswith(f"{web}: ") for e in failed)
