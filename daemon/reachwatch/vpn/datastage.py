"""The data stage: real payload through an established way out, and a flow kept alive for its lifetime.

Every circumvention kind ends with this stage (``DataStageConfig``: ``volume``, ``min_lifetime``,
``stall_timeout``), whatever carries the bytes: a proxy's TCP stream to the echo canary, a Shadowsocks or
Tor stream, ICMP echoes inside a WireGuard or CSTP tunnel. The carrier is an ``EchoPath``; this module
owns what is common: the timing, the stop rules and the facts of the contract (``docs/ARCHITECTURE.md``,
"Data stage"):

1. volume: ``volume`` bytes go out and must come back (the path pipelines them); ``throughput_bps`` is
   measured over this part only (a lifetime of mostly idle seconds would hide a throttle);
2. lifetime: until ``min_lifetime`` seconds after the stage began, one small echo a second (so a censor that
   kills flows by age, not volume, is seen; and the last echo happens at or after the lifetime).

The stage stops at the first echo that does not come back within ``stall_timeout``, an end of stream or a
reset: ``transfer_incomplete`` (stall, close) or ``connection_reset`` at stage ``transfer``, with
``cut_after_bytes``/``cut_after_s``, the point where the flow stopped. An echo that differs from what was
sent is ``canary_mismatch`` (something else answered): not a cut, so no cut point.

Facts: ``bytes_moved`` (payload that came back), ``transfer_goal_bytes``, ``transfer_seconds``,
``throughput_bps``, ``flow_alive_s`` (the last echo that came back, seconds from the start), and when the
deadline left less than ``min_lifetime``: ``lifetime_clipped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Protocol

from reachwatch.config.targets.datastage import DataStageConfig
from reachwatch.failures import Failure, Stage
from reachwatch.model import FactValue
from reachwatch.net.errors import NetFailure

TICK = 1.0  # seconds between the lifetime echoes: gentle (a few hundred bytes a second), and fine enough
HOLD_BYTES = 256  # payload of one lifetime echo
DEADLINE_MARGIN = 0.5  # seconds of the attempt's deadline kept for closing the way out
# failures that mean something other than the flow answered: reported as they are, never as a cut
_NOT_A_CUT = frozenset({Failure.CANARY_MISMATCH, Failure.PROTOCOL_ERROR, Failure.INTERNAL_ERROR})


class Recorder(Protocol):
    """What the stage needs of the probe's attempt (``probes.base.ProbeContext`` is one). Declared here
    so this runtime layer never imports the probes above it."""

    def stage(self, stage: Stage) -> AbstractContextManager[None]: ...

    def fact(self, key: str, value: FactValue) -> None: ...

    def remaining(self) -> float: ...


@dataclass
class Meter:
    """Bytes that came back and when; the path adds to ``moved`` as payload arrives."""

    goal: int
    start: float = field(default_factory=time.monotonic)
    moved: int = 0
    volume_seconds: float | None = None
    alive_at: float = 0.0  # seconds from ``start`` of the last payload that came back

    def add(self, n: int) -> None:
        self.moved += n
        self.alive_at = time.monotonic() - self.start


class EchoPath(Protocol):
    """A way out that echoes payload back (the canary through a stream, ICMP echo through a tunnel).

    Both methods raise ``TimeoutError`` when nothing came back for ``stall`` seconds, ``EOFError`` at an
    end of stream, ``NetFailure`` for a classified error (``canary_mismatch`` when the echo differs).
    """

    async def pump(self, volume: int, meter: Meter, stall: float) -> None:
        """Send ``volume`` bytes and get them back, adding what arrives to ``meter``."""
        ...

    async def echo(self, size: int, meter: Meter, stall: float) -> None:
        """One small round trip of ``size`` bytes."""
        ...


async def run_data_stage(
    path: EchoPath, config: DataStageConfig, ctx: Recorder, *, reserve: float = DEADLINE_MARGIN
) -> None:
    """Run the whole stage at stage ``transfer``; raises ``NetFailure`` when the flow stopped early.

    ``reserve``: seconds of the attempt's deadline the probe needs after the stage (closing its way out);
    the lifetime check is clipped to leave them.
    """
    meter = Meter(goal=config.volume)
    lifetime = min(config.min_lifetime, max(0.0, ctx.remaining() - reserve))
    if lifetime < config.min_lifetime:
        ctx.fact("lifetime_clipped", True)
    with ctx.stage(Stage.TRANSFER), _facts(meter, ctx):
        try:
            if config.volume:
                await path.pump(config.volume, meter, config.stall_timeout)
                meter.volume_seconds = max(time.monotonic() - meter.start, 1e-6)
            while (left := lifetime - (time.monotonic() - meter.start)) > 0:
                await asyncio.sleep(min(TICK, left))
                await path.echo(HOLD_BYTES, meter, config.stall_timeout)
        except TimeoutError:
            raise NetFailure(
                Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER, f"stalled after {meter.moved} bytes"
            ) from None
        except EOFError:
            raise NetFailure(
                Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER, f"closed after {meter.moved} bytes"
            ) from None
        except NetFailure as exc:
            if exc.failure in _NOT_A_CUT or exc.failure is Failure.CONNECTION_RESET:
                raise NetFailure(exc.failure, Stage.TRANSFER, exc.detail) from exc
            raise NetFailure(Failure.TRANSFER_INCOMPLETE, Stage.TRANSFER, exc.detail) from exc


@contextlib.contextmanager
def _facts(meter: Meter, ctx: Recorder) -> Iterator[None]:
    """Record the stage's facts however it ends: success, a cut, or the attempt's deadline (the
    cancellation passes through here before the runner builds the result)."""
    failure: BaseException | None = None
    try:
        yield
    except BaseException as exc:
        failure = exc
        raise
    finally:
        elapsed = time.monotonic() - meter.start
        ctx.fact("bytes_moved", meter.moved)
        ctx.fact("transfer_goal_bytes", meter.goal)
        ctx.fact("transfer_seconds", round(elapsed, 3))
        ctx.fact("flow_alive_s", round(meter.alive_at, 3))
        if meter.volume_seconds is not None:
            ctx.fact("throughput_bps", round(meter.goal / meter.volume_seconds, 1))
        cut = failure is not None and not (
            isinstance(failure, NetFailure) and failure.failure in _NOT_A_CUT
        )
        if cut:
            ctx.fact("cut_after_bytes", meter.moved)
            ctx.fact("cut_after_s", round(elapsed, 3))


def random_payload(n: int) -> bytes:
    """Incompressible payload: a middlebox that compresses or caches cannot fake the echo."""
    return os.urandom(n)
