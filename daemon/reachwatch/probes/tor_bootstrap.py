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
"""

from __future__ import annotations

from reachwatch.config.targets.tor_bootstrap import TorBootstrapTarget
from reachwatch.failures import Failure
from reachwatch.model import ProbeResult
from reachwatch.probes.base import ProbeContext, ProbeSpec
from reachwatch.probes.tor_bridge import record_identity
from reachwatch.tor.bootstrap import run_bootstrap, stall_stage
from reachwatch.tor.bridges import ORCONN_REASONS
from reachwatch.tor.supervisor import TorUnavailable

# closing tor and building the result must fit inside the probe's own deadline
_CLOSE_MARGIN = 5.0


async def probe(target: TorBootstrapTarget, ctx: ProbeContext) -> ProbeResult:
    lines = target.lines()
    if lines:
        record_identity(lines[0], ctx)
    else:
        ctx.fact("transport", "direct")
    service = ctx.services.tor
    if service is None:
        return ctx.fail(Failure.TOR_UNAVAILABLE, stall_stage(0))
    wait = max(1.0, min(service.bootstrap_timeout, ctx.remaining() - _CLOSE_MARGIN))
    try:
        report = await run_bootstrap(
            service.binaries,
            lines,
            wait=wait,
            extra_options=service.client_options,
            redact=target.sensitive_values(),
        )
    except TorUnavailable as exc:
        if exc.hint:
            ctx.fact("hint", exc.hint)  # e.g. how to get lyrebird for webtunnel bridges
        return ctx.fail(exc.failure, stall_stage(0))
    stage = stall_stage(report.progress)
    ctx.stage_durations[stage.value] = report.seconds
    ctx.fact("bootstrap_progress", report.progress)
    ctx.fact("bootstrap_tag", report.tag)
    ctx.fact("bootstrap_seconds", round(report.seconds, 3))
    if report.reason:
        ctx.fact("bootstrap_reason", report.reason)
    if report.warning:
        ctx.fact("bootstrap_warning", report.warning)
    if report.done:
        return ctx.succeed()
    if report.progress < 15:  # the first hop was never fully up
        if report.reason:
            failure, _ = ORCONN_REASONS.get(report.reason.upper(), (Failure.TOR_BOOTSTRAP_STALLED, stage))
            return ctx.fail(failure, stage)
        # no error from tor at all, only silence until our deadline: what a blackhole looks like
        return ctx.fail(Failure.GENERIC_TIMEOUT_ERROR, stage)
    return ctx.fail(Failure.TOR_BOOTSTRAP_STALLED, stage)


SPEC = ProbeSpec(
    kind="tor_bootstrap",
    target_model=TorBootstrapTarget,
    probe=probe,
    description="full tor bootstrap with a fresh DataDirectory; the phase where it stalls",
)
