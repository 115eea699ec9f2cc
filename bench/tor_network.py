"""Issue 14's figures: watching the Tor network (7,000 relays) from one vantage.

1. ``probes``: CPU per ``tor_relay`` probe against a lone Debian tor relay on 127.0.0.1
   (``tests/tor/lonerelay.py``), this process's user+system time (``os.times``), median of ``--repeat``
   runs of ``--n`` probes, 16 at a time: on asyncio's loop and on uvloop (the daemon's when installed),
   for a relay-set member (RSA identity only) and for a target naming its Ed25519 identity too.
2. ``walk``: the daemon's rotation (``scheduler.Rotation``) over 7,000 members with its period compressed
   to one start every ``--walk-spacing`` s (60 ms; the scheduler's floor is 50 ms) for ``--walk-seconds``:
   does it keep the pace, and what does each turn cost. Members are closed loopback ports (127.3.x.y:9,
   refused at once). The default period is a day: one start every 12.3 s.
3. ``on-demand``: ``reachwatch check --relay-set`` (the real CLI, a subprocess) over 7,000 members, all
   the lone relay (so each attempt is a full TLS + link handshake ending in an identity mismatch) with
   the default ``max_concurrency`` 16; ``per_destination`` is raised to 16 because every member is the
   same address here, where real members are 7,000 destinations the default of 1 never slows.
4. ``daemon``: the real daemon (``reachwatch run``) with a 7,000-member relay set read from an Onionoo
   file (80 countries, 400 ASes) beside the same config without it: RSS (VmHWM) after ``--settle`` s,
   and /metrics: bytes and median render time over 5 scrapes, aggregates by flag, country and AS on.
5. ``render``: one /metrics body in process for the same set with every member holding a result.

    .venv/bin/python bench/tor_network.py [--relays 7000] [--n 1000] [--repeat 3] [--only probes,walk,...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.tor.lonerelay import TorRelayProcess, lone_relay

from reachwatch import logging as rwlog
from reachwatch.config.load import parse_config
from reachwatch.config.relaysets import RelaySetConfig, parse_relay_document, relay_targets
from reachwatch.config.targets.tor_relay import TorRelayTarget
from reachwatch.exposition import encode
from reachwatch.failures import Failure, Stage
from reachwatch.metrics import DaemonStatus, build_registry
from reachwatch.model import ProbeResult
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, run_probe
from reachwatch.scheduler import Rotation, Scheduler
from reachwatch.state import StateStore

ROOT = Path(__file__).resolve().parents[1]


def _onionoo(relays: int, address: object, flags_every: int = 3) -> dict[str, object]:
    """An Onionoo details document: ``address(i)`` gives each relay's ``host:port``."""
    rng = random.Random(14)
    countries = [f"{a}{b}" for a in "abcdefghij" for b in "abcdefgh"][:80]
    return {
        "relays": [
            {
                "fingerprint": f"{i:040X}",
                "nickname": f"r{i}",
                "or_addresses": [address(i)],  # type: ignore[operator]
                "flags": ["Fast", "Running", "Valid", *(["Guard", "Stable"] if i % flags_every == 0 else [])],
                "running": True,
                # a long tail, as the real network: a few countries and ASes hold most relays
                "country": countries[min(79, int(rng.paretovariate(1.2)) - 1)],
                "as": f"AS{64512 + min(399, int(rng.paretovariate(1.0)) - 1)}",
            }
            for i in range(relays)
        ]
    }


# -- 1. CPU per probe --------------------------------------------------------------------------------


async def _probe_cpu(relay: TorRelayProcess, n: int, ed25519: bool) -> float:
    target = TorRelayTarget(
        name="bench", kind="tor_relay", host="127.0.0.1", port=relay.or_port, fingerprint=relay.fingerprint,
        ed25519_identity=relay.ed25519_identity if ed25519 else None,
    )  # fmt: skip
    gate = asyncio.Semaphore(16)

    async def one() -> None:
        async with gate:
            ctx = ProbeContext(target="bench", kind="tor_relay", timeout=10)
            result = await run_probe(PROBES["tor_relay"], target, ctx)
            assert result.success, result.to_dict()

    for _ in range(20):  # warm-up: imports, first handshakes
        await one()
    t0 = os.times()
    await asyncio.gather(*(one() for _ in range(n)))
    t1 = os.times()
    return 1000 * ((t1.user - t0.user) + (t1.system - t0.system)) / n


