"""The probe contract: one signature for every protocol, and the runner that enforces the hard deadline.

A probe is ``async def probe(target: SomeTarget, ctx: ProbeContext) -> ProbeResult``. It walks its stages
with ``with ctx.stage(Stage.X):``, records facts with ``ctx.fact``, and ends with ``ctx.succeed()`` or
``ctx.fail(...)``. Network failures raised by ``reachwatch.net`` (``NetFailure``) need no handling in the
probe: ``run_probe`` turns them, the deadline and any bug into a ``ProbeResult``. So a probe reads as the
happy path of its protocol, and no probe can hang or crash the daemon.

TCP probes open their connection with ``open_tcp``: the resolve and connect stages, and the ``ip`` fact
recorded through ``public_fact``, are then the same for every kind.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import structlog

from reachwatch.config.types import TargetBase
from reachwatch.failures import Failure, Stage, Technique, scrub
from reachwatch.model import LOCAL_CAUSE_FACT, FactValue, ProbeResult
from reachwatch.net.dial import connect_tcp, pin_address
from reachwatch.net.errors import NetFailure
from reachwatch.probes.handshakes import HandshakeMemory
from reachwatch.probes.memory import EndpointMemory, WireGuardTimestamps

log = structlog.get_logger(__name__)

TargetT = TypeVar("TargetT", bound=TargetBase)


@dataclass
class Services:
    """Long-lived helpers some probes need, owned by the daemon (e.g. the supervised tor process).

    Kept as plain optional attributes so a probe that needs one and finds ``None`` fails with a clear
    ``internal_error``/``tor_unavailable`` instead of starting its own copy.

    The memories probes keep about endpoints live here (``probes.memory``), one set per daemon or
    one-shot run, so attempts of the same run share them and nothing else does; ``retain`` prunes them
    all on reload. ``handshakes``: who answered our handshake before, behind ``protocol_blocking``
    evidence (``probes.handshakes``); ``wireguard_timestamps``: the last TAI64N sent per peer pair;
    ``clock_skews``: (skew seconds, monotonic time seen) per Shadowsocks 2022 server.
    """

    tor: Any | None = None
    handshakes: HandshakeMemory = field(default_factory=HandshakeMemory)
    wireguard_timestamps: WireGuardTimestamps = field(default_factory=WireGuardTimestamps)
    clock_skews: EndpointMemory[tuple[float, float]] = field(default_factory=EndpointMemory)
    extra: dict[str, Any] = field(default_factory=dict)

    def retain(self, targets: Iterable[TargetBase]) -> None:
        """Forget what no target of the (new) config can use (the scheduler calls it on every reload)."""
        targets = list(targets)
        self.handshakes.retain(targets)
        self.wireguard_timestamps.retain(targets)
        self.clock_skews.retain(targets)


@dataclass
class ProbeContext:
    """Per-attempt state: timings per stage, facts, evidence. Created fresh for every attempt."""

    target: str
    kind: str
    timeout: float
    private: bool = False
    base_dir: Path = field(default_factory=Path.cwd)
    services: Services = field(default_factory=Services)
    started_at: float = field(default_factory=time.time)
    current_stage: Stage | None = None
    stage_durations: dict[str, float] = field(default_factory=dict)
    facts: dict[str, FactValue] = field(default_factory=dict)
    evidence: Technique | None = None
    _t0: float = field(default_factory=time.monotonic)

    @contextmanager
    def stage(self, stage: Stage) -> Iterator[None]:
        """Time one stage; while inside, a deadline expiry is attributed to this stage."""
        previous = self.current_stage
        self.current_stage = stage
        start = time.monotonic()
        failed = False
        try:
            yield
        except BaseException:
            failed = True  # a failure or the deadline (a cancellation) belongs to this stage: keep it
            raise
        finally:
            self.stage_durations[stage.value] = self.stage_durations.get(stage.value, 0.0) + (
                time.monotonic() - start
            )
            if not failed:
                self.current_stage = previous if previous is not None else stage

    def remaining(self) -> float:
        """Seconds left before the hard deadline (never negative)."""
        return max(0.0, self.timeout - (time.monotonic() - self._t0))

    def fact(self, key: str, value: FactValue) -> None:
        """Record an observation that is safe to publish (no addresses of private targets)."""
        self.facts[key] = value

    def public_fact(self, key: str, value: FactValue) -> None:
        """Record an identifying observation (an IP, a certificate subject) only for public targets."""
        if not self.private:
            self.facts[key] = value

    def mark_local_cause(self, cause: str) -> None:
        """Note that this failure has a cause on our side (the prober's clock, its own key); a reference
        vantage's success must then not turn it into ``blocked``."""
        self.facts[LOCAL_CAUSE_FACT] = cause

    def mark_evidence(self, technique: Technique) -> None:
        """Note local evidence of a blocking technique; the verdict engine weighs it."""
        self.evidence = technique

    def succeed(self) -> ProbeResult:
        """The successful result of this attempt, with the facts and stage timings gathered so far."""
        return self._result(success=True)

    def fail(
        self, failure: Failure, stage: Stage | None = None, evidence: Technique | None = None
    ) -> ProbeResult:
        """A failed result: ``failure`` at ``stage`` (default: the stage in progress), with ``evidence``
        when the probe itself saw a blocking technique."""
        if evidence is not None:
            self.evidence = evidence
        return self._result(success=False, failure=failure, stage=stage or self.current_stage)

    def _result(
        self, *, success: bool, failure: Failure | None = None, stage: Stage | None = None
    ) -> ProbeResult:
        return ProbeResult(
            target=self.target,
            kind=self.kind,
            started_at=self.started_at,
            duration_s=time.monotonic() - self._t0,
            success=success,
            failure=failure,
            stage=stage,
            evidence=self.evidence,
            stage_durations=dict(self.stage_durations),
            facts=dict(self.facts),
        )


async def open_tcp(
    ctx: ProbeContext, host: str, port: int, *, address: str | None = None
) -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter]:
    """The opening every TCP probe shares: ``(ip, reader, writer)``.

    Pins one address (stage ``resolve``; a configured ``address`` skips the lookup), records it as the
    ``ip`` fact through ``public_fact`` (so a private target's address never becomes a fact), then makes
    one connection (stage ``connect``).
    """
    with ctx.stage(Stage.RESOLVE):
        ip = address or await pin_address(host)
    ctx.public_fact("ip", ip)
    with ctx.stage(Stage.CONNECT):
        reader, writer = await connect_tcp(ip, port)
    return ip, reader, writer


