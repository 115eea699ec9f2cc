"""``tor_bridge``: does this bridge work from here? Tested through the daemon's own tor, in batches.

The bridge line is pasted as Tor Browser or bridges.torproject.org gives it
(``reachwatch.config.bridgeline``). The test is bridgestrap's: the supervised tor fetches the bridge's
descriptor *through the bridge* (``reachwatch.tor.bridges``), which needs TCP, the pluggable transport,
TLS, the link handshake with the right identity and a one-hop directory request to work. A failure
carries the reason tor saw (``orconn_reason``): ``connectrefused`` -> ``connection_refused``, ``identity``
-> ``tor_identity_mismatch``, nothing before the batch deadline -> ``generic_timeout_error``.

Data stage (with ``tor.canary``): a descriptor is what a censor lets through, so a bridge is ``reachable``
only after data went through it. Inside its batch, once the descriptors are in, the tester builds a
3-hop circuit whose first hop is this bridge and opens a stream to the canary (``tor/circuits.py``); this
probe's hook verifies the canary's echo (stage ``tunnel``) and runs the data stage (``vpn/datastage.py``,
stage ``transfer``: the target's ``data_stage`` volume and lifetime, the cut point when it stops short).
A bridge whose descriptor came back but whose circuit, stream or data stalled is not reachable. Without
``tor.canary`` the test is the descriptor alone (fact ``data_stage: descriptor_only``).

Privacy: a bridge is known by its target name and ``bridge_id`` (SHA-256 of its fingerprint, truncated);
its address and fingerprint are facts only for bridges marked ``private: false`` (bridges are private by
default, unlike other targets). Set the target's
``timeout`` above ``tor.batch_timeout`` (a bridge waits for its batch).
"""

from __future__ import annotations

import asyncio

from reachwatch.config.bridgeline import BridgeLine
from reachwatch.config.targets.canary import CanaryConfig
from reachwatch.config.targets.datastage import DataStageConfig
from reachwatch.config.targets.tor_bridge import TorBridgeTarget
from reachwatch.failures import Failure, Stage
from reachwatch.model import ProbeResult
from reachwatch.net.errors import NetFailure
from reachwatch.probes.base import ProbeContext, ProbeSpec
from reachwatch.tor.bridges import DataHook
from reachwatch.tor.circuits import BatchPaths, circuit_reason
from reachwatch.tor.supervisor import TorUnavailable
from reachwatch.vpn.canary import PlainStream, StreamEcho, greeting, verify_canary
from reachwatch.vpn.datastage import run_data_stage

CIRCUIT_WAIT = 15.0  # a circuit through the bridge; tor's own first circuit timeout is 60 s, ours is tighter


def record_identity(line: BridgeLine, ctx: ProbeContext) -> None:
    """Facts that name a bridge: the hashed id always, the real address and fingerprint only if public."""
    ctx.fact("transport", line.transport_name)
    ctx.fact("bridge_id", line.hashed_fingerprint())
    ctx.public_fact("address", line.address)
    if line.fingerprint:
        ctx.public_fact("fingerprint", line.fingerprint)


def data_through_bridge(stage: DataStageConfig, canary: CanaryConfig, ctx: ProbeContext) -> DataHook:
    """The data stage this probe hands the tester: it runs inside the batch, on a stream over a circuit
    through the bridge, against this attempt's own deadline and facts."""

    async def run(paths: BatchPaths, fingerprint: str) -> None:
        hello = await greeting(canary, ctx.base_dir)  # a ConfigError (its secret) is the probe's to report
        async with asyncio.timeout(ctx.remaining()):
            with ctx.stage(Stage.TUNNEL):
                wait = min(CIRCUIT_WAIT, ctx.remaining())
                opened = await paths.stream(fingerprint, canary.host, canary.port, circuit_wait=wait)
                stream = PlainStream(*opened)
            try:
                with ctx.stage(Stage.TUNNEL):
                    await verify_canary(stream, hello)
                await run_data_stage(StreamEcho(stream), stage, ctx)
            finally:
                await stream.close()

    return run


async def probe(target: TorBridgeTarget, ctx: ProbeContext) -> ProbeResult:
    line = target.line()
    record_identity(line, ctx)
    service = ctx.services.tor
    if service is None:
        return ctx.fail(Failure.TOR_UNAVAILABLE, Stage.CONNECT)
    canary = service.canary
    hook = data_through_bridge(target.data_stage, canary, ctx) if canary is not None else None
    ctx.fact("data_stage", "canary" if hook is not None else "descriptor_only")
    with ctx.stage(Stage.CONNECT):
        try:
            outcome = await service.tester.test(line, hook)
        except TorUnavailable as exc:
            if exc.hint:
                ctx.fact("hint", exc.hint)  # e.g. how to get lyrebird for a webtunnel bridge
            return ctx.fail(exc.failure, Stage.CONNECT)
    # the connect stage is the descriptor fetch; the data stage's own stages were timed inside it
    ctx.stage_durations[Stage.CONNECT.value] = outcome.seconds
    ctx.fact("bridge_test_seconds", round(outcome.seconds, 3))
    ctx.fact("link_connected", outcome.connected)
    if outcome.orconn_reason:
        ctx.fact("orconn_reason", outcome.orconn_reason)
    if not outcome.working:
        return ctx.fail(outcome.failure or Failure.TOR_BRIDGE_FAILED, outcome.stage or Stage.CONNECT)
    ctx.fact("descriptor", True)
    error = outcome.data_error
    if error is None:
        return ctx.succeed()
    if isinstance(error, NetFailure):
        reason = circuit_reason(error)
        if reason:
            ctx.fact("circuit_reason", reason)
        return ctx.fail(error.failure, error.stage)
    if isinstance(error, TimeoutError):  # this attempt's deadline, inside the data stage
        return ctx.fail(Failure.GENERIC_TIMEOUT_ERROR, ctx.current_stage or Stage.TRANSFER)
    raise error


SPEC = ProbeSpec(
    kind="tor_bridge",
    target_model=TorBridgeTarget,
    probe=probe,
    description="Tor bridge (any transport): descriptor through it, then data over a circuit through it",
)