def bench_probes(n: int, repeat: int) -> None:
    try:
        import uvloop  # noqa: PLC0415 - optional, as in the daemon
    except ImportError:
        uvloop = None
    loops = [("asyncio", asyncio.new_event_loop)]
    if uvloop is not None:
        loops.append(("uvloop", uvloop.new_event_loop))
    with lone_relay() as relay:
        for loop_name, factory in loops:
            for ed25519 in (False, True):
                runs = []
                for _ in range(repeat):
                    with asyncio.Runner(loop_factory=factory) as runner:
                        runs.append(runner.run(_probe_cpu(relay, n, ed25519)))
                what = "RSA + Ed25519 identity" if ed25519 else "RSA identity (relay-set member)"
                print(
                    f"probe CPU {loop_name:7s} {what:32s}: median {statistics.median(runs):.2f} ms/probe "
                    f"(runs {', '.join(f'{r:.2f}' for r in runs)}; n={n}, 16 at a time)"
                )


# -- 2. the rotation's pace --------------------------------------------------------------------------


async def _walk(relays: int, spacing: float, seconds: float, tmp: Path) -> None:
    loaded = parse_config(
        "defaults: {timeout: 2s, jitter: 0.2}\nscheduler: {max_concurrency: 16}\n", "bench", tmp
    )
    members = [
        TorRelayTarget(
            name=f"walk:{i}",
            kind="tor_relay",
            host=f"127.3.{i // 250}.{1 + i % 250}",
            port=9,
            fingerprint=f"{i:040X}",
            relay_set="walk",
            per_target_metrics=False,
        )
        for i in range(relays)
    ]
    store = StateStore()
    done = 0

    def counted(*_: object) -> None:
        nonlocal done
        done += 1

    period = spacing * relays
    sched = Scheduler(loaded, store, on_result=counted)
    sched.set_generated("relay_set:walk", members, Rotation(period=period, jitter=0.2))
    c0 = os.times()
    sched.start()
    await asyncio.sleep(seconds)
    c1 = os.times()
    await sched.drain(2)
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    lag = sched.start_lag
    print(
        f"rotation over {relays} members, period {period:.0f} s (one start every {1000 * spacing:.0f} ms; "
        f"the default day: every {86400 / relays:.1f} s): {done} attempts in {seconds:.0f} s (expected "
        f"{seconds / spacing:.0f}); CPU {1000 * cpu / max(1, done):.2f} ms per attempt (walk, refused probe, "
        f"booking); mean start lag {1000 * lag.total / max(1, sum(lag.counts)):.1f} ms"
    )


# -- 3. on demand ------------------------------------------------------------------------------------


def bench_on_demand(relays: int, tmp: Path) -> None:
    with lone_relay() as relay:
        (tmp / "d.json").write_text(json.dumps(_onionoo(relays, lambda _: f"127.0.0.1:{relay.or_port}")))
        config = tmp / "ondemand.yaml"
        config.write_text(
            "defaults: {timeout: 10s}\nscheduler: {max_concurrency: 16, per_destination: 16, "
            "min_destination_spacing: 1ms}\ntor:\n  relay_sets: [{name: net, source: d.json}]\n"
        )
        config.chmod(0o600)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.monotonic()
        argv = [sys.executable, "-m", "reachwatch", "check", "--config", str(config), "--relay-set", "net"]
        env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
        proc = subprocess.run([*argv, "--json"], capture_output=True, text=True, check=False, env=env)
        wall = time.monotonic() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        doc = json.loads(proc.stdout)["relay_set"]
        probed = doc["probed"]
        print(
            f"on demand: reachwatch check --relay-set over {probed} members: {wall:.1f} s wall "
            f"({probed / wall:.0f} relays/s), {cpu:.1f} s CPU ({1000 * cpu / max(1, probed):.2f} ms/relay "
            f"with start-up, load and report), max RSS {after.ru_maxrss / 1024:.0f} MB"
        )


# -- 4. the daemon -----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status_kb(pid: int, field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.MULTILINE)
    return int(match.group(1)) if match else 0


