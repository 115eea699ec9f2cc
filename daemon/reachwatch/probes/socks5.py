"""``socks5``: is this SOCKS5 proxy alive, does it let us through, and does its tunnel carry data?

Stages: ``connect`` (TCP to the proxy), ``protocol_handshake`` (method negotiation and username/password
auth; silence there runs the other-payload control, see ``handshake_or_control``), ``tunnel`` (CONNECT
to the canary and the canary's echo), ``transfer`` (the data stage, see
``vpn.datastage``). Without a ``canary`` the probe stops after the handshake: that proves a live SOCKS5
server, not a usable one.

Reply codes 03-06 are the proxy's own upstream failing (``proxy_upstream_failed``): the censor inside the
country did not cause them, so they are never read as blocking.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from reachwatch.config.targets.socks5 import ProxyTargetBase, Socks5Target
from reachwatch.failures import Failure, Stage
from reachwatch.model import ProbeResult
from reachwatch.net.socks import socks5_connect, socks5_handshake
from reachwatch.net.tcp_control import other_payload_gets_reaction
from reachwatch.probes.base import ProbeContext, ProbeSpec, open_tcp
from reachwatch.vpn.canary import PlainStream, StreamEcho, greeting, verify_canary
from reachwatch.vpn.datastage import run_data_stage

T = TypeVar("T")


async def load_credentials(target: ProxyTargetBase, ctx: ProbeContext) -> tuple[str | None, str | None]:
    """The target's credentials, read in a worker thread.

    Read on every attempt (a rotated password is picked up without a reload), so the file reads and
    permission checks must not stall every other probe on the event loop.
    """
    return await asyncio.to_thread(target.credentials, ctx.base_dir)


async def handshake_or_control(
    ctx: ProbeContext, target: ProxyTargetBase, ip: str, handshake: Coroutine[Any, Any, T]
) -> T | None:
    """Run the proxy handshake with half the time left; ``None`` when it met silence.

    On silence the other-payload control runs (``net.tcp_control``) and ``protocol_blocking`` evidence
    follows the rule of ``probes.handshakes``: this endpoint completed the handshake before in this
    process (address and protocol are right) and the same port reacted to a non-proxy payload now.
    The caller then fails with ``protocol_handshake``/``generic_timeout_error``.
    """
    try:
        async with asyncio.timeout(ctx.remaining() / 2):
            value = await handshake
    except TimeoutError:
        reacted = await other_payload_gets_reaction(ip, target.port, max(0.1, ctx.remaining() - 0.2))
        ctx.fact("other_payload_reaction", reacted)
        evidence = ctx.services.handshakes.silence_evidence(target, path_ok=reacted)
        if evidence is not None:
            ctx.mark_evidence(evidence)
        return None
    # credentials are not material here: a wrong password is answered (auth_failed), never silence
    ctx.services.handshakes.answered(target)
    return value


async def probe(target: Socks5Target, ctx: ProbeContext) -> ProbeResult:
    username, password = await load_credentials(target, ctx)
    hello = await greeting(target.canary, ctx.base_dir)
    ip, reader, writer = await open_tcp(ctx, target.host, target.port)
    stream = PlainStream(reader, writer)
    try:
        with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
            method = await handshake_or_control(
                ctx, target, ip, socks5_handshake(reader, writer, username=username, password=password)
            )
        if method is None:
            return ctx.fail(Failure.GENERIC_TIMEOUT_ERROR, Stage.PROTOCOL_HANDSHAKE)
        ctx.fact("socks_auth", "userpass" if method == 2 else "none")
        if target.canary is None:
            return ctx.succeed()
        with ctx.stage(Stage.TUNNEL):
            await socks5_connect(reader, writer, target.canary.host, target.canary.port)
            await verify_canary(stream, hello)
        await run_data_stage(StreamEcho(stream), target.data_stage, ctx)
    finally:
        await stream.close()
    return ctx.succeed()


SPEC = ProbeSpec(
    kind="socks5",
    target_model=Socks5Target,
    probe=probe,
    description="SOCKS5 proxy: handshake, auth, CONNECT to a canary, data stage",
)
