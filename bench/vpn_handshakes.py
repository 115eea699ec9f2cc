"""Handshakes per second and client CPU per probe for the VPN handshake probes, against real local servers.

    .venv/bin/python bench/vpn_handshakes.py [N]      (root: builds a tests/netlab.py lab)

Servers run in the lab's server namespace (openvpn p2p ``--dev null`` UDP plain and tls-crypt,
wireguard-go, strongSwan charon); the probes run sequentially, one at a time, in the client namespace,
across the lab's veth/router path. Figures: wall-clock handshakes/s (sequential, so 1/latency) and the
probing process's CPU (``time.process_time``) per probe, which is what the daemon pays per attempt.
wireguard-go drops initiations from one peer closer than 20 ms apart (50/s), so the WireGuard row runs
with a 25 ms retransmit: its rate is the server's limit, not the probe's.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
# OpenVPN 2.6 answers at most 100 new clients per 10 s by default (--connect-freq-initial): lift it
RATE = ["--connect-freq-initial", "1000000", "10"]
WARMUP = 5
sys.path.insert(0, str(REPO))  # tests.netlab and the server helpers of tests/vpn

from tests.netlab import SERVER_IP, Lab  # noqa: E402
from tests.vpn.conftest import make_pki, start_charon, start_openvpn_server, start_wireguard  # noqa: E402

from reachwatch.probes import PROBES  # noqa: E402
from reachwatch.probes.base import ProbeContext, run_probe  # noqa: E402


async def inner(plan: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    rows = []
    for item in plan:
        spec = PROBES[item["kind"]]
        for i in range(WARMUP):
            target = spec.target_model.model_validate(item["target"])
            await run_probe(spec, target, ProbeContext(target=f"warm-{i}", kind=spec.kind, timeout=5.0))
        ok = 0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for i in range(n):
            target = spec.target_model.model_validate(item["target"])
            ctx = ProbeContext(target=f"{target.name}-{i}", kind=spec.kind, timeout=5.0)
            ok += (await run_probe(spec, target, ctx)).success
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        print(f"{item['label']}: {n / wall:.1f}/s", file=sys.stderr)
        rows.append({"probe": item["label"], "n": n, "ok": ok, "per_s": n / wall, "cpu_ms": 1000 * cpu / n})
    return rows


def outer(n: int) -> None:
    with Lab("bnch") as lab, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        pki_dir = work / "pki"
        pki_dir.mkdir()
        pki = make_pki(pki_dir)
        servers = [
            start_openvpn_server(
                pki, work, "udp", RATE, netns=lab.server.name, local=SERVER_IP, port=1194, multi=True
            ),
            start_openvpn_server(
                pki,
                work,
                "udp",
                ["--tls-crypt", str(pki.ta_key), *RATE],
                netns=lab.server.name,
                local=SERVER_IP,
                port=1195,
                multi=True,
            ),
        ]
        wg = start_wireguard(lab, work)
        # no cookies: measure the plain exchange (charon asks one address for cookies after 3 half-open SAs
        # by default, which adds a round trip and a second key share per probe)
        start_charon(
            lab, work, cookie_threshold=1_000_000, cookie_threshold_ip=1_000_000, block_threshold=1_000_000
        )
        base = {"host": SERVER_IP, "retransmit": "1s"}
        plan = [
            {"label": "openvpn udp plain", "kind": "openvpn",
             "target": {**base, "kind": "openvpn", "name": "o", "port": 1194}},
            {"label": "openvpn udp tls-crypt", "kind": "openvpn",
             "target": {**base, "kind": "openvpn", "name": "c", "port": 1195,
                        "tls_crypt_file": str(pki.ta_key)}},
            {"label": "wireguard (retransmit 25ms)", "kind": "wireguard",
             "target": {**base, "kind": "wireguard", "name": "w", "port": wg.port,
                        "retransmit": "25ms",
                        "public_key": wg.public_key, "private_key_file": str(wg.client_key_file)}},
            {"label": "ikev2 modp2048 (500)", "kind": "ikev2",
             "target": {**base, "kind": "ikev2", "name": "i", "dh_group": 14}},
            {"label": "ikev2 ecp256->modp2048 (INVALID_KE)", "kind": "ikev2",
             "target": {**base, "kind": "ikev2", "name": "k", "dh_group": 19}},
        ]  # fmt: skip
        cmd = [str(REPO / ".venv/bin/python"), __file__, "--inner", str(n), json.dumps(plan)]
        out = subprocess.run(
            lab.client.cmd(cmd), capture_output=True, text=True, check=True, timeout=900
        ).stdout
        for s in servers:
            s.stop()
    print(f"{'probe':38} {'n':>5} {'ok':>5} {'handshakes/s':>13} {'cpu ms/probe':>13}")
    for row in json.loads(out.strip().splitlines()[-1]):
        print(f"{row['probe']:38} {row['n']:5d} {row['ok']:5d} {row['per_s']:13.1f} {row['cpu_ms']:13.2f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--inner":
        print(json.dumps(asyncio.run(inner(json.loads(sys.argv[3]), int(sys.argv[2])))))
    else:
        try:
            outer(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
        except subprocess.CalledProcessError as exc:
            print(exc.stderr[-2000:], file=sys.stderr)
            raise
