"""``http_proxy``: is this HTTP proxy alive, will it CONNECT us to the canary, and does the tunnel carry data?

Stages: ``connect`` (TCP to the proxy), ``protocol_handshake`` (the CONNECT request and a parseable
answer; ``407`` is ``proxy_auth_failed``; silence runs the other-payload control of ``probes.socks5``),
``tunnel`` (a 2xx and the canary's echo; ``500`` from tinyproxy and ``502``-``504`` are
``proxy_upstream_failed``, the proxy's own upstream, never blocking), ``transfer`` (the data stage,
``vpn.datastage``).
Without a ``canary`` the probe asks for ``CONNECT 127.0.0.1:0`` (a port nothing can listen on, on the
proxy's own loopback): any well-formed HTTP answer other than ``407`` (usually a refusal) proves a live
HTTP proxy, and nothing leaves the proxy.
"""

from __future__ import annotations

from reachwatch.config.targets.http_proxy import HttpProxyTarget
from reachwatch.failures import Failure, Stage
from reachwatch.model import ProbeResult
from reachwatch.net.errors import NetFailure
from reachwatch.net.http_connect import http_connect
from reachwatch.probes.base import ProbeContext, ProbeSpec, open_tcp
from reachwatch.probes.socks5 import handshake_or_control, load_credentials
from reachwatch.vpn.canary import PlainStream, StreamEcho, greeting, verify_canary
from reachwatch.vpn.datastage import run_data_stage

_NOWHERE = "127.0.0.1"


async def probe(target: HttpProxyTarget, ctx: ProbeContext) -> ProbeResult:
    username, password = await load_credentials(target, ctx)
    hello = await greeting(target.canary, ctx.base_dir)
    ip, reader, writer = await open_tcp(ctx, target.host, target.port)
    stream = PlainStream(reader, writer)
    try:
        if target.canary is None:
            with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
                try:
                    await http_connect(reader, writer, _NOWHERE, 0, username=username, password=password)
                except NetFailure as exc:
                    if exc.stage is not Stage.TUNNEL:
                        raise
                    ctx.fact("http_status_class", "refused")  # a live proxy that said no: liveness proven
            return ctx.succeed()
        with ctx.stage(Stage.PROTOCOL_HANDSHAKE):
            tunnel = await handshake_or_control(
                ctx,
                target,
                ip,
                http_connect(
                    reader,
                    writer,
                    target.canary.host,
                    target.canary.port,
                    username=username,
                    password=password,
                ),
            )
        if tunnel is None:
            return ctx.fail(Failure.GENERIC_TIMEOUT_ERROR, Stage.PROTOCOL_HANDSHAKE)
        ctx.fact("http_status", tunnel.head.status)
        stream.pending = tunnel.early_data
        with ctx.stage(Stage.TUNNEL):
            await verify_canary(stream, hello)
        await run_data_stage(StreamEcho(stream), target.data_stage, ctx)
    finally:
        await stream.close()
    return ctx.succeed()


SPEC = ProbeSpec(
    kind="http_proxy",
    target_model=HttpProxyTarget,
    probe=probe,
    description="HTTP CONNECT proxy: CONNECT to a canary, echo check, data stage",
)
