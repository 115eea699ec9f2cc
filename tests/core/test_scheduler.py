"""The scheduler keeps its promises against real local listeners: limits, spacing, jitter, reload, drain.

Concurrency is counted where it matters, at the server: every listener here is a real TCP server on
127.0.0.1:0 that holds each connection for a while and records how many it holds at once. The probe used
for concurrency tests is a real TCP probe that stays connected until the server closes (registered
through the scheduler's ``probes`` seam under the ``tcp`` kind); the other tests use the shipped tcp probe.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from reachwatch.config.load import LoadedConfig, parse_config
from reachwatch.config.targets.port_survey import PortSurveyTarget
from reachwatch.config.targets.tcp import TcpTarget
from reachwatch.failures import Failure, Stage, Technique, VantageState, Verdict
from reachwatch.model import ProbeResult
from reachwatch.net.dial import connect_tcp
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, ProbeSpec
from reachwatch.scheduler import MIN_DELAY, Limits, Scheduler, jittered
from reachwatch.state import StateStore, TargetState
from tests.servers import blackhole, free_port, tcp_server


class Peer:
    """Real TCP listeners sharing one count of the connections they hold at once."""

    def __init__(self, hold: float) -> None:
        self.hold = hold
        self.current = 0
        self.peak = 0
        self.accepts: list[tuple[float, int]] = []  # (monotonic time, listener port)
        self.accepted = asyncio.Event()

    @asynccontextmanager
    async def listener(self) -> AsyncIterator[int]:
        port_box: list[int] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.current += 1
            self.peak = max(self.peak, self.current)
            self.accepts.append((time.monotonic(), port_box[0]))
            self.accepted.set()
            try:
                await asyncio.sleep(self.hold)
            finally:
                self.current -= 1  # before the close the client waits for: never over-counted

        async with tcp_server(handle) as port:
            port_box.append(port)
            yield port


async def holding_probe(target: TcpTarget, ctx: ProbeContext) -> ProbeResult:
    """Connect and stay until the server closes (bounded read), so the attempt's slot is held meanwhile."""
    with ctx.stage(Stage.CONNECT):
        reader, writer = await connect_tcp(target.host, target.port)
    try:
        with ctx.stage(Stage.TRANSFER):
            await reader.read(1)
    finally:
        writer.close()  # also when drain cancels us mid-read
    return ctx.succeed()


HOLDING = {**PROBES, "tcp": ProbeSpec(kind="tcp", target_model=TcpTarget, probe=holding_probe)}


class LowRandom(random.Random):
    """Always the lower bound: no start stagger, shortest jitter (deterministic timing tests)."""

    def uniform(self, a: float, b: float) -> float:
        return a


def config(tmp_path: Path, **sections: Any) -> LoadedConfig:
    """A validated config from sections (YAML accepts JSON); fast defaults for tests."""
    doc: dict[str, Any] = {
        "defaults": {"interval": "60s", "timeout": "2s", "jitter": 0.2},
        "scheduler": {"min_destination_spacing": "1ms"},
        "confirmation": {"attempts": 1, "required": 1, "residual_window": "50ms"},
    }
    for key, value in sections.items():
        doc[key] = {**doc.get(key, {}), **value} if isinstance(value, dict) else value
    return parse_config(json.dumps(doc), "test.yaml", tmp_path)


def tcp(name: str, port: int, **kw: Any) -> dict[str, Any]:
    return {"name": name, "kind": "tcp", "host": "127.0.0.1", "port": port, **kw}