ProbeFn = Callable[[Any, ProbeContext], Awaitable[ProbeResult]]


@dataclass(frozen=True)
class ProbeSpec(Generic[TargetT]):
    """One registry entry: the kind's config model and its probe function."""

    kind: str
    target_model: type[TargetT]
    probe: Callable[[TargetT, ProbeContext], Awaitable[ProbeResult]]
    description: str = ""


async def run_probe(spec: ProbeSpec[Any], target: TargetBase, ctx: ProbeContext) -> ProbeResult:
    """Run one attempt under a hard deadline and always return a result.

    - ``NetFailure`` -> its failure and stage;
    - the deadline -> ``generic_timeout_error`` at the stage in progress (a SYN never answered is
      ``connect``; silence after a ClientHello is ``tls_handshake``);
    - anything else is ``internal_error``, logged at error level, and the daemon goes on: a bug in the
      probe, or a ``ConfigError`` from a secret that became unreadable since the config was loaded.
    """
    try:
        async with asyncio.timeout(ctx.timeout):
            return await spec.probe(target, ctx)
    except NetFailure as exc:
        log.debug(
            "probe_failed",
            target=ctx.target,
            kind=ctx.kind,
            failure=exc.failure.value,
            stage=exc.stage.value,
            detail=exc.detail,
        )
        return ctx.fail(exc.failure, exc.stage)
    except TimeoutError:
        return ctx.fail(Failure.GENERIC_TIMEOUT_ERROR, ctx.current_stage or Stage.CONNECT)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a probe bug must not take the daemon down
        log.error(
            "probe_crashed", target=ctx.target, kind=ctx.kind, error=scrub(f"{type(exc).__name__}: {exc}")
        )
        return ctx.fail(Failure.INTERNAL_ERROR, ctx.current_stage)