def _daemon(config: Path, state: Path, settle: float) -> dict[str, float]:
    port = _free_port()
    argv = [sys.executable, "-m", "reachwatch", "run", "--config", str(config), "--state-dir", str(state)]
    argv += ["--web.listen-address", f"127.0.0.1:{port}"]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "daemon")}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle)
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {proc.returncode}")
        times, size = [], 0
        for _ in range(5):
            t0 = time.perf_counter()
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as resp:
                size = len(resp.read())
            times.append(time.perf_counter() - t0)
        return {
            "hwm": _status_kb(proc.pid, "VmHWM") / 1024,
            "rss": _status_kb(proc.pid, "VmRSS") / 1024,
            "bytes": size,
            "scrape_ms": 1000 * statistics.median(times),
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def bench_daemon(relays: int, settle: float, tmp: Path) -> None:
    (tmp / "d.json").write_text(json.dumps(_onionoo(relays, lambda i: f"127.3.{i // 250}.{1 + i % 250}:9")))
    base = "defaults: {interval: 5m, timeout: 2s}\njournal: {enabled: false}\n"
    configs = {
        "without a relay set": base,
        f"with a {relays}-relay set": base + "tor:\n  relay_sets: [{name: net, source: d.json}]\n",
    }
    for what, text in configs.items():
        config = tmp / "daemon.yaml"
        config.write_text(text)
        config.chmod(0o600)
        state = Path(tempfile.mkdtemp(dir=tmp))
        got = _daemon(config, state, settle)
        print(
            f"daemon {what}: peak RSS {got['hwm']:.0f} MB (now {got['rss']:.0f} MB); /metrics "
            f"{got['bytes'] / 1024:.0f} KiB in {got['scrape_ms']:.0f} ms (median of 5)"
        )


# -- 5. one render with every member holding a result -----------------------------------------------


def bench_render(relays: int) -> None:
    """One /metrics body in process (``exposition.encode``) for a set whose members all have a result
    (60 % reached, the rest timed out), as after the first day of the walk."""
    doc = json.dumps(_onionoo(relays, lambda i: f"127.3.{i // 250}.{1 + i % 250}:9")).encode()
    targets = relay_targets(RelaySetConfig(name="net", live="onionoo"), parse_relay_document(doc, "bench"))
    store, rng = StateStore(), random.Random(1)
    for target in targets:
        ok = rng.random() < 0.6
        store.ensure(target, None).record(
            ProbeResult(
                target=target.name, kind="tor_relay", success=ok, duration_s=0.1, started_at=1.0,
                failure=None if ok else Failure.GENERIC_TIMEOUT_ERROR, stage=None if ok else Stage.CONNECT,
            )
        )  # fmt: skip
    registry = build_registry(store, DaemonStatus())
    encode(registry, "")
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        body = encode(registry, "")[0]
        times.append(time.perf_counter() - t0)
    print(
        f"render in process, {relays} members all with a result: {len(body) / 1024:.0f} KiB in "
        f"{1000 * statistics.median(times):.0f} ms (median of 5)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relays", type=int, default=7000)
    parser.add_argument("--n", type=int, default=1000, help="probes per CPU run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--walk-spacing", type=float, default=0.06, help="seconds between starts (>= 0.05)")
    parser.add_argument("--walk-seconds", type=float, default=60.0)
    parser.add_argument("--settle", type=float, default=20.0)
    parser.add_argument("--only", default="probes,walk,on-demand,daemon,render")
    args = parser.parse_args()
    only = set(args.only.split(","))
    rwlog.configure("warning")  # a debug line per refused probe would measure the logger
    with tempfile.TemporaryDirectory(prefix="rw-bench-tornet-") as tmp_name:
        tmp = Path(tmp_name)
        if "probes" in only:
            bench_probes(args.n, args.repeat)
        if "walk" in only:
            asyncio.run(_walk(args.relays, args.walk_spacing, args.walk_seconds, tmp))
        if "on-demand" in only:
            bench_on_demand(args.relays, tmp)
        if "daemon" in only:
            bench_daemon(args.relays, args.settle, tmp)
        if "render" in only:
            bench_render(args.relays)


if __name__ == "__main__":
    main()
