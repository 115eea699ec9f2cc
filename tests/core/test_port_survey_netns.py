"""A shutdown that lets a few ports out, seen by the real daemon surveying a real ``reachwatch canary``.

In network namespaces (``tests/netlab.py``): the canary runs abroad on SERVER_IP (TCP 22, 179, 443, 3785,
5060; UDP 53, 3785, 5060); the censor implements a port-whitelist shutdown (Kazakhstan, January 2022):
every forwarded packet is dropped except TCP 179 and 443 and UDP 3785 (and their replies); the domestic
control on the router keeps answering, the international one abroad does not. ``reachwatch run`` in the
country surveys the canary.

Proves: the survey names exactly the whitelisted ports as open (everything else, the ICMP echo included,
filtered), in the status document's sentence and in ``reachwatch_port_open``; the shutdown brings the
survey forward and repeats it every ``shutdown_interval``; the canary, queried without the secret,
answers nothing on TCP or UDP (while a keyed query is answered); and the requests the canary counted stay
within the survey's budget (``PortSurveyTarget.packets()`` per survey, surveys no closer than the
interval allows).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import yaml

from reachwatch.config.targets.port_survey import PortSurveyTarget
from tests.canarylab import SECRET, secret_file
from tests.netlab import ROUTER_INNER_IP, SERVER_IP, Lab, Netns

pytestmark = [pytest.mark.root, pytest.mark.slow]

INTL_IP = "198.18.1.3"  # the international control (dropped by the shutdown)
CANARY_TCP, CANARY_UDP = [22, 179, 443, 3785, 5060], [53, 3785, 5060]
OPEN = ["179/tcp", "443/tcp", "3785/udp"]  # what the censor lets out
WEB = 10491
SHUTDOWN_INTERVAL, JITTER = 4.0, 0.2

GET = """
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as r:
    sys.stdout.write(r.read().decode())
