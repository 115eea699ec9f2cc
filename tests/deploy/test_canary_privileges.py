"""``reachwatch canary`` as the unit runs it: an unprivileged user whose one capability is
CAP_NET_BIND_SERVICE binds the low ports and answers there; without it the low ports are reported
(one log line each, ``reachwatch_canary_port_listening`` 0) and the others keep serving.

Each run gets a network namespace of its own, so ports 53 and 443 are free and the host's are untouched.
"""

from __future__ import annotations

import os
import pwd
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.canarylab import SECRET

pytestmark = pytest.mark.root

REACHWATCH = str(Path(sys.executable).parent / "reachwatch")
CAP_NET_BIND_SERVICE = 1 << 10

ASK = """
import os, socket, sys
from reachwatch.formats import canary as wire
key = wire.derive_key(sys.argv[1].encode())
for proto, port in ((wire.Proto.TCP, 443), (wire.Proto.TCP, 10443), (wire.Proto.UDP, 53)):
    sent = wire.Request(wire.FrameType.PROBE, proto, port, os.urandom(16)).encode(key)
    kind = socket.SOCK_STREAM if proto is wire.Proto.TCP else socket.SOCK_DGRAM
    try:
        with socket.socket(socket.AF_INET, kind) as s:
            s.settimeout(2)
            s.connect(("127.0.0.1", port))
            s.send(sent)
            print(port, wire.verify_reply(s.recv(100), key, sent).port)
    except OSError as exc:
        print(port, type(exc).__name__)
"""


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"rwk-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _run_canary(netns: str, caps: list[str]) -> tuple[str, str, dict[str, str]]:
    """Start the canary as nobody in ``netns`` with setpriv ``caps``; ask it; stop it. Returns what the
    client saw, the canary's log, and its /proc status fields."""
    nobody = pwd.getpwnam("nobody")
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp_name:
        tmp = Path(tmp_name)
        tmp.chmod(0o755)
        secret = tmp / "canary.secret"
        secret.write_text(SECRET + "\n")
        secret.chmod(0o600)
        config = tmp / "canary.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "canary": {
                        "listen_addresses": ["127.0.0.1"],
                        "tcp_ports": [443, 10443],
                        "udp_ports": [53],
                        "secret_file": str(secret),
                        "metrics_listen_address": "127.0.0.1:10492",
                    }
                }
            )
        )
        config.chmod(0o600)
        for path in (secret, config):
            os.chown(path, nobody.pw_uid, nobody.pw_gid)
        argv = [
            "ip", "netns", "exec", netns,
            "setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups", *caps,
            REACHWATCH, "canary", "--config", str(config),
        ]  # fmt: skip
        log = tmp / "canary.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 20
            while b"canary_started" not in log.read_bytes():
                assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            status = Path(f"/proc/{proc.pid}/status").read_text()
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            asked = subprocess.run(
                ["ip", "netns", "exec", netns, sys.executable, "-c", ASK, SECRET],
                capture_output=True, text=True, timeout=30, check=True,
            )  # fmt: skip
            metrics = subprocess.run(
                ["ip", "netns", "exec", netns, sys.executable, "-c",
                 "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:10492/metrics').read().decode())"],
                capture_output=True, text=True, timeout=30, check=True,
            ).stdout  # fmt: skip
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        return asked.stdout + metrics, log.read_text(), fields


def test_only_cap_net_bind_service_is_needed_for_low_ports(netns: str) -> None:
    caps = ["--inh-caps=-all,+net_bind_service", "--ambient-caps=-all,+net_bind_service",
            "--bounding-set=-all,+net_bind_service", "--no-new-privs"]  # fmt: skip
    seen, log, fields = _run_canary(netns, caps)
    assert int(fields["CapEff"], 16) == CAP_NET_BIND_SERVICE  # nothing else
    assert fields["Uid"].split()[0] == str(pwd.getpwnam("nobody").pw_uid)
    assert "443 443\n" in seen and "10443 10443\n" in seen and "53 53\n" in seen, seen + log
    assert 'reachwatch_canary_port_listening{port="443",proto="tcp"} 1.0' in seen


def test_without_it_the_low_ports_are_reported_and_the_others_serve(netns: str) -> None:
    seen, log, fields = _run_canary(netns, ["--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"])
    assert int(fields["CapEff"], 16) == 0
    assert "10443 10443\n" in seen, seen + log
    assert "443 ConnectionRefusedError\n" in seen
    assert 'reachwatch_canary_port_listening{port="443",proto="tcp"} 0.0' in seen
    assert 'reachwatch_canary_port_listening{port="53",proto="udp"} 0.0' in seen
    assert log.count("below 1024 needs CAP_NET_BIND_SERVICE") == 2, log
