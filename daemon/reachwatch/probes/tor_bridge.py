"""``tor_bridge``: does this bridge work from here? Tested through the daemon's own tor, in batches.

The bridge line is pasted as Tor Browser or bridges.torproject.org gives it
(``reachwatch.config.bridgeline``). The test is bridgestrap's: the supervised tor fetches the bridge's
descriptor *through the bridge* (``reachwatch.tor.bridges``), which needs TCP, the pluggable transport,
TLS, the link handshake with the right identity and a one-hop directory request to work. A failure
carries the reason tor saw (``orconn_reason``): ``connectrefused`` -> ``connection_refused``, ``identity``
-> ``tor_identity_mismatch``, nothing before the batch deadline -> ``generic_timeout_error``.

Privacy: a bridge is known by its target name and ``bridge_id`` (SHA-256 of its fingerprint, truncated);
its address and fingerprint are facts only for bridges marked ``private: false`` (bridges are private by
default, unlike other targets). Set the target's
``timeout`` above ``tor.batch_timeout`` (a bridge waits for its batch).
"""

from __future__ import annotations

from reachwatch.config.bridgeline import BridgeLine
from reachwatch.config.targets.tor_bridge import TorBridgeTarget
from reachwatch.failures import Failure, Stage
from reachwatch.model import ProbeResult
from reachwatch.probes.base import ProbeContext, ProbeSpec
from reachwatch.tor.supervisor import TorUnavailable


def record_identity(line: BridgeLine, ctx: ProbeContext) -> None:
    """Facts that name a bridge: the hashed id always, the real address and fingerprint only if public."""
    ctx.fact("transport", line.transport_name)
    ctx.fact("bridge_id", line.hashed_fingerprint())
    ctx.public_fact("address", line.address)
    if line.fingerprint:
        ctx.public_fact("fingerprint", line.fingerprint)


async def probe(target: TorBridgeTarget, ctx: ProbeContext) -> ProbeResult:
    line = target.line()
    record_identity(line, ctx)
    service = ctx.services.tor
    if service is None:
        return ctx.fail(Failure.TOR_UNAVAILABLE, Stage.CONNECT)
    with ctx.stage(Stage.CONNECT):
        try:
            outcome = await service.tester.test(line)
        except TorUnavailable as exc:
            if exc.hint:
                ctx.fact("hint", exc.hint)  # e.g. how to get lyrebird for a webtunnel bridge
            return ctx.fail(exc.failure, Stage.CONNECT)
    ctx.fact("bridge_test_seconds", round(outcome.seconds, 3))
    ctx.fact("link_connected", outcome.connected)
    if outcome.orconn_reason:
        ctx.fact("orconn_reason", outcome.orconn_reason)
    if outcome.working:
        return ctx.succeed()
    return ctx.fail(outcome.failure or Failure.TOR_BRIDGE_FAILED, outcome.stage or Stage.CONNECT)


SPEC = ProbeSpec(
    kind="tor_bridge",
    target_model=TorBridgeTarget,
    probe=probe,
    description="Tor bridge (any transport): descriptor fetched through it by the daemon's tor, in batches",
)
