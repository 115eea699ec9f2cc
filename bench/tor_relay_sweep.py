"""Cost of a 7,000-relay set: loading the relay list, and CPU/time per ``tor_relay`` probe.

1. Expansion: a synthetic microdesc consensus and an Onionoo details document with ``--relays`` entries
   (default 7,000, the size of the real network), parsed with ``reachwatch.config.relaysets`` into
   ``tor_relay`` targets (what a config load or reload costs).
2. Probes: ``--n`` real ``tor_relay`` probes (TCP, TLS, link handshake, RSA + Ed25519 identity checks)
   through ``run_probe`` against a lone Debian tor relay on 127.0.0.1 (``tests/tor/lonerelay.py``),
   ``--concurrency`` at a time. CPU is this process's ``time.process_time`` per probe: the daemon's
   share, not tor's. Loopback has no latency, so probes/s is a CPU-bound upper bound.
3. Sweep: the whole set (``--relays``) once through the real ``Scheduler.sweep`` and state store, then
   one scrape of ``RelaySetCollector``.

    .venv/bin/python bench/tor_relay_sweep.py [--relays 7000] [--n 500] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stem.descriptor.networkstatus import NetworkStatusDocumentV3
from stem.descriptor.router_status_entry import RouterStatusEntryMicroV3
from tests.tor.lonerelay import lone_relay

from reachwatch.config.load import parse_config, with_relay_sets
from reachwatch.config.relaysets import RelaySetConfig, relay_set_targets
from reachwatch.config.targets.tor_relay import TorRelayTarget
from reachwatch.metrics.relaysets import RelaySetCollector
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, run_probe
from reachwatch.scheduler import Rotation, Scheduler
from reachwatch.state import StateStore


def _fingerprint(i: int) -> str:
    return f"{i:040X}"


def bench_expansion(relays: int, tmp: Path) -> None:
    flags = ["Fast Guard Running Stable Valid", "Exit Fast Running Valid", "Fast Running Valid"]
    entries = [
        RouterStatusEntryMicroV3.create(
            {
                "r": f"r{i} {base64.b64encode(bytes.fromhex(_fingerprint(i))).decode().rstrip('=')} "
                f"2026-11-22 11:19:31 10.{i // 65536}.{i // 256 % 256}.{i % 256} 9001 0",
                "s": flags[i % 3],
            }
        )
        for i in range(relays)
    ]
    consensus = tmp / "cached-microdesc-consensus"
    consensus.write_bytes(
        NetworkStatusDocumentV3.content({"network-status-version": "3 microdesc"}, routers=entries)
    )
    onionoo = tmp / "details.json"
    onionoo.write_text(
        json.dumps(
            {
                "relays": [
                    {
                        "fingerprint": _fingerprint(i),
                        "or_addresses": [f"10.{i // 65536}.{i // 256 % 256}.{i % 256}:9001"],
                        "flags": flags[i % 3].split(),
                        "running": True,
                    }
                    for i in range(relays)
                ]
            }
        )
    )
    for path in (consensus, onionoo):
        for flag_filter in ([], ["Guard"]):
            spec = RelaySetConfig(name="bench", source=str(path), flags=flag_filter)
            t0 = time.perf_counter()
            targets = relay_set_targets(spec, tmp)
            took = time.perf_counter() - t0
            size = path.stat().st_size / 1e6
            print(
                f"expand {path.name:28s} ({size:4.1f} MB) flags={flag_filter!s:10s} "
                f"-> {len(targets):5d} targets in {took:6.2f} s"
            )


async def bench_probes(n: int, concurrency: int) -> None:
    with lone_relay() as relay:
        target = TorRelayTarget(
            name="bench",
            kind="tor_relay",
            host="127.0.0.1",
            port=relay.or_port,
            fingerprint=relay.fingerprint,
            ed25519_identity=relay.ed25519_identity,
        )
        gate = asyncio.Semaphore(concurrency)
        ok = 0

        async def one() -> None:
            nonlocal ok
            async with gate:
                ctx = ProbeContext(target="bench", kind="tor_relay", timeout=10)
                result = await run_probe(PROBES["tor_relay"], target, ctx)
                ok += result.success

        await one()  # warm-up (imports, first handshake)
        ok = 0
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        print(
            f"probes n={n} concurrency={concurrency}: {ok}/{n} ok, {wall:.2f} s wall, "
            f"{n / wall:.0f} probes/s, client CPU {1000 * cpu / n:.2f} ms/probe "
            f"-> 7000 relays: {7000 * cpu / n:.1f} s CPU per sweep"
        )


async def bench_scheduler_sweep(relays: int, tmp: Path) -> None:
    """The whole set through the real scheduler (limits, state store, verdicts), then one scrape of the
    aggregate collector. All members share the lone relay's ORPort (each with its own fingerprint, so
    every attempt is a full handshake ending in ``tor_identity_mismatch``); per-destination limits are
    raised so the one destination does not serialize the sweep."""
    with lone_relay() as relay:
        details = tmp / "sweep.json"
        details.write_text(
            json.dumps(
                {
                    "relays": [
                        {
                            "fingerprint": _fingerprint(i),
                            "or_addresses": [f"127.0.0.1:{relay.or_port}"],
                            "flags": ["Guard"] if i % 3 == 0 else ["Fast"],
                        }
                        for i in range(relays)
                    ]
                }
            )
        )
        text = (
            "scheduler: {max_concurrency: 64, per_destination: 64, min_destination_spacing: 1ms}\n"
            f"tor: {{relay_sets: [{{name: sweep, source: {details}}}]}}\n"
        )
        loaded = with_relay_sets(parse_config(text, "bench", tmp))
        store = StateStore()
        scheduler = Scheduler(loaded, store)
        scheduler.set_generated("relay_set:sweep", loaded.relay_members["sweep"], Rotation(86400.0))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        results = await scheduler.sweep(scheduler.generated("relay_set:sweep"))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        failures = Counter(r.failure.value if r.failure else "ok" for r in results)
        print(
            f"scheduler sweep of {len(results)} relay targets (max_concurrency 64): {wall:.1f} s wall, "
            f"{cpu:.1f} s client CPU ({1000 * cpu / len(results):.2f} ms/target); outcomes {dict(failures)}"
        )
        registry = CollectorRegistry()
        registry.register(RelaySetCollector(store))
        t0 = time.perf_counter()
        body = generate_latest(registry)
        print(
            f"aggregate scrape over {len(results)} members: {1000 * (time.perf_counter() - t0):.1f} ms, "
            f"{len(body)} bytes"
        )
        await scheduler.drain(1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relays", type=int, default=7000)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rw-bench-relays-") as tmp:
        bench_expansion(args.relays, Path(tmp))
    asyncio.run(bench_probes(args.n, args.concurrency))
    with tempfile.TemporaryDirectory(prefix="rw-bench-sweep-") as tmp:
        asyncio.run(bench_scheduler_sweep(args.relays, Path(tmp)))


if __name__ == "__main__":
    main()
