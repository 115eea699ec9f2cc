"""Security defaults with the real parts: a real Prometheus scrapes reachwatch over TLS with basic auth.

Also: the daemon listens on loopback unless told otherwise, a world-readable config gets a warning that
names the fix, and the daemon runs as an unprivileged user.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import bcrypt
import pytest
import trustme

from reachwatch.config.schema import DEFAULT_LISTEN_ADDRESS

REACHWATCH = str(Path(sys.executable).parent / "reachwatch")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not come up")


@pytest.fixture
def procs() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def _spawn(stack: ExitStack, argv: list[str], log: Path, **kw: object) -> subprocess.Popen[bytes]:
    out = stack.enter_context(log.open("ab"))
    proc: subprocess.Popen[bytes] = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, **kw)  # type: ignore[call-overload]

    def stop() -> None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    stack.callback(stop)
    return proc


def _lab_config(tmp: Path) -> Path:
    cfg = tmp / "config.yaml"
    cfg.write_text(
        "defaults: {interval: 5s, timeout: 1s}\n"
        "targets:\n  - {name: local, kind: tcp, host: 127.0.0.1, port: 9}\n"
    )
    cfg.chmod(0o600)
    return cfg


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed")
def test_real_prometheus_scrapes_over_tls_with_basic_auth_and_a_wrong_password_is_refused(
    tmp_path: Path, procs: ExitStack
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    (tmp_path / "server.pem").write_bytes(cert.cert_chain_pems[0].bytes())
    key = tmp_path / "server.key"
    key.write_bytes(cert.private_key_pem.bytes())
    key.chmod(0o600)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    hashed = bcrypt.hashpw(b"s3cret-scrape", bcrypt.gensalt(rounds=4)).decode()
    web_config = tmp_path / "web-config.yml"
    web_config.write_text(
        f"tls_server_config:\n  cert_file: {tmp_path / 'server.pem'}\n  key_file: {key}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    web_config.chmod(0o600)
    (tmp_path / "password").write_text("s3cret-scrape")
    (tmp_path / "wrong").write_text("guess")

    rw_port, prom_port = _free_port(), _free_port()
    _spawn(
        procs,
        [
            REACHWATCH,
            "run",
            "--config",
            str(_lab_config(tmp_path)),
            "--state-dir",
            str(tmp_path / "state"),
            "--web.listen-address",
            f"127.0.0.1:{rw_port}",
            "--web.config.file",
            str(web_config),
        ],
        tmp_path / "reachwatch.log",
    )

    def job(name: str, password_file: str) -> str:
        return (
            f"  - job_name: {name}\n    scheme: https\n    scrape_interval: 1s\n"
            f"    tls_config: {{ca_file: {ca_file}}}\n"
            f"    basic_auth: {{username: prometheus, password_file: {tmp_path / password_file}}}\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{rw_port}']}}]\n"
        )

    prom_cfg = tmp_path / "prometheus.yml"
    prom_cfg.write_text(
        "global: {scrape_interval: 1s}\nscrape_configs:\n" + job("good", "password") + job("bad", "wrong")
    )
    _spawn(
        procs,
        [
            "prometheus",
            f"--config.file={prom_cfg}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        tmp_path / "prometheus.log",
    )
    _wait_http(f"http://127.0.0.1:{prom_port}/-/ready")

    def up() -> dict[str, str]:
        url = f"http://127.0.0.1:{prom_port}/api/v1/query?query=up"
        with urllib.request.urlopen(url, timeout=3) as resp:
            data = json.load(resp)
        return {r["metric"]["job"]: r["value"][1] for r in data["data"]["result"]}

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and up() != {"good": "1", "bad": "0"}:
        time.sleep(0.5)
    assert up() == {"good": "1", "bad": "0"}
    # and the TLS listener refuses plain HTTP scrapes
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{rw_port}/metrics", timeout=3)


def test_default_listen_address_is_loopback() -> None:
    assert DEFAULT_LISTEN_ADDRESS.startswith("127.0.0.1:")


def test_world_readable_config_is_accepted_with_a_warning_naming_the_fix(tmp_path: Path) -> None:
    cfg = _lab_config(tmp_path)
    cfg.chmod(0o644)
    out = subprocess.run([REACHWATCH, "validate", str(cfg)], capture_output=True, text=True, check=False)
    assert out.returncode == 0
    assert "chmod o-r" in out.stdout + out.stderr


@pytest.mark.root
@pytest.mark.slow
def test_daemon_runs_unprivileged_without_capabilities(procs: ExitStack) -> None:
    """As `nobody`, with no capabilities, the daemon starts, serves metrics and probes."""
    nobody = pwd.getpwnam("nobody")
    # pytest's tmp_path lives under a 0700 root-owned directory that nobody cannot traverse
    tmp_path = Path(procs.enter_context(tempfile.TemporaryDirectory(dir="/tmp")))
    tmp_path.chmod(0o755)
    cfg = _lab_config(tmp_path)
    os.chown(cfg, nobody.pw_uid, nobody.pw_gid)
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    port = _free_port()
    proc = _spawn(
        procs,
        [
            "setpriv",
            f"--reuid={nobody.pw_uid}",
            f"--regid={nobody.pw_gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            "--no-new-privs",
            REACHWATCH,
            "run",
            "--config",
            str(cfg),
            "--state-dir",
            str(state),
            "--web.listen-address",
            f"127.0.0.1:{port}",
        ],
        tmp_path / "nobody.log",
    )
    _wait_http(f"http://127.0.0.1:{port}/-/ready")
    status = Path(f"/proc/{proc.pid}/status").read_text()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    assert fields["Uid"].split()[0] == str(nobody.pw_uid)
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapBnd"], 16) == 0
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3) as resp:
        assert b"reachwatch_build_info" in resp.read()
