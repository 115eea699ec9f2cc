"""Bridges tested per minute: ONE tor in batches (bridgestrap since 2020) against one tor per bridge.

Runs the private Tor network of the test suite (tests/tor/torlab.py) with extra vanilla bridges, then
tests the same N bridge lines three ways, each with fresh tor processes (no cached descriptors):

- ``batch``: one tor, one ``SETCONF Bridge=...`` for all N (reachwatch.tor.bridges.test_batch);
- ``tor-per-bridge``: a new tor per bridge, same descriptor test, one bridge at a time;
- ``bootstrap-per-bridge``: a new tor per bridge bootstrapping to 100% (bridgestrap before 2020);
- ``data``: the batch with every bridge's data stage on (reachwatch's ``tor_bridge`` with ``tor.canary``:
  64 KiB to an echo canary over a 3-hop circuit through each bridge, no minimum lifetime), run twice by
  one ``BridgeTester``: the first batch's tor fetches the directory through the bridges, the second
  starts from the directory its predecessor left (``TorSupervisor.recycle``), as every later batch does.

CPU is ours plus our waited-for children (the tor processes we start, and their transport plugins),
from getrusage; the lab's own tor processes are not counted.

    .venv/bin/python bench/tor_bridges.py --bridges 10
    .venv/bin/python bench/tor_bridges.py --bridges 50 --methods batch,data
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.proxy.conftest import echo_canary
from tests.tor.torlab import TorLab

from reachwatch.config.bridgeline import BridgeLine, parse_bridge_line
from reachwatch.config.targets.canary import CanaryConfig
from reachwatch.config.targets.datastage import DataStageConfig
from reachwatch.probes.base import ProbeContext
from reachwatch.probes.tor_bridge import data_through_bridge
from reachwatch.tor.bootstrap import run_bootstrap
from reachwatch.tor.bridges import BridgeTester, test_batch
from reachwatch.tor.supervisor import TorBinaries, TorProcess, TorSupervisor


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


async def batch(binaries: TorBinaries, options: dict[str, list[str]], lines: list[BridgeLine]) -> int:
    tor = await TorProcess.launch(binaries, {"DisableNetwork": "1", **options})
    try:
        outcomes = await test_batch(tor, lines, binaries.plugin_lines(["obfs4"]), 60.0)
    finally:
        await tor.close()
    return sum(o.working for o in outcomes)


async def tor_per_bridge(
    binaries: TorBinaries, options: dict[str, list[str]], lines: list[BridgeLine]
) -> int:
    working = 0
    for line in lines:
        working += await batch(binaries, options, [line])
    return working


async def bootstrap_per_bridge(
    binaries: TorBinaries, options: dict[str, list[str]], lines: list[BridgeLine]
) -> int:
    working = 0
    for line in lines:
        report = await run_bootstrap(binaries, [line], wait=60.0, extra_options=options)
        working += report.done
    return working


async def data_batches(
    binaries: TorBinaries, options: dict[str, list[str]], lines: list[BridgeLine]
) -> list[tuple[int, float, float]]:
    """Two batches with the data stage on; (working, wall, CPU) of each."""
    out: list[tuple[int, float, float]] = []
    stage = DataStageConfig(volume=64 * 1024, min_lifetime=0)
    async with echo_canary() as port:
        canary = CanaryConfig(host="127.0.0.1", port=port)
        supervisor = TorSupervisor(binaries, options)
        tester = BridgeTester(supervisor, batch_size=100, batch_timeout=60.0, gather_window=0.2)
        try:
            for _ in range(2):
                cpu0, t0 = cpu_seconds(), time.monotonic()
                contexts = [ProbeContext("b", "tor_bridge", 180.0) for _ in lines]
                hooks = [data_through_bridge(stage, canary, ctx) for ctx in contexts]
                outcomes = await asyncio.gather(
                    *(tester.test(line, hook) for line, hook in zip(lines, hooks, strict=True))
                )
                working = sum(o.working and o.data_error is None for o in outcomes)
                out.append((working, time.monotonic() - t0, cpu_seconds() - cpu0))
        finally:
            await supervisor.close()
    return out


async def measure(
    name: str, fn: Callable[..., Awaitable[int]], binaries: TorBinaries, options: dict[str, list[str]],
    lines: list[BridgeLine],
) -> None:  # fmt: skip
    cpu0, t0 = cpu_seconds(), time.monotonic()
    working = await fn(binaries, options, lines)
    wall, cpu = time.monotonic() - t0, cpu_seconds() - cpu0
    rate, per = len(lines) / wall * 60, cpu / len(lines)
    print(f"| {name} | {len(lines)} | {working} | {wall:.1f} | {rate:.0f} | {per:.2f} |")


async def main(n: int, methods: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="rw-bench-torlab-") as tmp:
        lab = TorLab(Path(tmp), extra_bridges=max(0, n - 2))
        t0 = time.monotonic()
        lab.start(timeout=240)
        print(f"private network with {n} bridges ready in {time.monotonic() - t0:.1f} s\n")
        try:
            lines = [parse_bridge_line(x) for x in [lab.vanilla_bridge_line(), lab.obfs4_bridge_line()]]
            lines += [parse_bridge_line(x) for x in lab.extra_bridge_lines()]
            lines = lines[:n]
            binaries = TorBinaries(transports={"obfs4": "obfs4proxy"})
            options = lab.client_options()
            print("| method | bridges | working | wall s | bridges/min | CPU s/bridge |")
            print("|---|---|---|---|---|---|")
            if "batch" in methods:
                await measure("batch (one tor)", batch, binaries, options, lines)
            if "data" in methods:
                names = ("batch + data stage, first batch", "batch + data stage, later batch")
                rows = await data_batches(binaries, options, lines)
                for name, (working, wall, cpu) in zip(names, rows, strict=True):
                    rate, per = len(lines) / wall * 60, cpu / len(lines)
                    print(f"| {name} | {len(lines)} | {working} | {wall:.1f} | {rate:.0f} | {per:.2f} |")
            if "per-bridge" in methods:
                await measure("tor per bridge (descriptor)", tor_per_bridge, binaries, options, lines)
                await measure("tor per bridge (bootstrap)", bootstrap_per_bridge, binaries, options, lines)
        finally:
            lab.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bridges", type=int, default=10)
    parser.add_argument("--methods", default="batch,data,per-bridge")
    args = parser.parse_args()
    asyncio.run(main(args.bridges, args.methods.split(",")))
