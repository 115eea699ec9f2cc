"""When each target is probed, and how many probes may run at once.

One asyncio task per target. The first attempt is staggered randomly within the interval (controls
within the first few seconds: nothing means anything before the vantage state is known), then every
interval with +/- ``defaults.jitter``. While a target's latest outcome disagrees with its confirmed
verdict, the next attempt comes after ``confirmation.residual_window`` rather than a full interval:
soon enough to confirm, late enough not to measure the censor's memory of our previous attempt.
A target may ask for another interval in a given vantage state (``TargetBase.vantage_intervals``: a
``port_survey`` every five minutes during an ``international_shutdown`` instead of hourly); when the
state changes, its next attempt comes forward to one such interval after its previous one.

Every attempt passes the same gates (``Limits``), in a fixed order so no two attempts can deadlock:
per destination (at most ``per_destination`` at once, and starts at least ``min_destination_spacing``
apart: scarce endpoints such as unlisted bridges must not be hammered), per kind, then global
``max_concurrency``. The gates are shared with ``sweep`` (``reachwatch check``).

After each attempt the scheduler records the result in the ``StateStore``, recomputes the vantage state
(for a control) and the target's verdict, then calls ``on_result(result, state, changed)``. A probe
cannot crash a task (``run_probe`` turns bugs into ``internal_error``) and neither can a callback.

Besides the configured targets, sources of *generated* targets (a relay set following the consensus)
hand their current members to ``set_generated(source, targets, rotation)`` at run time, without a
reload: members that stay keep their state and schedule, leavers are cancelled and forgotten (their
series leave /metrics), newcomers start. With a ``Rotation`` the source's members are not one task
each but one walk (``rotation.RotationOrder``): the next member every ``period / members`` seconds,
jittered, so a sweep of thousands is evenly spread and costs one task.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from reachwatch.config.load import LoadedConfig
from reachwatch.config.schema import Config
from reachwatch.config.types import TargetBase
from reachwatch.failures import VantageState
from reachwatch.model import Observation, ProbeResult, number_fact
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, ProbeSpec, Services, run_probe
from reachwatch.reference import ReferenceSet
from reachwatch.rotation import RotationOrder
from reachwatch.state import StateStore, TargetState
from reachwatch.vantage import VantageReading, update_store
from reachwatch.verdict import update_verdict

log = structlog.get_logger(__name__)

OnResult = Callable[[ProbeResult, TargetState, bool], Awaitable[None] | None]
OnVantage = Callable[[VantageReading], Awaitable[None] | None]
Progress = Callable[[int, int, ProbeResult], None]

# no loop may spin faster than this, whatever the config says (a "1ms" interval would be a busy loop)
MIN_DELAY = 0.05
# controls start within this many seconds: the vantage state gates every verdict
CONTROLS_STAGGER = 10.0


def destination_of(target: TargetBase) -> str:
    """The endpoint a target loads; falls back to its name for a kind without ``destination()``."""
    try:
        return target.destination()
    except NotImplementedError:
        return f"name:{target.name}"


def _reference_can_matter(result: ProbeResult) -> bool:
    """Whether a reference observation could change this result's verdict (see ``verdict.judge``).

    A failure can become ``blocked`` with a reference; a success only when it measured a throughput
    the reference's can show to be throttled, or fetched a page with block-page words the reference's
    page can show to be the censor's.
    """
    if not result.success:
        return True
    measured = number_fact(result.facts, "throughput_bps") is not None
    return measured or bool(result.facts.get("blockpage_markers"))


def jittered(interval: float, jitter: float, rng: random.Random) -> float:
    """``interval`` scaled by a uniform factor in [1 - jitter, 1 + jitter], never below ``MIN_DELAY``."""
    return max(MIN_DELAY, interval * (1.0 + rng.uniform(-jitter, jitter)))


# upper bounds (seconds) of the start-lag histogram: from "on time" to "a whole default interval late"
LAG_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 30.0, 60.0, 180.0, 600.0)


@dataclass
class StartLag:
    """How late scheduled attempts started: from when they were due to when they held every gate.

    Includes waits at the gates (destination spacing, per-kind and global concurrency) and a busy
    event loop: an attempt that keeps starting minutes late means the limits cannot carry the target
    list at its intervals. Rendered as ``reachwatch_scheduler_start_lag_seconds`` (a histogram).
    """

    counts: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS) + 1))
    total: float = 0.0
    last: float = 0.0

    def observe(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        index = next((i for i, bound in enumerate(LAG_BUCKETS) if seconds <= bound), len(LAG_BUCKETS))
        self.counts[index] += 1
        self.total += seconds
        self.last = seconds

    def cumulative(self) -> list[tuple[str, float]]:
        """``(le, count)`` pairs, cumulative, ``+Inf`` last: the shape a histogram family takes."""
        out, running = [], 0
        for bound, count in zip((*map(str, LAG_BUCKETS), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


class _Destination:
    """Gate for one destination while attempts at it wait or run: concurrent attempts, serialized starts."""

    __slots__ = ("lock", "semaphore", "users")

    def __init__(self, per_destination: int) -> None:
        self.semaphore = asyncio.Semaphore(per_destination)
        self.lock = asyncio.Lock()
        self.users = 0  # attempts holding or waiting for this gate; at 0 the gate is dropped


class Limits:
    """The concurrency and politeness gates every attempt passes, built from ``scheduler:`` config.

    Memory is bounded by what is in use, not by every destination ever seen: a destination's gate
    exists while attempts at it wait or run, and its last start time is kept while it can still delay
    the next start (``min_destination_spacing``).
    """

    def __init__(self, config: Config, previous: Limits | None = None) -> None:
        """New gates for ``config``; ``previous`` (a reload) hands over when each destination was last hit,
        so a reload cannot bring two attempts at one endpoint closer than the spacing."""
        sched = config.scheduler
        self.global_ = asyncio.Semaphore(sched.max_concurrency)
        self.per_kind = {kind: asyncio.Semaphore(n) for kind, n in sched.per_kind.items()}
        self.per_destination = sched.per_destination
        self.spacing = sched.min_destination_spacing
        self._gates: dict[str, _Destination] = {}
        # destination -> monotonic start of its latest attempt; pruned of entries older than the spacing
        # whenever it doubles in size, so its size follows the starts of the last spacing window
        self._last_start: dict[str, float] = {}
        self._prune_at = _PRUNE_MIN
        if previous is not None:
            current = {destination_of(t) for t in config.all_targets()}
            # endpoints no longer configured are forgotten
            self._last_start = {k: v for k, v in previous._last_start.items() if k in current}

    def slot(self, target: TargetBase) -> _Slot:
        """Hold every gate for one attempt (``async with limits.slot(target):``).

        Order: destination, kind, global (always the same: no deadlock). The destination's lock is held
        until the attempt has started, so starts to one destination are serialized and spaced even when
        the global gate makes them wait.
        """
        return _Slot(self, destination_of(target), self.per_kind.get(target.kind))

    def last_start(self, destination: str) -> float | None:
        """Monotonic time the latest attempt at ``destination`` started, while it still constrains."""
        return self._last_start.get(destination)

    def _enter(self, key: str) -> _Destination:
        gate = self._gates.get(key)
        if gate is None:
            gate = self._gates[key] = _Destination(self.per_destination)
        gate.users += 1
        return gate

    def _leave(self, key: str, gate: _Destination) -> None:
        gate.users -= 1
        if gate.users == 0 and self._gates.get(key) is gate:
            del self._gates[key]

    def _started(self, key: str) -> None:
        now = time.monotonic()
        self._last_start[key] = now
        if len(self._last_start) >= self._prune_at:
            horizon = now - self.spacing
            self._last_start = {k: t for k, t in self._last_start.items() if t > horizon}
            self._prune_at = max(_PRUNE_MIN, 2 * len(self._last_start))


_PRUNE_MIN = 1024


class _Slot:
    """One attempt's hold on the gates: a plain async context manager (no generator, no exit stack).

    10,000 targets means 10,000 attempts waiting here during a sweep; this costs ~0.1 kB each where a
    ``contextlib.asynccontextmanager`` with an ``AsyncExitStack`` cost ~1.5 kB (tracemalloc, 10,000-target
    sweep).
    """

    __slots__ = ("gate", "key", "kind_gate", "limits")

    def __init__(self, limits: Limits, key: str, kind_gate: asyncio.Semaphore | None) -> None:
        self.limits = limits
        self.key = key
        self.kind_gate = kind_gate
        self.gate: _Destination | None = None

    async def __aenter__(self) -> None:
        limits, key, kind_gate = self.limits, self.key, self.kind_gate
        gate = self.gate = limits._enter(key)
        try:
            async with gate.lock:
                await gate.semaphore.acquire()
                try:
                    last = limits.last_start(key)
                    if last is not None:
                        wait = last + limits.spacing - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
                    if kind_gate is not None:
                        await kind_gate.acquire()
                    try:
                        await limits.global_.acquire()
                    except BaseException:
                        if kind_gate is not None:
                            kind_gate.release()
                        raise
                except BaseException:
                    gate.semaphore.release()
                    raise
                limits._started(key)
        except BaseException:
            limits._leave(key, gate)
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        gate = self.gate
        assert gate is not None, "__aexit__ without __aenter__"
        self.limits.global_.release()
        if self.kind_gate is not None:
            self.kind_gate.release()
        gate.semaphore.release()
        self.limits._leave(self.key, gate)


@dataclass(frozen=True)
class Rotation:
    """Pacing of a generated source: one sweep through all its members per ``period`` seconds, starts
    spaced ``period / members`` apart, each spacing scaled by a uniform factor in [1 - jitter, 1 + jitter]."""

    period: float
    jitter: float = 0.2


@dataclass(frozen=True)
class GeneratedChange:
    """What one ``set_generated`` call did; ``refused`` are names taken by another target."""

    added: int = 0
    changed: int = 0
    removed: int = 0
    refused: tuple[str, ...] = ()


class _Generated:
    """One source of generated targets: its members and, when it rotates, its walk and sleeper."""

    def __init__(self, source: str, rotation: Rotation | None, rng: random.Random) -> None:
        self.source = source
        self.rotation = rotation
        self.targets: dict[str, TargetBase] = {}
        self.order = RotationOrder(rng)
        self.task: asyncio.Task[None] | None = None
        self.wake: asyncio.Future[None] | None = None  # resolved when the membership changes
        self.retries: dict[str, int] = {}  # confirmation retries in a row, per member

    def changed(self) -> None:
        if self.wake is not None:
            _resolve(self.wake)


class _Stopped(Exception):
    """Draining began before a scheduled attempt got its gates: it is not started."""


@dataclass(eq=False)  # hashed by identity: rotation attempts are kept in a set
class _Job:
    """One target's task and whether it is inside an attempt right now (drain lets those finish)."""

    target: TargetBase
    role: str | None
    source: str | None = None  # the generated source this job belongs to (None: configured)
    task: asyncio.Task[None] | None = None
    attempting: bool = False
    retries: int = 0  # confirmation retries in a row
    last_end: float | None = None  # monotonic end of the latest attempt
    # set when the vantage state changed and this target's interval depends on it (``vantage_intervals``)
    replan: bool = False
    # what wakes the job from its sleep early (``request_replan``); None while it is not sleeping
    wake: asyncio.Future[None] | None = None

    def request_replan(self) -> None:
        """Ask the job to plan its next attempt again (woken now if it is sleeping)."""
        self.replan = True
        if self.wake is not None:
            _resolve(self.wake)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Scheduler:
    """Runs every configured target on its schedule and keeps the ``StateStore`` current.

    Public API (used by ``app.py`` and ``cli.py``):

    - ``Scheduler(loaded, store, services=..., on_result=..., on_vantage=...)``: builds the reference
      clients (raises ``ConfigError`` for an unreadable reference password secret or CA file);
    - ``start()``: one task per target (call inside the running loop);
    - ``await reload(new_loaded)``: keeps the state and task of unchanged targets, restarts changed ones,
      cancels removed ones (their state is dropped: ``StateStore.retain``), starts new ones; raises
      ``ConfigError`` before changing anything if the new reference secrets cannot be read;
    - ``await drain(timeout)``: stop scheduling, let attempts in flight finish (bounded); True if all did;
    - ``await sweep(targets=None, progress=None)``: every target once (controls first), same limits;
    - ``set_generated(source, targets, rotation=None)``: replace one source's generated targets at run
      time (see the module docstring); ``generated(source)``: its current members;
    - ``in_flight``, ``last_tick`` (wall time an attempt last finished), ``last_sweep`` (wall time the last
      sweep finished), ``running`` (task count), ``start_lag`` (how late attempts start): self-metrics.
    """

    def __init__(
        self,
        loaded: LoadedConfig,
        store: StateStore,
        *,
        services: Services | None = None,
        on_result: OnResult | None = None,
        on_vantage: OnVantage | None = None,
        probes: Mapping[str, ProbeSpec[Any]] = PROBES,
        rng: random.Random | None = None,
    ) -> None:
        self.loaded = loaded
        self.store = store
        self.services = services or Services()
        self.on_result = on_result
        self.on_vantage = on_vantage
        self.probes = probes
        self._import_probes(loaded)
        self.rng = rng or random.Random()
        self.references = ReferenceSet(loaded.config.reference_vantages, loaded.base_dir)
        self.limits = Limits(loaded.config)
        self.in_flight = 0
        self.last_tick: float | None = None
        self.last_sweep: float | None = None
        self.start_lag = StartLag()
        self._jobs: dict[str, _Job] = {}
        self._generated: dict[str, _Generated] = {}
        self._side: set[_Job] = set()  # rotation attempts (and their retries) in flight or waiting
        self._started = False
        self._stopping = asyncio.Event()
        for target in loaded.config.all_targets():
            store.ensure(target, loaded.config.control_role(target.name))
        update_store(store, max_age=self.config.controls.max_age)  # "no controls configured" is known now

    @property
    def config(self) -> Config:
        return self.loaded.config

    @property
    def tasks(self) -> dict[str, asyncio.Task[None]]:
        """Target name -> its scheduling task (a copy; for self-metrics and tests)."""
        return {name: job.task for name, job in self._jobs.items() if job.task is not None}

    @property
    def running(self) -> int:
        return sum(1 for job in self._jobs.values() if job.task is not None and not job.task.done())

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start one task per configured target (idempotent for targets already running), and the
        generated sources handed over before."""
        self._started = True
        for target in self.config.all_targets():
            if target.name not in self._jobs:
                self._start_job(target, self.config.control_role(target.name))
        for gen in self._generated.values():
            self._start_generated(gen)

    def _start_job(self, target: TargetBase, role: str | None, source: str | None = None) -> None:
        self.store.ensure(target, role)
        job = _Job(target=target, role=role, source=source)
        job.task = asyncio.create_task(self._run(job), name=f"reachwatch-target-{target.name}")
        self._jobs[target.name] = job

    def _import_probes(self, loaded: LoadedConfig) -> None:
        """Import the probe of every kind the config uses now (``probes.spec_for``), not at its first
        attempt: a kind no target uses is never imported, and an import error surfaces at start."""
        for kind in sorted({target.kind for target in loaded.config.all_targets()}):
            self.probes[kind]

    async def reload(self, loaded: LoadedConfig) -> None:
        """Switch to a new config, keeping what did not change (see the class docstring)."""
        self._import_probes(loaded)
        references = ReferenceSet(loaded.config.reference_vantages, loaded.base_dir)
        old_references, self.references = self.references, references
        self.loaded = loaded
        # attempts holding the old gates release them as they end
        previous_limits = self.limits
        self.limits = Limits(loaded.config, previous=previous_limits)
        wanted = {t.name: (t, loaded.config.control_role(t.name)) for t in loaded.config.all_targets()}
        for gen in list(self._generated.values()):  # a configured target now takes the name
            for name in [n for n in gen.targets if n in wanted]:
                self._drop_member(gen, name, forget=False)
        generated = {d for gen in self._generated.values() for d in map(destination_of, gen.targets.values())}
        self.limits._last_start.update(
            {k: v for k, v in previous_limits._last_start.items() if k in generated}
        )
        stopped: list[asyncio.Task[None]] = []
        for name, job in list(self._jobs.items()):
            if job.source is not None:
                continue  # generated: its source decides
            new = wanted.get(name)
            if new is not None and new == (job.target, job.role):
                continue
            if job.task is not None:
                job.task.cancel()
                stopped.append(job.task)
            del self._jobs[name]
        if stopped:
            await asyncio.gather(*stopped, return_exceptions=True)
        self.store.retain(set(wanted) | {n for gen in self._generated.values() for n in gen.targets})
        # what probes remember is only about the endpoint it was seen on (probes.memory)
        self.services.retain(loaded.config.all_targets())
        for target, role in wanted.values():
            self.store.ensure(target, role)
        if not self._stopping.is_set():
            for name, (target, role) in wanted.items():
                if name not in self._jobs:
                    self._start_job(target, role)
        await self._refresh_vantage()
        await old_references.close()

    async def drain(self, timeout: float) -> bool:  # noqa: ASYNC109 (a grace period, not a deadline)
        """Stop scheduling; wait up to ``timeout`` s for attempts in flight, then cancel them.

        Returns True when every attempt in flight finished within the grace period.
        """
        self._stopping.set()
        for gen in self._generated.values():
            if gen.task is not None:
                gen.task.cancel()  # the walk: it only sleeps and spawns
        jobs = [*self._jobs.values(), *self._side]
        tasks = [job.task for job in jobs if job.task is not None]
        tasks += [gen.task for gen in self._generated.values() if gen.task is not None]
        for job in jobs:
            if job.task is not None and not job.attempting:
                job.task.cancel()  # waiting for its next turn: nothing to finish
        done_in_time = True
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=timeout)
            done_in_time = not pending
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self.references.close()
        return done_in_time

    # -- generated targets ------------------------------------------------------------------------

    def set_generated(
        self, source: str, targets: Sequence[TargetBase], rotation: Rotation | None = None
    ) -> GeneratedChange:
        """Make ``targets`` the members of ``source`` now, atomically (no await in between).

        A member whose name stays keeps its state (history, verdict) and its turn; a changed one (a relay
        that moved or gained a flag) is probed as it is now from its next attempt on. Leavers are
        cancelled and their state forgotten. A name already taken by a configured target or another
        source is refused (``GeneratedChange.refused``). A new ``rotation`` restarts the walk at the new
        pace with the same members; switching between a rotation and one task per member replaces the
        source.
        """
        gen = self._generated.get(source)
        if gen is not None and gen.rotation != rotation:
            if gen.rotation is not None and rotation is not None:
                # a new pace (the set's interval changed): same members, same state, a new walk
                gen.rotation = rotation
                if gen.task is not None:
                    gen.task.cancel()
                    gen.task = None
            else:
                self.set_generated(source, [], gen.rotation)
                gen = None
        if gen is None:
            gen = self._generated[source] = _Generated(source, rotation, self.rng)
        taken = {t.name for t in self.config.all_targets()}
        taken |= {n for other in self._generated.values() if other is not gen for n in other.targets}
        new: dict[str, TargetBase] = {}
        refused: list[str] = []
        for target in targets:
            if target.name in taken or target.name in new:
                refused.append(target.name)
            else:
                new[target.name] = target
        for kind in sorted({t.kind for t in new.values()}):
            self.probes[kind]  # import now: an import error surfaces here, not at the first attempt
        removed = [name for name in gen.targets if name not in new]
        for name in removed:
            self._drop_member(gen, name, forget=True)
        added = changed = 0
        for name, target in new.items():
            old = gen.targets.get(name)
            if old == target:
                continue
            gen.targets[name] = target
            self.store.ensure(target, None)
            if old is None:
                added += 1
                if rotation is None and self._started and not self._stopping.is_set():
                    self._start_job(target, None, source)
            else:
                changed += 1
                job = self._jobs.get(name)
                if job is not None:
                    job.target = target
        if rotation is not None:
            gen.order.update(gen.targets)
            gen.changed()
            if self._started:
                self._start_generated(gen)
        if not gen.targets:
            if gen.task is not None:
                gen.task.cancel()
            del self._generated[source]
        return GeneratedChange(added, changed, len(removed), tuple(refused))

    def generated(self, source: str) -> list[TargetBase]:
        """The current members of ``source`` (empty when it has none)."""
        gen = self._generated.get(source)
        return list(gen.targets.values()) if gen is not None else []

    def all_targets(self) -> list[TargetBase]:
        """Configured targets (controls first), then every generated one."""
        return [
            *self.config.all_targets(),
            *(t for g in self._generated.values() for t in g.targets.values()),
        ]

    def _drop_member(self, gen: _Generated, name: str, *, forget: bool) -> None:
        gen.targets.pop(name, None)
        gen.retries.pop(name, None)
        job = self._jobs.get(name)
        if job is not None and job.source == gen.source:
            if job.task is not None:
                job.task.cancel()
            del self._jobs[name]
        if forget:
            self.store.targets.pop(name, None)
        if gen.rotation is not None:
            gen.order.update(gen.targets)
            gen.changed()

    def _start_generated(self, gen: _Generated) -> None:
        if self._stopping.is_set():
            return
        if gen.rotation is None:
            for name, target in gen.targets.items():
                if name not in self._jobs:
                    self._start_job(target, None, gen.source)
        elif gen.task is None or gen.task.done():
            gen.task = asyncio.create_task(self._rotate(gen), name=f"reachwatch-rotation-{gen.source}")

    async def _rotate(self, gen: _Generated) -> None:
        """The walk: the next member every ``period / members`` s (jittered), each attempt its own task.

        A membership change wakes the sleeper: the next start comes one new spacing after the previous
        one if that is sooner (a set that grew from 1 to 7,000 members must not wait a day).
        """
        assert gen.rotation is not None
        loop = asyncio.get_running_loop()
        last = time.monotonic()
        while not self._stopping.is_set():
            members = len(gen.order)
            spacing = jittered(gen.rotation.period / max(1, members), gen.rotation.jitter, self.rng)
            due = last + spacing if members else None
            wake = gen.wake = loop.create_future()
            timer = loop.call_later(max(0.0, due - time.monotonic()), _resolve, wake) if due else None
            try:
                await wake
            finally:
                if timer is not None:
                    timer.cancel()
                gen.wake = None
            if due is None or time.monotonic() < due:
                continue  # woken by a change: plan again with the new membership
            name = gen.order.next()
            if name is not None:
                self._spawn(gen, name, due)
            last = due if time.monotonic() - due < spacing else time.monotonic()

    def _spawn(self, gen: _Generated, name: str, due: float | None) -> None:
        """Start one attempt at member ``name`` (a rotation turn, or a confirmation retry)."""
        target = gen.targets.get(name)
        if target is None or self._stopping.is_set() or self._generated.get(gen.source) is not gen:
            return
        job = _Job(target=target, role=None, source=gen.source)
        self._side.add(job)
        job.task = asyncio.create_task(self._turn(gen, name, job, due), name=f"reachwatch-target-{name}")
        job.task.add_done_callback(lambda _: self._side.discard(job))

    async def _turn(self, gen: _Generated, name: str, job: _Job, due: float | None) -> None:
        try:
            result = await self.probe_once(job.target, job, due)
        except _Stopped:
            return
        finally:
            job.attempting = False
        current = gen.targets.get(name)
        if current is None or self._generated.get(gen.source) is not gen:
            return  # it left while we probed: its state is gone and stays gone
        try:
            await self.record(current, None, result)
        except Exception as exc:  # our own bookkeeping: must not kill the walk's retries
            log.error("scheduler_attempt_failed", target=name, error=type(exc).__name__)
            return
        retries = gen.retries.get(name, 0)
        if self.wants_retry(self.store.targets.get(name), retries):
            gen.retries[name] = retries + 1
            delay = self.next_delay(0.0, retry=True)
            asyncio.get_running_loop().call_later(delay, self._spawn, gen, name, None)
        else:
            gen.retries.pop(name, None)

    # -- the per-target loop ---------------------------------------------------------------------

    def interval_for(self, target: TargetBase, role: str | None) -> float:
        """The target's interval for the current vantage state (``vantage_intervals``, e.g. a port survey
        during a shutdown), else its own interval, else ``controls_interval`` (controls) or
        ``defaults.interval``."""
        by_state = target.vantage_intervals().get(self.store.vantage_state.value)
        if by_state is not None:
            return by_state
        if target.interval is not None:
            return target.interval
        return self.config.scheduler.controls_interval if role else self.config.defaults.interval

    def wants_retry(self, state: TargetState | None, retries: int) -> bool:
        """Whether the next attempt is a confirmation retry rather than the regular interval.

        While the latest outcome disagrees with the verdict we retry, but at most ``attempts`` times in a
        row: a target that flaps forever must not be probed at the retry rate forever.
        """
        return state is not None and state.unconfirmed and retries < self.config.confirmation.attempts

    def next_delay(self, interval: float, *, retry: bool) -> float:
        """Seconds until the next attempt: a jittered interval, or a confirmation retry.

        A retry waits at least ``residual_window`` (jitter only lengthens it): residual blocking after
        a trigger would otherwise confirm a block our own previous attempt caused.
        """
        jitter = self.config.defaults.jitter
        if retry:
            residual = self.config.confirmation.residual_window
            return max(MIN_DELAY, residual * (1.0 + self.rng.uniform(0.0, jitter)))
        return jittered(interval, jitter, self.rng)

    async def _run(self, job: _Job) -> None:
        interval = self.interval_for(job.target, job.role)
        first = min(interval, CONTROLS_STAGGER) if job.role else interval
        delay = self.rng.uniform(0.0, first)
        while True:
            due = await self._until_due(job, time.monotonic() + delay)
            if due is None:
                return
            try:
                await self._attempt(job.target, job.role, job, due)
            except _Stopped:
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug in our own bookkeeping must not end this target's schedule
                log.error("scheduler_attempt_failed", target=job.target.name, error=type(exc).__name__)
            finally:
                job.attempting = False
                job.last_end = time.monotonic()
            if self._stopping.is_set():
                return
            retry = self.wants_retry(self.store.targets.get(job.target.name), job.retries)
            job.retries = job.retries + 1 if retry else 0
            delay = self.next_delay(self.interval_for(job.target, job.role), retry=retry)

    async def _until_due(self, job: _Job, due: float) -> float | None:
        """Sleep until ``due`` (monotonic); ``None`` (stop) when draining has begun meanwhile.

        A vantage change that shortens the target's interval (``vantage_intervals``: a port survey when
        a shutdown begins) brings the attempt forward to one new interval after the previous attempt
        (from now, when it has not made one yet); a change that lengthens it leaves the attempt already
        planned where it is.

        One future and one timer per sleeping target, woken by the timer or ``_Job.request_replan``;
        ``drain`` cancels sleeping tasks. (Helper tasks waiting on events cost ~3.4 kB a target: most
        of a large config's memory while it sleeps.)
        """
        loop = asyncio.get_running_loop()
        while True:
            job.replan = False
            wake = job.wake = loop.create_future()
            timer = loop.call_later(max(0.0, due - time.monotonic()), _resolve, wake)
            try:
                await wake
            finally:
                timer.cancel()
                job.wake = None
            if self._stopping.is_set():
                return None
            if not job.replan:
                return due
            # before its first attempt (staggered over a whole baseline interval) a target counts from now
            since = job.last_end if job.last_end is not None else time.monotonic()
            interval = self.interval_for(job.target, job.role)
            due = min(due, since + jittered(interval, self.config.defaults.jitter, self.rng))

    # -- one attempt -----------------------------------------------------------------------------

    async def probe_once(
        self, target: TargetBase, job: _Job | None = None, due: float | None = None
    ) -> ProbeResult:
        """Run one attempt at ``target`` through the limits (no bookkeeping).

        For a scheduled attempt (``job``), draining that begins while it waits for a gate means it never
        starts (``_Stopped``); once started, ``job.attempting`` tells ``drain`` to let it finish. ``due``
        (monotonic) is when a scheduled attempt should have started: its lateness goes to ``start_lag``.
        """
        spec = self.probes[target.kind]
        async with self.limits.slot(target):
            if job is not None:
                if self._stopping.is_set():
                    raise _Stopped
                job.attempting = True
            if due is not None:
                self.start_lag.observe(time.monotonic() - due)
            ctx = ProbeContext(
                target=target.name,
                kind=target.kind,
                timeout=target.timeout or self.config.defaults.timeout,
                private=target.private,
                base_dir=self.loaded.base_dir,
                services=self.services,
            )
            self.in_flight += 1
            try:
                return await run_probe(spec, target, ctx)
            finally:
                self.in_flight -= 1

    async def _attempt(
        self, target: TargetBase, role: str | None, job: _Job | None = None, due: float | None = None
    ) -> ProbeResult:
        result = await self.probe_once(target, job, due)
        await self.record(target, role, result)
        return result

    async def record(self, target: TargetBase, role: str | None, result: ProbeResult) -> bool:
        """Book one result: counters, vantage, verdict, ``on_result``. True if the verdict changed."""
        self.last_tick = time.time()
        state = self.store.ensure(target, role)
        state.record(result)
        # every result, not only a control's: a control result that aged past controls.max_age must stop
        # counting even when the controls themselves stopped reporting
        await self._refresh_vantage()
        vantage = self.store.vantage_state
        reference: Observation | None = None
        if vantage is VantageState.ONLINE and result.evidence is None and _reference_can_matter(result):
            # only asked when it can change the verdict: a local failure, or a measured throughput
            try:
                reference = await self.references.observe(
                    target.name, destination=destination_of(target), kind=target.kind
                )
            except Exception as exc:  # a reference must never cost us the verdict of our own result
                log.error("reference_lookup_failed", target=target.name, error=type(exc).__name__)
        changed = update_verdict(
            state,
            result,
            vantage=vantage,
            reference=reference,
            confirmation=self.config.confirmation,
            now=time.time(),
            throttle_ratio=self.config.evidence.throttle_ratio,
        )
        await self._call(self.on_result, result, state, changed)
        return changed

    async def _call(self, callback: Callable[..., Awaitable[None] | None] | None, *args: Any) -> None:
        """Run a hook (sync or async); its failure is logged, never propagated into the schedule."""
        if callback is None:
            return
        try:
            outcome = callback(*args)
            if inspect.isawaitable(outcome):
                await outcome
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error(
                "scheduler_callback_failed", callback=getattr(callback, "__name__", "?"), error=repr(exc)
            )

    async def _refresh_vantage(self) -> None:
        """Recompute the vantage state from the controls; tell ``on_vantage`` when it changed."""
        reading, changed = update_store(self.store, max_age=self.config.controls.max_age)
        if changed:
            log.debug("vantage_state_changed", state=reading.state.value, reason=reading.reason)
            for job in self._jobs.values():
                if job.target.vantage_intervals():
                    job.request_replan()
            await self._call(self.on_vantage, reading)

    # -- one-shot sweep --------------------------------------------------------------------------

    async def sweep(
        self, targets: Iterable[TargetBase] | None = None, progress: Progress | None = None
    ) -> list[ProbeResult]:
        """Probe each target once under the same limits; results in the order given.

        Controls among them run first so the vantage state is known when the targets are judged. Each
        result is booked like a scheduled one (store, verdict, ``on_result``); for a one-shot view use
        ``TargetState.last_outcome`` (a single attempt cannot be confirmed).
        """
        chosen = list(self.all_targets() if targets is None else targets)
        roles = {t.name: self.config.control_role(t.name) for t in chosen}
        results: dict[str, ProbeResult] = {}
        done = 0

        async def one(target: TargetBase) -> None:
            nonlocal done
            result = await self._attempt(target, roles[target.name])
            results[target.name] = result
            done += 1
            if progress is not None:
                try:
                    progress(done, len(chosen), result)
                except Exception as exc:
                    log.error("sweep_progress_failed", error=repr(exc))

        controls = [t for t in chosen if roles[t.name]]
        others = [t for t in chosen if not roles[t.name]]
        for batch in (controls, others):
            if batch:
                await asyncio.gather(*(one(t) for t in batch))
        self.last_sweep = time.time()
        return [results[t.name] for t in chosen]
