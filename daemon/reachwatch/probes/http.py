"""``http`` and ``https``: one GET of a URL from a pinned address, and is the answer the real site?

Stages: resolve -> connect -> (https: tls_handshake) -> http (request, time to first byte and the body up
to ``max_bytes``). Facts: ``status``, ``body_bytes``, ``truncated``, ``received_bytes`` (everything read
off the socket), ``time_to_first_byte_s``. One attempt, no redirects followed: a censor's redirect to
its block page is a result.

Success: a well-formed response whose status is in ``expected_status`` (default: any 2xx/3xx) and whose
body/``Location`` matches none of ``blockpage_patterns``. A match is ``http_blockpage`` with local evidence
``http_blockpage``; garbage instead of HTTP is ``http_invalid_response``. TLS failures of ``https`` carry
the same issuer facts and interception evidence as the ``tls`` probe.
"""

from __future__ import annotations

import re
import time

from reachwatch.config.targets.http import HttpsTarget, HttpTarget
from reachwatch.failures import Failure, Stage, Technique
from reachwatch.model import ProbeResult
from reachwatch.net.http import HttpExchange
from reachwatch.net.tls import discard
from reachwatch.probes.base import ProbeContext, ProbeSpec, open_tcp
from reachwatch.probes.tls import handshake_with_evidence


def status_ok(status: int, expected: list[int]) -> bool:
    """Whether ``status`` is acceptable: one of ``expected``, or any 2xx/3xx when none are listed."""
    return status in expected if expected else 200 <= status < 400


def find_blockpage(patterns: list[str], body: bytes, location: str | None) -> bool:
    """Whether any pattern matches the body or the redirect target (block pages are often a redirect)."""
    text = body.decode("latin-1")
    return any(re.search(p, text) or (location and re.search(p, location)) for p in patterns)


async def probe(target: HttpTarget | HttpsTarget, ctx: ProbeContext) -> ProbeResult:
    url = target.parsed()
    ip, reader, writer = await open_tcp(ctx, url.host, url.port, address=target.address)
    exchange = HttpExchange(reader, writer)
    try:
        if isinstance(target, HttpsTarget):
            with ctx.stage(Stage.TLS_HANDSHAKE):
                sni = target.server_name or url.host  # an IP: verified against IP SANs, no SNI sent
                await handshake_with_evidence(
                    ctx,
                    reader,
                    writer,
                    ip=ip,
                    port=url.port,
                    server_name=sni,
                    opts=target,
                    alpn=("http/1.1",),
                )
        with ctx.stage(Stage.HTTP):
            sent_at = time.monotonic()
            await exchange.send_request("GET", url, headers=list(target.headers.items()))
            response = await exchange.fetch(target.max_bytes)
        if exchange.first_byte_at is not None:
            ctx.fact("time_to_first_byte_s", round(exchange.first_byte_at - sent_at, 6))
    finally:
        ctx.fact("received_bytes", exchange.received)
        discard(writer)
    ctx.fact("status", response.status)
    ctx.fact("body_bytes", len(response.body))
    ctx.fact("truncated", response.truncated)
    if find_blockpage(target.blockpage_patterns, response.body, response.header("location")):
        return ctx.fail(Failure.HTTP_BLOCKPAGE, Stage.HTTP, evidence=Technique.HTTP_BLOCKPAGE)
    if not status_ok(response.status, target.expected_status):
        return ctx.fail(Failure.HTTP_UNEXPECTED_STATUS_CODE, Stage.HTTP)
    return ctx.succeed()


SPEC = ProbeSpec(kind="http", target_model=HttpTarget, probe=probe, description="HTTP GET of a URL")
HTTPS_SPEC = ProbeSpec(
    kind="https", target_model=HttpsTarget, probe=probe, description="HTTPS GET of a URL (verified TLS)"
)
