"""``fronting``: does a domain-fronted HTTPS request reach its real service from here?

meek and Snowflake's broker rendezvous hide behind a CDN: the TLS handshake names an innocuous *front*
domain (SNI, and the certificate we verify), and the HTTP ``Host`` header, inside the encryption, names
the real service the CDN routes to. A censor sees only the front. The probe walks exactly that:

- ``resolve``/``connect`` to the front (or to ``address``, an edge IP to pin, like curl ``--resolve``);
- ``tls_handshake`` with SNI = front, certificate verified for the front (``reachwatch.net.tls``);
- ``http``: ``GET <url path>`` with ``Host`` = the URL's host (``reachwatch.net.http``), status in
  ``expect_status`` and, if set, ``expect_body`` in the first ``max_bytes`` of the body.

A CDN that stopped honouring fronting answers with its own error (421/403/404): that is
``http_unexpected_status_code``, not blocking; a reset after the ClientHello naming the front is the
censor's doing and reads as ``tls_handshake``/``connection_reset``.
"""

from __future__ import annotations

from pathlib import Path

from reachwatch.config.targets.fronting import FrontingTarget
from reachwatch.config.types import Url
from reachwatch.failures import Failure, Stage
from reachwatch.model import ProbeResult
from reachwatch.net.dial import connect_tcp, pin_address
from reachwatch.net.http import request
from reachwatch.net.tls import client_context, discard, tls_handshake
from reachwatch.probes.base import ProbeContext, ProbeSpec


async def probe(target: FrontingTarget, ctx: ProbeContext) -> ProbeResult:
    url = Url.parse(target.url)
    ctx.public_fact("front", target.front)  # names the private target's CDN: identifying
    with ctx.stage(Stage.RESOLVE):
        ip = await pin_address(target.address or target.front)
    ctx.public_fact("ip", ip)
    with ctx.stage(Stage.CONNECT):
        reader, writer = await connect_tcp(ip, target.port)
    try:
        ca_file = Path(ctx.base_dir, target.ca_file) if target.ca_file else None
        with ctx.stage(Stage.TLS_HANDSHAKE):
            session = await tls_handshake(reader, writer, target.front, client_context(ca_file=ca_file))
        ctx.fact("tls_version", session.version)
        with ctx.stage(Stage.HTTP):
            response = await request(session.reader, session.writer, "GET", url, max_bytes=target.max_bytes)
    finally:
        discard(writer)
    ctx.fact("status_code", response.status)
    if response.status not in target.expect_status:
        return ctx.fail(Failure.HTTP_UNEXPECTED_STATUS_CODE, Stage.HTTP)
    if target.expect_body is not None and target.expect_body.encode() not in response.body:
        return ctx.fail(Failure.HTTP_INVALID_RESPONSE, Stage.HTTP)
    return ctx.succeed()


SPEC = ProbeSpec(
    kind="fronting",
    target_model=FrontingTarget,
    probe=probe,
    description="domain-fronted HTTPS (meek, Snowflake broker): SNI = front, Host = real service",
)