class Results:
    """on_result hook collecting results with the monotonic time they arrived."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, ProbeResult, bool]] = []
        self._waiters: list[tuple[Callable[[], bool], asyncio.Event]] = []

    def __call__(self, result: ProbeResult, state: TargetState, changed: bool) -> None:
        self.seen.append((time.monotonic(), result, changed))
        for predicate, event in self._waiters:
            if predicate():
                event.set()

    def of(self, name: str) -> list[tuple[float, ProbeResult, bool]]:
        return [s for s in self.seen if s[1].target == name]

    async def until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        event = asyncio.Event()
        self._waiters.append((predicate, event))
        if predicate():
            return
        await asyncio.wait_for(event.wait(), timeout)


@asynccontextmanager
async def running(sched: Scheduler) -> AsyncIterator[Scheduler]:
    sched.start()
    try:
        yield sched
    finally:
        await sched.drain(2)


# -- concurrency limits (sweep and scheduled runs share them) -----------------------------------


async def test_sweep_never_exceeds_global_concurrency_and_reports_progress(tmp_path: Path) -> None:
    peer = Peer(hold=0.2)
    async with AsyncExitStack() as stack:
        ports = [await stack.enter_async_context(peer.listener()) for _ in range(9)]
        loaded = config(
            tmp_path, scheduler={"max_concurrency": 3}, targets=[tcp(f"t{i}", p) for i, p in enumerate(ports)]
        )
        sched = Scheduler(loaded, StateStore(), probes=HOLDING)
        progress: list[tuple[int, int]] = []
        results = await sched.sweep(progress=lambda done, total, r: progress.append((done, total)))
        await sched.drain(1)
    assert [r.target for r in results] == [f"t{i}" for i in range(9)]
    assert all(r.success for r in results)
    assert peer.peak == 3  # reached, never exceeded
    assert progress == [(i, 9) for i in range(1, 10)]
    assert sched.last_sweep is not None
    assert sched.in_flight == 0


async def test_per_kind_limit_is_respected(tmp_path: Path) -> None:
    peer = Peer(hold=0.2)
    async with AsyncExitStack() as stack:
        ports = [await stack.enter_async_context(peer.listener()) for _ in range(6)]
        loaded = config(
            tmp_path,
            scheduler={"max_concurrency": 16, "per_kind": {"tcp": 2}},
            targets=[tcp(f"t{i}", p) for i, p in enumerate(ports)],
        )
        sched = Scheduler(loaded, StateStore(), probes=HOLDING)
        await sched.sweep()
        await sched.drain(1)
    assert peer.peak == 2


async def test_per_destination_limit_is_respected_across_targets(tmp_path: Path) -> None:
    peer = Peer(hold=0.2)
    async with peer.listener() as port:
        # six targets, one endpoint (e.g. several bridges lines for one obfs4 server)
        loaded = config(
            tmp_path,
            scheduler={"max_concurrency": 16, "per_destination": 2},
            targets=[tcp(f"t{i}", port) for i in range(6)],
        )
        sched = Scheduler(loaded, StateStore(), probes=HOLDING)
        await sched.sweep()
        await sched.drain(1)
    assert peer.peak == 2


async def test_attempts_to_one_destination_are_spaced_and_others_are_not_held_up(tmp_path: Path) -> None:
    peer = Peer(hold=0.0)
    spacing = 0.25
    async with peer.listener() as scarce, peer.listener() as other:
        loaded = config(
            tmp_path,
            scheduler={"max_concurrency": 16, "per_destination": 4, "min_destination_spacing": f"{spacing}s"},
            targets=[*(tcp(f"s{i}", scarce) for i in range(4)), tcp("other", other)],
        )
        sched = Scheduler(loaded, StateStore())
        t0 = time.monotonic()
        results = await sched.sweep()
        await sched.drain(1)
    assert all(r.success for r in results)
    # the promise is about attempt starts (the scheduler's clock)...
    started = sorted(r.started_at for r in results if r.target.startswith("s"))
    gaps = [b - a for a, b in itertools.pairwise(started)]
    assert min(gaps) >= spacing - 0.005, gaps
    # ...and the server sees it too (looser: accept times carry the server loop's own latency)
    accepts = sorted(t for t, port in peer.accepts if port == scarce)
    assert len(accepts) == 4
    gaps = [b - a for a, b in itertools.pairwise(accepts)]
    assert min(gaps) >= spacing - 0.1, gaps
    (other_start,) = [t for t, port in peer.accepts if port == other]
    assert other_start - t0 < spacing  # a different destination does not wait in that line


# -- timing of the schedule ---------------------------------------------------------------------


def test_jitter_stays_within_bounds_and_never_below_the_floor() -> None:
    rng = random.Random(7)
    samples = [jittered(10.0, 0.2, rng) for _ in range(5000)]
    assert 8.0 <= min(samples) < 8.1
    assert 11.9 < max(samples) <= 12.0
    assert jittered(0.001, 0.5, rng) == MIN_DELAY


async def test_scheduled_attempts_start_staggered_and_repeat_with_jittered_interval(tmp_path: Path) -> None:
    peer = Peer(hold=0.0)
    interval, jitter = 0.3, 0.5
    async with peer.listener() as port:
        loaded = config(
            tmp_path,
            defaults={"interval": f"{interval}s", "jitter": jitter},
            targets=[tcp("a", port), tcp("b", port)],
        )
        hook = Results()
        sched = Scheduler(loaded, StateStore(), on_result=hook)
        t0 = time.monotonic()
        async with running(sched):
            await hook.until(lambda: len(hook.of("a")) >= 6 and len(hook.of("b")) >= 6)
    for name in ("a", "b"):
        times = [t for t, _, _ in hook.of(name)]
        assert times[0] - t0 <= interval + 0.2  # first run staggered within the interval
        gaps = [y - x for x, y in itertools.pairwise(times)]
        assert min(gaps) >= interval * (1 - jitter) - 0.01, gaps
        assert max(gaps) <= interval * (1 + jitter) + 0.25, gaps
    assert sched.last_tick is not None


async def test_unconfirmed_verdict_is_retried_after_the_residual_window_not_sooner(tmp_path: Path) -> None:
    peer = Peer(hold=0.0)
    residual = 0.3
    async with peer.listener() as port:
        loaded = config(
            tmp_path,
            confirmation={"attempts": 3, "required": 3, "residual_window": f"{residual}s"},
            targets=[tcp("a", port, interval="5s")],
        )
        hook = Results()
        store = StateStore()
        sched = Scheduler(loaded, store, on_result=hook, rng=LowRandom())
        async with running(sched):
            await hook.until(lambda: len(hook.seen) >= 3)
            # confirmed now: the next attempt waits a full interval (5 s), not another residual window
            await asyncio.sleep(residual * 2)
            assert len(hook.seen) == 3
    times = [t for t, _, _ in hook.seen]
    gaps = [y - x for x, y in itertools.pairwise(times)]
    assert all(residual - 0.01 <= g <= residual + 0.25 for g in gaps), gaps
    assert [changed for _, _, changed in hook.seen] == [False, False, True]  # 3 of 3 confirmed it
    assert store.targets["a"].verdict is Verdict.REACHABLE
    assert not store.targets["a"].unconfirmed


# -- robustness ---------------------------------------------------------------------------------


async def test_crashing_probe_and_crashing_hook_do_not_stop_the_schedule(tmp_path: Path) -> None:
    async def broken(target: TcpTarget, ctx: ProbeContext) -> ProbeResult:
        raise RuntimeError("bug in a probe")

    calls: list[ProbeResult] = []

    def bad_hook(result: ProbeResult, state: TargetState, changed: bool) -> None:
        calls.append(result)
        raise ValueError("bug in a hook")

    probes = {**PROBES, "tcp": ProbeSpec(kind="tcp", target_model=TcpTarget, probe=broken)}
    loaded = config(tmp_path, defaults={"interval": "50ms"}, targets=[tcp("a", free_port())])
    store = StateStore()
    sched = Scheduler(loaded, store, on_result=bad_hook, probes=probes)
    async with running(sched):
        for _ in range(100):
            if len(calls) >= 3:
                break
            await asyncio.sleep(0.05)
    assert len(calls) >= 3
    assert all(r.failure is Failure.INTERNAL_ERROR for r in calls)
    assert store.targets["a"].failures_total[(None, Failure.INTERNAL_ERROR)] >= 3


# -- reload and drain ---------------------------------------------------------------------------


async def test_reload_keeps_unchanged_targets_restarts_changed_cancels_removed_starts_new(
    tmp_path: Path,
) -> None:
    peer = Peer(hold=0.0)
    async with peer.listener() as port, peer.listener() as port2:
        hook = Results()
        store = StateStore()
        fast = {"interval": "100ms"}
        first = config(tmp_path, defaults=fast, targets=[tcp("a", port), tcp("b", port), tcp("c", port)])
        sched = Scheduler(first, store, on_result=hook)
        async with running(sched):
            await hook.until(lambda: all(hook.of(n) for n in "abc"))
            before = sched.tasks
            state_a = store.targets["a"]
            second = config(
                tmp_path, defaults=fast, targets=[tcp("a", port), tcp("b", port2), tcp("d", port)]
            )
            await sched.reload(second)
            after = sched.tasks
            assert after["a"] is before["a"] and not after["a"].done()
            assert store.targets["a"] is state_a
            assert after["b"] is not before["b"] and before["b"].done()
            assert before["c"].cancelled()
            assert "c" not in after and "c" not in store.targets
            count_a = state_a.probes_total
            await hook.until(lambda: bool(hook.of("d")) and state_a.probes_total > count_a)
            await hook.until(lambda: any(p == port2 for _, p in peer.accepts))
        assert sched.running == 0


async def test_drain_lets_the_attempt_in_flight_finish(tmp_path: Path) -> None:
    peer = Peer(hold=0.5)
    async with peer.listener() as port:
        hook = Results()
        loaded = config(tmp_path, targets=[tcp("a", port)])
        sched = Scheduler(loaded, StateStore(), on_result=hook, probes=HOLDING, rng=LowRandom())
        sched.start()
        await asyncio.wait_for(peer.accepted.wait(), 5)
        assert sched.in_flight == 1
        t0 = time.monotonic()
        assert await sched.drain(5) is True
        elapsed = time.monotonic() - t0
    assert [r.success for _, r, _ in hook.seen] == [True]  # finished and booked, not cancelled
    assert elapsed < 2
    assert sched.in_flight == 0 and sched.running == 0


async def test_drain_is_bounded_when_an_attempt_outlasts_the_grace_period(tmp_path: Path) -> None:
    peer = Peer(hold=30.0)
    async with peer.listener() as port:
        loaded = config(tmp_path, defaults={"timeout": "60s"}, targets=[tcp("a", port)])
        sched = Scheduler(loaded, StateStore(), probes=HOLDING, rng=LowRandom())
        sched.start()
        await asyncio.wait_for(peer.accepted.wait(), 5)
        t0 = time.monotonic()
        assert await sched.drain(0.2) is False
        assert time.monotonic() - t0 < 2
    assert sched.in_flight == 0 and sched.running == 0


async def test_drain_stops_further_scheduling(tmp_path: Path) -> None:
    peer = Peer(hold=0.0)
    async with peer.listener() as port:
        hook = Results()
        loaded = config(tmp_path, defaults={"interval": "50ms"}, targets=[tcp("a", port), tcp("b", port)])
        sched = Scheduler(loaded, StateStore(), on_result=hook)
        sched.start()
        await hook.until(lambda: len(hook.seen) >= 4)
        await sched.drain(2)
        count = len(hook.seen)
        await asyncio.sleep(0.3)
    assert len(hook.seen) == count


# -- the whole chain: controls -> vantage -> reference -> verdict ----------------------------------


@asynccontextmanager
async def reference_vantage(successes: dict[str, bool]) -> AsyncIterator[str]:
    """Another reachwatch abroad, as seen through its /api/v1/status (real aiohttp server)."""

    async def status(request: web.Request) -> web.Response:
        now = time.time()
        targets = [
            {"name": n, "last": {"target": n, "kind": "tcp", "started_at": now - 5, "success": ok}}
            for n, ok in successes.items()
        ]
        return web.json_response({"version": "0.1.0", "targets": targets})

    app = web.Application()
    app.router.add_get("/api/v1/status", status)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]
    finally:
        await runner.cleanup()


async def _sweep_outcomes(
    tmp_path: Path, controls: dict[str, Any], targets: list[dict[str, Any]], references: list[dict[str, Any]]
) -> tuple[StateStore, dict[str, tuple[Verdict, Technique | None]]]:
    loaded = config(tmp_path, controls=controls, targets=targets, reference_vantages=references)
    store = StateStore()
    sched = Scheduler(loaded, store)
    try:
        await sched.sweep()
    finally:
        await sched.drain(1)
    return store, {n: (s.verdict, s.technique) for n, s in store.targets.items()}


Hook = Callable[[ProbeResult, TargetState, bool], Awaitable[None] | None]


async def test_sweep_judges_with_controls_and_reference(tmp_path: Path) -> None:
    peer = Peer(hold=0.0)
    async with peer.listener() as up, tcp_server(blackhole) as silent:
        controls = {
            "domestic": [tcp("egov", up)],
            "international": [tcp("wiki", up)],
        }
        targets = [
            # accepts TCP, then the TLS handshake dies in silence (an SNI drop seen from inside)
            {"name": "sni-dropped", "kind": "tls", "host": "127.0.0.1", "port": silent, "timeout": "500ms"},
            # a dead server: nothing listens
            tcp("dead", free_port()),
            tcp("fine", up),
        ]
        async with reference_vantage({"sni-dropped": True, "dead": False, "fine": True}) as url:
            store, verdicts = await _sweep_outcomes(
                tmp_path, controls, targets, [{"name": "abroad", "url": url}]
            )
        assert store.vantage_state is VantageState.ONLINE
        assert verdicts["sni-dropped"] == (Verdict.BLOCKED, Technique.TLS_INTERFERENCE)
        assert verdicts["dead"] == (Verdict.UNREACHABLE, None)  # the reference failed too: dead, not blocked
        assert verdicts["fine"] == (Verdict.REACHABLE, None)
        assert store.targets["sni-dropped"].reference_success is True

        # the same silence without a reference stays unreachable
        _, verdicts = await _sweep_outcomes(tmp_path, controls, targets, [])
        assert verdicts["sni-dropped"] == (Verdict.UNREACHABLE, None)


async def test_outage_seen_by_the_controls_is_never_blocked_even_with_a_reference(tmp_path: Path) -> None:
    async with tcp_server(blackhole) as silent:
        controls = {"domestic": [tcp("egov", free_port())], "international": [tcp("wiki", free_port())]}
        targets = [
            {"name": "sni-dropped", "kind": "tls", "host": "127.0.0.1", "port": silent, "timeout": "500ms"},
            tcp("dead", free_port()),
        ]
        async with reference_vantage({"sni-dropped": True, "dead": True}) as url:
            store, verdicts = await _sweep_outcomes(
                tmp_path, controls, targets, [{"name": "abroad", "url": url}]
            )
    assert store.vantage_state is VantageState.OFFLINE
    assert verdicts["sni-dropped"] == (Verdict.UNKNOWN, None)
    assert verdicts["dead"] == (Verdict.UNKNOWN, None)


async def test_without_controls_a_reference_cannot_make_a_failure_blocked(tmp_path: Path) -> None:
    async with tcp_server(blackhole) as silent:
        targets = [
            {"name": "sni-dropped", "kind": "tls", "host": "127.0.0.1", "port": silent, "timeout": "500ms"}
        ]
        async with reference_vantage({"sni-dropped": True}) as url:
            store, verdicts = await _sweep_outcomes(tmp_path, {}, targets, [{"name": "abroad", "url": url}])
    assert store.vantage_state is VantageState.UNKNOWN
    assert store.vantage_reason == "no controls configured"
    assert verdicts["sni-dropped"] == (Verdict.UNREACHABLE, None)


@pytest.mark.parametrize("hook_kind", ["sync", "async"])
async def test_on_result_hook_may_be_sync_or_async(tmp_path: Path, hook_kind: str) -> None:
    peer = Peer(hold=0.0)
    seen: list[tuple[str, bool]] = []

    def sync_hook(result: ProbeResult, state: TargetState, changed: bool) -> None:
        seen.append((result.target, changed))

    async def async_hook(result: ProbeResult, state: TargetState, changed: bool) -> None:
        await asyncio.sleep(0)
        seen.append((result.target, changed))

    hook: Hook = sync_hook if hook_kind == "sync" else async_hook
    async with peer.listener() as port:
        loaded = config(tmp_path, targets=[tcp("a", port)])
        sched = Scheduler(loaded, StateStore(), on_result=hook)
        await sched.sweep()
        await sched.drain(1)
    assert seen == [("a", True)]  # 1 of 1: unknown -> reachable is a change


async def test_reload_keeps_destination_spacing(tmp_path: Path) -> None:
    peer = Peer(hold=0.0)
    spacing = 0.4
    async with peer.listener() as port:
        sched_cfg = {"min_destination_spacing": f"{spacing}s"}
        hook = Results()
        first = config(tmp_path, scheduler=sched_cfg, targets=[tcp("a", port)])
        sched = Scheduler(first, StateStore(), on_result=hook, rng=LowRandom())
        async with running(sched):
            await hook.until(lambda: len(hook.seen) == 1)
            # "b" starts at once (no stagger with LowRandom) but must wait out a's spacing
            await sched.reload(
                config(tmp_path, scheduler=sched_cfg, targets=[tcp("a", port), tcp("b", port)])
            )
            await hook.until(lambda: bool(hook.of("b")))
    assert len(peer.accepts) == 2  # both really connected
    (a,) = (r.started_at for _, r, _ in hook.of("a"))
    (b,) = (r.started_at for _, r, _ in hook.of("b"))
    assert b - a >= spacing - 0.005


async def test_vantage_changes_reach_the_hook_from_results_and_reloads(tmp_path: Path) -> None:
    peer = Peer(hold=0.0)
    readings: list[tuple[VantageState, str]] = []
    async with peer.listener() as port:
        loaded = config(tmp_path, controls={"international": [tcp("wiki", port)]}, targets=[tcp("a", port)])
        store = StateStore()
        sched = Scheduler(loaded, store, on_vantage=lambda r: readings.append((r.state, r.reason)))
        try:
            await sched.sweep()
            assert store.vantage_state is VantageState.ONLINE
            await sched.reload(config(tmp_path, targets=[tcp("a", port)]))
        finally:
            await sched.drain(1)
    assert readings == [
        (VantageState.ONLINE, "an international control is reachable"),
        (VantageState.UNKNOWN, "no controls configured"),
    ]


async def test_a_flapping_target_falls_back_to_the_interval_after_attempts_retries(tmp_path: Path) -> None:
    peer = Peer(hold=0.0)
    count = 0

    async def flapping(target: TcpTarget, ctx: ProbeContext) -> ProbeResult:
        """A real connect, but every other attempt reports a reset: outcomes never agree 3 of 3."""
        nonlocal count
        count += 1
        with ctx.stage(Stage.CONNECT):
            _, writer = await connect_tcp(target.host, target.port)
        writer.close()
        return ctx.succeed() if count % 2 else ctx.fail(Failure.CONNECTION_RESET, Stage.CONNECT)

    residual = 0.1
    probes = {**PROBES, "tcp": ProbeSpec(kind="tcp", target_model=TcpTarget, probe=flapping)}
    async with peer.listener() as port:
        loaded = config(
            tmp_path,
            confirmation={"attempts": 3, "required": 3, "residual_window": f"{residual}s"},
            targets=[tcp("a", port, interval="2s")],
        )
        hook = Results()
        sched = Scheduler(loaded, StateStore(), on_result=hook, probes=probes, rng=LowRandom())
        async with running(sched):
            await hook.until(lambda: len(hook.seen) >= 4)
            await asyncio.sleep(0.6)  # a fifth attempt at the retry rate would have come by now
            assert len(hook.seen) == 4
    times = [t for t, _, _ in hook.seen]
    assert all(residual - 0.01 <= b - a <= residual + 0.25 for a, b in itertools.pairwise(times))


async def test_controls_run_on_their_own_interval_and_targets_use_their_timeout(tmp_path: Path) -> None:
    peer = Peer(hold=0.0)
    async with peer.listener() as port, tcp_server(blackhole) as silent:
        loaded = config(
            tmp_path,
            defaults={"interval": "60s", "timeout": "30s"},
            scheduler={"controls_interval": "200ms"},
            controls={"international": [tcp("wiki", port)]},
            targets=[
                tcp("a", port),
                # the TLS handshake never gets an answer: only the target's own timeout ends it
                {"name": "silent", "kind": "tls", "host": "127.0.0.1", "port": silent, "timeout": "300ms"},
            ],
        )
        hook = Results()
        sched = Scheduler(loaded, StateStore(), on_result=hook, rng=LowRandom())
        async with running(sched):
            await hook.until(lambda: len(hook.of("wiki")) >= 4 and bool(hook.of("silent")))
    assert len(hook.of("a")) == 1  # next one due in ~48 s
    (silent_result,) = (r for _, r, _ in hook.of("silent"))
    assert silent_result.failure is Failure.GENERIC_TIMEOUT_ERROR
    assert silent_result.stage is Stage.TLS_HANDSHAKE
    assert silent_result.duration_s < 2


async def test_start_lag_counts_the_wait_at_a_full_global_gate(tmp_path: Path) -> None:
    """Two targets due at once with one global slot: the second starts a hold later, and says so."""
    hold = 0.3
    peer = Peer(hold=hold)
    async with peer.listener() as port_a, peer.listener() as port_b:  # two destinations: no spacing gate
        loaded = config(
            tmp_path,
            defaults={"interval": "60s", "jitter": 0.0},
            scheduler={"max_concurrency": 1},
            targets=[tcp("a", port_a), tcp("b", port_b)],
        )
        hook = Results()
        sched = Scheduler(loaded, StateStore(), on_result=hook, probes=HOLDING, rng=LowRandom())
        async with running(sched):
            await hook.until(lambda: len(hook.seen) >= 2)
    assert all(r.success for _, r, _ in hook.seen)
    lag = sched.start_lag
    assert sum(lag.counts) == 2
    assert lag.total >= hold - 0.05, lag  # one waited for the other's whole attempt
    buckets = dict(lag.cumulative())
    assert buckets["0.1"] == 1 and buckets["+Inf"] == 2  # the first started on time


async def test_destination_gates_last_only_while_used_and_start_times_while_they_constrain(
    tmp_path: Path,
) -> None:
    # 3,000 distinct destinations through the real gates (no sockets: the slot is what is measured);
    # before, every destination ever seen kept a lock, a semaphore and a start time for the daemon's life
    loaded = config(
        tmp_path, scheduler={"max_concurrency": 64, "min_destination_spacing": "1s"}, targets=[]
    )
    limits = Limits(loaded.config)
    targets = [
        TcpTarget(name=f"t{i}", kind="tcp", host=f"10.{i // 250}.{i % 250}.1", port=443) for i in range(3000)
    ]

    async def attempt(target: TcpTarget) -> None:
        async with limits.slot(target):
            await asyncio.sleep(0)

    await asyncio.gather(*(attempt(t) for t in targets[:1500]))
    assert limits._gates == {}  # nothing waits or runs: no gate is kept
    assert limits.last_start("10.0.0.1:443") is not None  # still within the spacing
    await asyncio.sleep(1.05)  # every start is now older than the spacing
    await asyncio.gather(*(attempt(t) for t in targets[1500:]))
    assert limits._gates == {}
    # the pruning ran when the table doubled: the first 1,500 starts no longer constrain and are gone
    assert limits.last_start("10.0.0.1:443") is None
    assert len(limits._last_start) <= 1500


async def test_a_cancelled_wait_for_a_gate_gives_back_what_it_held(tmp_path: Path) -> None:
    loaded = config(tmp_path, scheduler={"max_concurrency": 1, "per_kind": {"tcp": 1}}, targets=[])
    limits = Limits(loaded.config)
    a, b = (TcpTarget(name=n, kind="tcp", host="127.0.0.1", port=p) for n, p in (("a", 1), ("b", 2)))
    held = asyncio.Event()
    release = asyncio.Event()

    async def hold() -> None:
        async with limits.slot(a):
            held.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await held.wait()
    waiter = asyncio.create_task(limits.slot(b).__aenter__())
    await asyncio.sleep(0.01)  # b holds its destination gate and waits for the kind gate
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    release.set()
    await holder
    assert limits._gates == {}  # b's gate was dropped although it never got in
    async with asyncio.timeout(1):  # and every semaphore was given back: b gets in at once now
        async with limits.slot(b):
            pass

class HighRandom(random.Random):
    """Always the upper bound: a first attempt staggered to the very end of its interval."""

    def uniform(self, a: float, b: float) -> float:
        return b


@pytest.mark.parametrize("rng", [LowRandom(), HighRandom()], ids=["surveyed-before", "not-yet-surveyed"])
async def test_a_shutdown_brings_a_port_survey_forward_and_keeps_it_frequent(
    tmp_path: Path, rng: random.Random
) -> None:
    """``port_survey`` surveys every ``shutdown_interval`` while the vantage is in an international
    shutdown: the attempt planned an hour ahead comes forward when the shutdown begins (whether or not
    the baseline survey has run yet), and it stays frequent while the shutdown lasts."""
    surveyed: list[float] = []

    async def survey(target: PortSurveyTarget, ctx: ProbeContext) -> ProbeResult:
        surveyed.append(time.monotonic())
        return ctx.succeed()

    probes = {
        **PROBES,
        "port_survey": ProbeSpec(kind="port_survey", target_model=PortSurveyTarget, probe=survey),
    }
    secret = tmp_path / "canary.secret"
    secret.write_text("0123456789abcdef0123\n")
    secret.chmod(0o600)
    peer = Peer(hold=0.0)
    async with peer.listener() as domestic, AsyncExitStack() as abroad_stack:
        abroad = await abroad_stack.enter_async_context(peer.listener())
        loaded = config(
            tmp_path,
            scheduler={"controls_interval": "100ms"},
            controls={"domestic": [tcp("egov", domestic)], "international": [tcp("wiki", abroad)]},
            targets=[
                {
                    "name": "ports",
                    "kind": "port_survey",
                    "host": "127.0.0.1",
                    "secret_file": str(secret),
                    "tcp_ports": [7],
                    "udp_ports": [],
                    "interval": "1h",
                    "shutdown_interval": "300ms",
                }
            ],
        )
        store = StateStore()
        sched = Scheduler(loaded, store, probes=probes, rng=rng)
        assert sched.interval_for(loaded.config.targets[0], None) == 3600.0
        async with running(sched):
            await asyncio.sleep(0.5)
            assert store.vantage_state is VantageState.ONLINE
            # the baseline at once, or (staggered) an hour away; either way the next one is an hour away
            assert len(surveyed) == (1 if isinstance(rng, LowRandom) else 0)
            await abroad_stack.aclose()  # the international control's server goes away
            shutdown_seen = time.monotonic()
            while store.vantage_state is not VantageState.INTERNATIONAL_SHUTDOWN:
                await asyncio.sleep(0.02)
                assert time.monotonic() - shutdown_seen < 5
            assert sched.interval_for(loaded.config.targets[0], None) == 0.3
            await asyncio.sleep(1.3)
            during = [t for t in surveyed if t > shutdown_seen]
            # at most one interval after the previous survey (which was long enough ago): at once
            assert len(during) >= 3, during
            assert all(0.24 - 0.01 <= b - a <= 0.36 + 0.15 for a, b in itertools.pairwise(during))
