"""A real censor (nftables in a router namespace) and the verdicts the scheduler reaches from inside.

The scheduler runs in the client namespace ("inside the country") as its own process; servers, an
international control and a reference vantage run in the server namespace ("abroad"); a domestic control
runs on the router. The reference vantage is a real HTTP server serving the documented /api/v1/status
JSON shape over HTTPS (plain HTTP to a reference off loopback is refused: a censor could forge it),
read through v1 after v2's 404. Proves: a silent drop is ``tcp_blackhole`` only with a reference and
``unreachable`` without; an injected RST is ``tcp_reset``; a dead server is never blocked; an
international shutdown is ``unknown`` for every target, never ``blocked``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.netlab import ROUTER_INNER_IP, Lab

pytestmark = [pytest.mark.root, pytest.mark.slow]

RUNNER = """
import asyncio, json, sys
from reachwatch.config.load import load_config
from reachwatch.scheduler import Scheduler
from reachwatch.state import StateStore

async def main() -> None:
    store = StateStore()
    sched = Scheduler(load_config(sys.argv[1]), store)
    try:
        await sched.sweep()
    finally:
        await sched.drain(1)
    print(json.dumps({
        "vantage": store.vantage_state.value,
        "verdicts": {n: [s.verdict.value, s.technique.value if s.technique else None]
                     for n, s in store.targets.items()},
    }))

asyncio.run(main())
"""

DROP_IP, RST_IP, DEAD_IP, REF_IP = "198.18.1.5", "198.18.1.6", "198.18.1.7", "198.18.1.9"
INTL_IP = "198.18.1.2"
PORT, DOMESTIC_PORT, REF_PORT = 8080, 8081, 8090


def _reachable(lab: Lab, ip: str, port: int) -> bool:
    code = f"import socket; s=socket.create_connection(('{ip}', {port}), timeout=1); s.close()"
    return lab.client.run(["python3", "-c", code], check=False).returncode == 0


def _serve(ns: Any, ip: str, port: int, directory: Path) -> None:
    ns.popen(
        ["python3", "-m", "http.server", "--bind", ip, "--directory", str(directory), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


TLS_SERVER = """
import functools, http.server, ssl, sys
ip, port, root, chain, key = sys.argv[1:6]
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=root)
httpd = http.server.ThreadingHTTPServer((ip, int(port)), handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(chain, key)
httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True)
httpd.serve_forever()
"""


def _serve_tls(ns: Any, ip: str, port: int, directory: Path, tmp_path: Path) -> Path:
    """A static HTTPS server (a certificate for ``ip`` from a fresh CA); returns the CA file."""
    ca = trustme.CA()
    cert = ca.issue_cert(ip)
    chain, key, ca_file = tmp_path / "ref-chain.pem", tmp_path / "ref-key.pem", tmp_path / "ref-ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    ns.popen(
        [sys.executable, "-c", TLS_SERVER, ip, str(port), str(directory), str(chain), str(key)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return ca_file


def _write_reference(root: Path, successes: dict[str, bool]) -> None:
    now = time.time()
    targets = [
        {"name": n, "kind": "tcp", "last": {"target": n, "kind": "tcp", "started_at": now, "success": ok}}
        for n, ok in successes.items()
    ]
    status = root / "api" / "v1" / "status"
    status.parent.mkdir(parents=True, exist_ok=True)
    status.write_text(json.dumps({"version": "0.1.0", "targets": targets}))


def _config(tmp_path: Path, name: str, *, reference: bool) -> Path:
    def tcp(n: str, ip: str, port: int = PORT) -> dict[str, Any]:
        return {"name": n, "kind": "tcp", "host": ip, "port": port}

    doc: dict[str, Any] = {
        "defaults": {"timeout": "1500ms"},
        "scheduler": {"min_destination_spacing": "1ms"},
        "confirmation": {"attempts": 1, "required": 1},
        "controls": {
            "domestic": [tcp("egov", ROUTER_INNER_IP, DOMESTIC_PORT)],
            "international": [tcp("wiki", INTL_IP)],
        },
        "targets": [tcp("dropped", DROP_IP), tcp("reset", RST_IP), tcp("dead", DEAD_IP)],
    }
    if reference:
        doc["reference_vantages"] = [
            {
                "name": "abroad",
                "url": f"https://{REF_IP}:{REF_PORT}",
                "timeout": "2s",
                "refresh": "3s",  # the phases change the paths: the default 30 s would make each wait longer
                "ca_file": str(tmp_path / "ref-ca.pem"),
            }
        ]
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    path.chmod(0o600)
    return path


def _sweep(lab: Lab, config: Path) -> dict[str, Any]:
    proc = lab.client.run([sys.executable, "-c", RUNNER, str(config)], check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_censor_techniques_need_a_reference_and_a_shutdown_is_never_blocked(tmp_path: Path) -> None:
    www, ref_root = tmp_path / "www", tmp_path / "ref"
    www.mkdir()
    ref_root.mkdir()
    _write_reference(ref_root, {"dropped": True, "reset": True, "dead": False})
    with_ref = _config(tmp_path, "with-ref.yaml", reference=True)
    without_ref = _config(tmp_path, "without-ref.yaml", reference=False)
    with Lab("cv") as lab:
        for ip in (DROP_IP, RST_IP, DEAD_IP, REF_IP):
            lab.server_ip(int(ip.rsplit(".", 1)[1]))
        for ip in (INTL_IP, DROP_IP, RST_IP):
            _serve(lab.server, ip, PORT, www)
        _serve_tls(lab.server, REF_IP, REF_PORT, ref_root, tmp_path)
        _serve(lab.router, ROUTER_INNER_IP, DOMESTIC_PORT, www)
        endpoints = [(INTL_IP, PORT), (DROP_IP, PORT), (RST_IP, PORT), (REF_IP, REF_PORT)]
        endpoints.append((ROUTER_INNER_IP, DOMESTIC_PORT))
        for _ in range(50):
            if all(_reachable(lab, ip, port) for ip, port in endpoints):
                break
            time.sleep(0.1)
        assert all(_reachable(lab, ip, port) for ip, port in endpoints)

        lab.censor(f"ip daddr {DROP_IP} drop\nip daddr {RST_IP} tcp dport {PORT} reject with tcp reset")

        seen = _sweep(lab, with_ref)
        assert seen["vantage"] == "online"
        assert seen["verdicts"]["dropped"] == ["blocked", "tcp_blackhole"]
        assert seen["verdicts"]["reset"] == ["blocked", "tcp_reset"]
        assert seen["verdicts"]["dead"] == ["unreachable", None]  # the reference failed too
        assert seen["verdicts"]["wiki"] == ["reachable", None]

        # the same censor, no reference vantage: nothing can be attributed
        seen = _sweep(lab, without_ref)
        assert seen["vantage"] == "online"
        assert seen["verdicts"]["dropped"] == ["unreachable", None]
        assert seen["verdicts"]["reset"] == ["unreachable", None]

        # an international shutdown: domestic works, nothing abroad does, nothing is "blocked"
        lab.shutdown()
        seen = _sweep(lab, with_ref)
        assert seen["vantage"] == "international_shutdown"
        assert seen["verdicts"]["egov"] == ["reachable", None]
        for name in ("dropped", "reset", "dead", "wiki"):
            assert seen["verdicts"][name] == ["unknown", None], name
