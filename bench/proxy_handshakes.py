"""Handshakes per second and client CPU per probe for socks5, http_proxy, shadowsocks and openconnect.

Runs the real probes (through ``run_probe``) against real local servers on 127.0.0.1: microsocks,
tinyproxy, ss-server (shadowsocks-libev) and ocserv, with an asyncio echo canary. Each proxy probe goes
all the way through the tunnel to the canary (handshake, CONNECT/relay, nonce echo); the data stage's
volume is 0 unless ``--push-bytes`` is given (and its lifetime always 0), so the figures are
per-handshake costs. The data stage at its defaults is measured by ``bench/data_stage.py``.

    .venv/bin/python bench/proxy_handshakes.py [--n 300] [--concurrency 1] [--push-bytes 0]

CPU is this process's CPU time (``time.process_time``) divided by attempts: the daemon's cost per probe,
excluding the servers. Loopback has no latency, so handshakes/s is an upper bound set by CPU.

Measured 2026-11-22 on the 2-core CI box (load average 5-7 from other test suites, so rates are noisy;
CPU per probe is the steadier figure)::

    --n 300                      socks5 649/s 0.82 ms   http_proxy 547/s 0.76 ms
                                 shadowsocks 415/s 1.01 ms   openconnect 60/s 2.22 ms
    --n 300 --concurrency 16     socks5 899/s 0.57 ms   http_proxy 1120/s 0.50 ms
                                 shadowsocks 1101/s 0.67 ms   openconnect 16/s 1.80 ms
    --n 100 --push-bytes 131072  socks5 22/s 2.35 ms   http_proxy 53/s 1.97 ms
                                 shadowsocks 28/s 2.80 ms   (openconnect has no push: 34/s 2.57 ms)

OpenConnect's rate is ocserv's (a TLS handshake and a forked worker per connection; worse when many
arrive at once), not the probe's: the client side costs ~2 ms of CPU per attempt.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trustme

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.proxy.conftest import echo_canary, microsocks, ocserv, ss_server, tinyproxy
from tests.servers import LOOPBACK

from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, run_probe


async def measure(
    target: dict[str, Any], n: int, concurrency: int, base_dir: Path
) -> tuple[float, float, int]:
    spec = PROBES[target["kind"]]
    model = spec.target_model.model_validate({"name": "bench", **target})
    sem = asyncio.Semaphore(concurrency)
    failures = 0

    async def one() -> None:
        nonlocal failures
        async with sem:
            ctx = ProbeContext(target="bench", kind=model.kind, timeout=10.0, base_dir=base_dir)
            result = await run_probe(spec, model, ctx)
            if not result.success:
                failures += 1

    await one()  # warm-up (imports, first connection)
    failures = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return n / wall, cpu / n * 1000, failures


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--push-bytes", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name, contextlib.ExitStack() as stack:
        tmp = Path(tmp_name)
        key = tmp / "ss.key"
        key.write_text("bench key")
        key.chmod(0o600)
        ca = trustme.CA()
        cert = ca.issue_cert(LOOPBACK)
        cert_pem, key_pem = tmp / "cert.pem", tmp / "key.pem"
        cert_pem.write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
        key_pem.write_bytes(cert.private_key_pem.bytes())
        ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
        async with echo_canary() as canary_port:
            canary = {"host": LOOPBACK, "port": canary_port}
            stage = {"volume": args.push_bytes, "min_lifetime": 0}
            socks = stack.enter_context(microsocks())
            http = stack.enter_context(tinyproxy(tmp, canary_port))
            ss = stack.enter_context(ss_server("chacha20-ietf-poly1305", "bench key"))
            oc = stack.enter_context(ocserv(tmp, cert_pem, key_pem))
            targets: list[dict[str, Any]] = [
                {"kind": "socks5", "host": LOOPBACK, "port": socks, "canary": canary, "data_stage": stage},
                {"kind": "http_proxy", "host": LOOPBACK, "port": http, "canary": canary, "data_stage": stage},
                {
                    "kind": "shadowsocks",
                    "host": LOOPBACK,
                    "port": ss,
                    "method": "chacha20-ietf-poly1305",
                    "password_file": str(key),
                    "canary": canary,
                    "data_stage": stage,
                },
                {"kind": "openconnect", "host": LOOPBACK, "port": oc, "ca_file": str(tmp / "ca.pem")},
            ]
            print(f"n={args.n} concurrency={args.concurrency} push_bytes={args.push_bytes}")
            print(f"{'probe':<13}{'handshakes/s':>14}{'CPU ms/probe':>14}{'failures':>10}")
            for t in targets:
                rate, cpu_ms, failures = await measure(t, args.n, args.concurrency, tmp)
                print(f"{t['kind']:<13}{rate:>14.1f}{cpu_ms:>14.2f}{failures:>10}")


if __name__ == "__main__":
    asyncio.run(main())
