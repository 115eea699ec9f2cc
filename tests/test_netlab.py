"""The test censor itself: a rule in the router really drops, and the lab leaves nothing behind."""

from __future__ import annotations

import subprocess

import pytest

from tests.netlab import ROUTER_INNER_IP, Lab

pytestmark = pytest.mark.root


def _connect(lab: Lab, ip: str, port: int) -> bool:
    code = f"import socket; s=socket.create_connection(('{ip}', {port}), timeout=2); s.close()"
    return lab.client.run(["python3", "-c", code], check=False).returncode == 0


def test_censor_drops_forwarded_traffic_but_not_the_domestic_router() -> None:
    with Lab("nl") as lab:
        target = lab.server_ip(7)
        lab.server.popen(
            ["python3", "-m", "http.server", "--bind", target, "8080"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        lab.router.popen(
            ["python3", "-m", "http.server", "--bind", ROUTER_INNER_IP, "8081"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(50):
            if _connect(lab, target, 8080) and _connect(lab, ROUTER_INNER_IP, 8081):
                break
        assert _connect(lab, target, 8080)
        lab.shutdown()
        assert not _connect(lab, target, 8080)
        assert _connect(lab, ROUTER_INNER_IP, 8081)
        lab.uncensor()
        assert _connect(lab, target, 8080)
        names = (lab.client.name, lab.router.name, lab.server.name)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not any(name in listed for name in names)
