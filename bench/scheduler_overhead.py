"""What the scheduler and verdict engine add to each attempt, over the bare probe.

Sweeps N loopback ``tcp`` targets (spread over 20 local listeners) twice in one process: first with
``run_probe`` under a plain semaphore, then with ``Scheduler.sweep`` (limits, destination gates, state
store, vantage, verdict, confirmation). Prints probes/s and CPU ms per attempt for both, and the
difference. A benchmark, not a test: ``.venv/bin/python bench/scheduler_overhead.py 5000``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time
from pathlib import Path

from reachwatch.config.load import parse_config
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, run_probe
from reachwatch.scheduler import Scheduler
from reachwatch.state import StateStore

LISTENERS = 20
CONCURRENCY = 256


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main(n: int) -> None:
    async def close_at_once(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    servers = [
        await asyncio.start_server(close_at_once, "127.0.0.1", 0, backlog=1024) for _ in range(LISTENERS)
    ]
    ports = [s.sockets[0].getsockname()[1] for s in servers]
    targets = [
        {"name": f"t{i}", "kind": "tcp", "host": "127.0.0.1", "port": ports[i % LISTENERS]} for i in range(n)
    ]
    doc = {
        "scheduler": {
            "max_concurrency": CONCURRENCY,
            "per_destination": 64,
            "min_destination_spacing": "1ms",
        },
        "controls": {
            "international": [{"name": "ctl", "kind": "tcp", "host": "127.0.0.1", "port": ports[0]}]
        },
        "targets": targets,
    }
    loaded = parse_config(json.dumps(doc), "bench.yaml", Path.cwd())

    gate = asyncio.Semaphore(CONCURRENCY)

    async def bare(target):  # type: ignore[no-untyped-def]
        async with gate:
            ctx = ProbeContext(target=target.name, kind="tcp", timeout=5)
            return await run_probe(PROBES["tcp"], target, ctx)

    c0, t0 = cpu(), time.monotonic()
    bare_results = await asyncio.gather(*(bare(t) for t in loaded.config.targets))
    c1, t1 = cpu(), time.monotonic()
    scheduler = Scheduler(loaded, StateStore())
    sched_results = await scheduler.sweep()
    c2, t2 = cpu(), time.monotonic()
    await scheduler.drain(1)
    for server in servers:
        server.close()
    assert all(r.success for r in bare_results) and all(r.success for r in sched_results)
    m = len(sched_results)
    print(
        f"N={n} bare run_probe: {n / (t1 - t0):.0f} probes/s, {1000 * (c1 - c0) / n:.3f} CPU ms/probe | "
        f"Scheduler.sweep: {m / (t2 - t1):.0f} probes/s, {1000 * (c2 - c1) / m:.3f} CPU ms/probe | "
        f"overhead {1000 * ((c2 - c1) / m - (c1 - c0) / n):.3f} CPU ms/probe"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("n", type=int, nargs="?", default=5000)
    asyncio.run(main(parser.parse_args().n))