"""

# From inside the country: unkeyed and wrongly keyed queries get nothing, a keyed one gets the reply.
ASK = """
import json, os, socket, sys
from reachwatch.formats import canary as wire
host, secret = sys.argv[1], sys.argv[2].encode()
good, bad = wire.derive_key(secret), wire.derive_key(b"not the canary's secret, 16+")
out = {}
for name, proto, port, payload, key in (
    ("tcp-garbage", "tcp", 443, b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" + b"x" * 40, None),
    ("tcp-wrong-key", "tcp", 443, None, bad),
    ("udp-garbage", "udp", 53, b"\\x12\\x34" + b"\\0" * 58, None),
    ("udp-wrong-key", "udp", 53, None, bad),
    ("tcp-keyed", "tcp", 443, None, good),
    ("udp-keyed", "udp", 53, None, good),
):
    wproto = wire.Proto.TCP if proto == "tcp" else wire.Proto.UDP
    if payload is None:
        payload = wire.Request(wire.FrameType.PROBE, wproto, port, os.urandom(16)).encode(key)
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as s:
        s.settimeout(1.5)
        s.connect((host, port))
        s.send(payload)
        try:
            data = s.recv(1000)
        except socket.timeout:
            data = None
    if data and key is good:
        data = wire.verify_reply(data, good, payload).port
    out[name] = data.hex() if isinstance(data, bytes) else data
print(json.dumps(out))
"""


def _get(ns: Netns, url: str) -> str | None:
    proc = ns.run([sys.executable, "-c", GET, url], check=False)
    return str(proc.stdout) if proc.returncode == 0 else None


def _wait(check: Callable[[], Any], timeout: float, what: str | Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")


def _counter(text: str, name: str, **labels: str) -> float:
    """The sum of ``name`` samples whose labels include ``labels`` in a /metrics text."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def _serve(ns: Netns, ip: str, port: int, root: Path) -> None:
    ns.popen(
        [sys.executable, "-m", "http.server", "--bind", ip, "--directory", str(root), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_port_whitelist_shutdown_is_named_port_by_port_within_the_survey_budget(tmp_path: Path) -> None:
    secret = secret_file(tmp_path)
    canary_cfg = tmp_path / "canary.yaml"
    canary_cfg.write_text(
        yaml.safe_dump(
            {
                "canary": {
                    "listen_addresses": [SERVER_IP],
                    "tcp_ports": CANARY_TCP,
                    "udp_ports": CANARY_UDP,
                    "secret_file": str(secret),
                    "metrics_listen_address": "127.0.0.1:10492",
                }
            }
        )
    )
    canary_cfg.chmod(0o600)
    survey = {
        "name": "ports-abroad",
        "kind": "port_survey",
        "host": SERVER_IP,
        "secret_file": str(secret),
        "tcp_ports": CANARY_TCP,
        "udp_ports": CANARY_UDP,
        "icmp": True,
        "interval": "1h",  # the baseline: only the shutdown brings it forward
        "shutdown_interval": f"{SHUTDOWN_INTERVAL:g}s",
        "timeout": "10s",
        "port_timeout": "1s",
        "parallel": 8,
        "rate": 20,
        "udp_sends": 2,
    }
    budget = PortSurveyTarget.model_validate(survey).packets()
    config = tmp_path / "kz.yaml"
    config.write_text(
        json.dumps(
            {
                "defaults": {"jitter": JITTER, "timeout": "2s"},
                "scheduler": {"controls_interval": "1s", "min_destination_spacing": "1ms"},
                # one attempt is a verdict: no confirmation retries, so the survey keeps its own interval
                "confirmation": {"attempts": 1, "required": 1},
                "controls": {
                    "domestic": [{"name": "egov", "kind": "tcp", "host": ROUTER_INNER_IP, "port": 8081}],
                    "international": [{"name": "wiki", "kind": "tcp", "host": INTL_IP, "port": 8080}],
                },
                "targets": [survey],
            }
        )
    )
    config.chmod(0o600)
    www = tmp_path / "www"
    www.mkdir()
    with Lab("ps") as lab, ExitStack() as logs:
        lab.server_ip(int(INTL_IP.rsplit(".", 1)[1]))
        lab.client.run(["sysctl", "-qw", "net.ipv4.ping_group_range=0 2147483647"])  # the systemd default
        _serve(lab.router, ROUTER_INNER_IP, 8081, www)
        _serve(lab.server, INTL_IP, 8080, www)
        canary_log = logs.enter_context((tmp_path / "canary.log").open("wb"))
        lab.server.popen(
            [sys.executable, "-m", "reachwatch", "canary", "--config", str(canary_cfg)],
            stdout=canary_log,
            stderr=subprocess.STDOUT,
        )
        _wait(lambda: _get(lab.server, "http://127.0.0.1:10492/-/healthy"), 20, "the canary")

        # before the censor: only a keyed query gets an answer, on either transport
        asked = json.loads(lab.client.run([sys.executable, "-c", ASK, SERVER_IP, SECRET]).stdout)
        assert asked == {
            "tcp-garbage": "",  # closed without a byte
            "tcp-wrong-key": "",
            "udp-garbage": None,  # no datagram at all
            "udp-wrong-key": None,
            "tcp-keyed": 443,
            "udp-keyed": 53,
        }

        # the shutdown: nothing crosses the border but TCP 179 and 443 and UDP 3785
        lab.censor(
            """
            ct state established,related accept
            ip daddr 198.18.1.0/24 tcp dport { 179, 443 } accept
            ip daddr 198.18.1.0/24 udp dport 3785 accept
            drop
            """
        )
        before = _get(lab.server, "http://127.0.0.1:10492/metrics") or ""
        daemon_log = logs.enter_context((tmp_path / "kz.log").open("wb"))
        started = time.monotonic()
        lab.client.popen(
            [sys.executable, "-m", "reachwatch", "run", "--config", str(config), "--state-dir",
             str(tmp_path / "state"), "--web.listen-address", f"127.0.0.1:{WEB}"],
            stdout=daemon_log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

        def surveys() -> float:
            text = _get(lab.client, f"http://127.0.0.1:{WEB}/metrics") or ""
            return _counter(text, "reachwatch_probes_total", target="ports-abroad")

        _wait(
            lambda: surveys() >= 3, 60, lambda: f"three surveys\n{(tmp_path / 'kz.log').read_text()[-3000:]}"
        )
        # surveys finished before the canary's count was read, and those begun by the time after it
        finished = surveys()
        after = _get(lab.server, "http://127.0.0.1:10492/metrics") or ""
        done, elapsed = surveys(), time.monotonic() - started
        status = json.loads(_get(lab.client, f"http://127.0.0.1:{WEB}/api/v1/status") or "{}")
        metrics = _get(lab.client, f"http://127.0.0.1:{WEB}/metrics") or ""

    ports = status["ports"]
    assert ports["vantage_state"] == "international_shutdown"
    assert ports["sentence"] == "During this shutdown, 179/tcp, 443/tcp and 3785/udp still reached abroad."
    (one,) = ports["surveys"]
    states = {p["label"]: p["state"] for p in one["ports"]}
    assert sorted(label for label, state in states.items() if state == "open") == sorted(OPEN)
    # 3785 is let out over UDP only: the survey tells the transports apart
    assert {label for label, state in states.items() if state != "open"} == {
        "22/tcp", "3785/tcp", "5060/tcp", "53/udp", "5060/udp", "icmp"
    }  # fmt: skip
    assert set(states.values()) == {"open", "filtered"}  # a dropped port is silence, never "closed"
    assert [s["label"] for s in one["open_in_state"]] == ["179/tcp", "443/tcp", "3785/udp"]
    assert _counter(metrics, "reachwatch_port_open", proto="tcp", port="179") == 1.0
    assert _counter(metrics, "reachwatch_port_open", proto="tcp", port="22") == 0.0
    assert _counter(metrics, "reachwatch_port_open", proto="icmp", port="0") == 0.0

    # the budget, counted at the canary: each survey at most packets() requests, and no more surveys than
    # the shutdown interval allows (the first at once, one more at most per shortest jittered interval)
    requests = _counter(after, "reachwatch_canary_requests_total") - _counter(
        before, "reachwatch_canary_requests_total"
    )
    answered = _counter(after, "reachwatch_canary_requests_total", result="answered") - _counter(
        before, "reachwatch_canary_requests_total", result="answered"
    )
    assert 3 <= done <= 1 + elapsed / (SHUTDOWN_INTERVAL * (1 - JITTER)), (done, elapsed)
    assert requests <= (done + 1) * budget  # +1: a survey may have been under way at the read
    # only the whitelisted ports reach the canary, each answered once a survey (UDP: the first datagram)
    assert 3 * finished <= answered <= 3 * (done + 1), (answered, finished, done)
    assert requests == answered  # nothing else arrived: no rejects, no rate limiting
