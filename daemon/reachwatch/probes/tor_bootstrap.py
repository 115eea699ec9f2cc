"""``tor_bootstrap``: can a fresh tor bootstrap to 100% from here — directly or through given bridges?

Each attempt starts a new tor with an empty DataDirectory (``reachwatch.tor.bootstrap``), so nothing cached
can hide blocking. Success is ``Bootstrapped 100%``; facts ``bootstrap_seconds``, ``bootstrap_progress``
and ``bootstrap_tag`` say how far and how fast it got.

A stall is reported at the phase where it stopped: the stage comes from the phase (``conn`` -> ``connect``,
``conn_done`` -> ``tls_handshake``, ``handshake`` -> ``protocol_handshake``, directory phases ->
``transfer``, circuit phases -> ``tunnel``). While the first hop was still being reached (below
``handshake_done``), the failure is tor's ORCONN reason in our vocabulary (``CONNECTREFUSED`` ->
``connection_refused``), or ``generic_timeout_error`` when tor saw only silence (a blackholed bridge: no
SYN-ACK, no error), so the verdict engine reads it like any other connect/TLS/handshake failure
(``tcp_blackhole`` once a reference vantage reached the bridge); later stalls are
``tor_bootstrap_stalled``.
tor's own warning text is kept as ``bootstrap_warning`` with bridge addresses removed.

Bootstrapping already moves real data through the bridge (the consensus and microdescriptors) and builds
a circuit; with ``tor.canary`` the bootstrapped client then also carries the target's data stage: a
stream over its own circuit (through its bridge, as a user's would go) to the canary, the echo verified
(stage ``tunnel``), ``data_stage`` volume and lifetime (stage ``transfer``, ``vpn/datastage.py``). A
bootstrap that reached 100% but whose stream stalled is not reachable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from reachwatch.config.targets.canary import CanaryConfig
from reachwatch.config.targets.datastage import DataStageConfig
from reachwatch.config.targets.tor_bootstrap import TorBootstrapTarget
from reachwatch.failures import Failure, Stage
from reachwatch.model import ProbeResult
from reachwatch.net.errors import NetFailure
from reachwatch.probes.base import ProbeContext, ProbeSpec
from reachwatch.probes.tor_bridge import record_identity
from reachwatch.tor.bootstrap import run_bootstrap, stall_stage
from reachwatch.tor.bridges import ORCONN_REASONS
from reachwatch.tor.circuits import open_stream
from reachwatch.tor.supervisor import TorProcess, TorUnavailable
from reachwatch.vpn.canary import PlainStream, StreamEcho, greeting, verify_canary
from reachwatch.vpn.datastage import run_data_stage

# closing tor and building the result must fit inside the probe's own deadline
_CLOSE_MARGIN = 5.0
# what the data stage needs after the bootstrap besides its lifetime: a stream, the echo, the volume
_DATA_SLACK = 10.0


def data_through_client(
    stage: DataStageConfig, canary: CanaryConfig, ctx: ProbeContext
) -> Callable[[TorProcess], Awaitable[None]]:
    """The data stage run with the bootstrapped tor, against this attempt's deadline and facts."""

    async def run(tor: TorProcess) -> None:
        hello = await greeting(canary, ctx.base_dir)
        async with asyncio.timeout(max(0.0, ctx.remaining() - _CLOSE_MARGIN)):
            with ctx.stage(Stage.TUNNEL):
                stream = PlainStream(*await open_stream(tor, canary.host, canary.port))
            try:
                with ctx.stage(Stage.TUNNEL):
                    await verify_canary(stream, hello)
                await run_data_stage(StreamEcho(stream), stage, ctx, reserve=_CLOSE_MARGIN)
            finally:
                await stream.close()

    return run


async def probe(target: TorBootstrapTarget, ctx: ProbeContext) -> ProbeResult:
    lines = target.lines()
    if lines:
        record_identity(lines[0], ctx)
    else:
        ctx.fact("transport", "direct")
    service = ctx.services.tor
    if service is None:
        return ctx.fail(Failure.TOR_UNAVAILABLE, stall_stage(0))
    canary = service.canary
    then = data_through_client(target.data_stage, canary, ctx) if canary is not None else None
    # the bootstrap leaves the data stage its lifetime, and closing tor its margin
    data_time = target.data_stage.min_lifetime + _DATA_SLACK if then is not None else 0.0
    wait = max(1.0, min(service.bootstrap_timeout, ctx.remaining() - _CLOSE_MARGIN - data_time))
    try:
        report = await run_bootstrap(
            service.binaries,
            lines,
            wait=wait,
            extra_options=service.client_options,
            redact=target.sensitive_values(),
            then=then,
        )
    except TorUnavailable as exc:
        if exc.hint:
            ctx.fact("hint", exc.hint)  # e.g. how to get lyrebird for webtunnel bridges
        return ctx.fail(exc.failure, stall_stage(0))
    stage = stall_stage(report.progress)
    ctx.stage_durations[stage.value] = ctx.stage_durations.get(stage.value, 0.0) + report.seconds
    ctx.fact("bootstrap_progress", report.progress)
    ctx.fact("bootstrap_tag", report.tag)
    ctx.fact("bootstrap_seconds", round(report.seconds, 3))
    if report.reason:
        ctx.fact("bootstrap_reason", report.reason)
    if report.warning:
        ctx.fact("bootstrap_warning", report.warning)
    if report.done:
        ctx.fact("data_stage", "canary" if then is not None else "bootstrap_only")
        return _after_data(report.data_error, ctx)
    if report.progress < 15:  # the first hop was never fully up
        if report.reason:
            failure, _ = ORCONN_REASONS.get(report.reason.upper(), (Failure.TOR_BOOTSTRAP_STALLED, stage))
            return ctx.fail(failure, stage)
        # no error from tor at all, only silence until our deadline: what a blackhole looks like
        return ctx.fail(Failure.GENERIC_TIMEOUT_ERROR, stage)
    return ctx.fail(Failure.TOR_BOOTSTRAP_STALLED, stage)


def _after_data(error: BaseException | None, ctx: ProbeContext) -> ProbeResult:
    if error is None:
        return ctx.succeed()
    if isinstance(error, NetFailure):
        return ctx.fail(error.failure, error.stage)
    if isinstance(error, TimeoutError):  # this attempt's deadline, inside the data stage
        return ctx.fail(Failure.GENERIC_TIMEOUT_ERROR, ctx.current_stage or Stage.TRANSFER)
    raise error


SPEC = ProbeSpec(
    kind="tor_bootstrap",
    target_model=TorBootstrapTarget,
    probe=probe,
    description="full tor bootstrap with a fresh DataDirectory, then data to the canary; where it stalls",
)
