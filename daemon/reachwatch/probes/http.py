"""``http`` and ``https``: one GET of a URL from a pinned address, and is the answer the real site?

Stages: resolve -> connect -> (https: tls_handshake) -> http (request, time to first byte and the body up
to ``max_bytes``). Facts: ``status``, ``body_bytes``, ``truncated``, ``received_bytes`` (everything read
off the socket), ``time_to_first_byte_s``. One attempt, no redirects followed: a censor's redirect to
its block page is a result.

Success: a well-formed response whose status is in ``expected_status`` (default: any 2xx/3xx) and whose
body/``Location`` is no block page. The body is decoded as a browser would (``formats.blockpage``: header
charset, ``<meta>``, UTF-8, detection; fact ``charset``); ``blockpage_patterns`` match it
case-insensitively, and so does the built-in fingerprint set (Russian and Kazakh ISPs, filtering
vendors; facts ``blockpage``, ``blockpage_set``), including a redirect to a censor's host. Either is
``http_blockpage`` with local evidence ``http_blockpage``. A page that only carries block-page words
records ``blockpage_markers``: with ``title`` and ``simhash`` the verdict engine compares it with what a
reference vantage fetched. Garbage instead of HTTP is ``http_invalid_response``. TLS failures of
``https`` carry the same issuer facts and interception evidence as the ``tls`` probe.
"""

from __future__ import annotations

import time

from reachwatch.config.targets.http import HttpsTarget, HttpTarget
from reachwatch.failures import Failure, Stage, Technique
from reachwatch.formats import blockpage
from reachwatch.model import ProbeResult
from reachwatch.net.http import HttpExchange
from reachwatch.net.tls import discard
from reachwatch.probes.base import ProbeContext, ProbeSpec, open_tcp
from reachwatch.probes.tls import handshake_with_evidence


def status_ok(status: int, expected: list[int]) -> bool:
    """Whether ``status`` is acceptable: one of ``expected``, or any 2xx/3xx when none are listed."""
    return status in expected if expected else 200 <= status < 400


def judge_page(
    ctx: ProbeContext, patterns: list[str], body: bytes, content_type: str | None, location: str | None
) -> bool:
    """Record the page's comparable facts; True when it is a block page (operator pattern or built-in)."""
    text, charset = blockpage.decode_body(body, content_type)
    ctx.fact("charset", charset)
    page_title = blockpage.title(text)
    if page_title:
        ctx.public_fact("title", page_title)  # a private site's title identifies it
    ctx.public_fact("simhash", blockpage.simhash(text))
    if patterns and blockpage.matches(blockpage.compile_patterns(patterns), text, location):
        ctx.fact("blockpage", "operator_pattern")
        return True
    found = blockpage.find_fingerprint(text, location)
    if found is not None:
        ctx.fact("blockpage", found.name)
        ctx.fact("blockpage_set", blockpage.FINGERPRINT_SET)
        return True
    if blockpage.has_markers(text, location):
        ctx.fact("blockpage_markers", True)
    return False


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
            fetched = False
            try:
                response = await exchange.fetch(target.max_bytes)
                fetched = True
            finally:
                if not fetched and exchange.first_byte_at is not None:
                    # the answer had started and died (reset, early close, or frozen until the deadline):
                    # a flow cut after data, with its cut point (CONTRACTS.md)
                    ctx.fact("bytes_moved", exchange.received)
                    ctx.fact("cut_after_bytes", exchange.received)
                    ctx.fact("cut_after_s", round(time.monotonic() - sent_at, 6))
        ctx.fact("bytes_moved", exchange.received)
        if exchange.first_byte_at is not None:
            ctx.fact("time_to_first_byte_s", round(exchange.first_byte_at - sent_at, 6))
    finally:
        ctx.fact("received_bytes", exchange.received)
        discard(writer)
    ctx.fact("status", response.status)
    ctx.fact("body_bytes", len(response.body))
    ctx.fact("truncated", response.truncated)
    page = (response.body, response.header("content-type"), response.header("location"))
    if judge_page(ctx, target.blockpage_patterns, *page):
        return ctx.fail(Failure.HTTP_BLOCKPAGE, Stage.HTTP, evidence=Technique.HTTP_BLOCKPAGE)
    if not status_ok(response.status, target.expected_status):
        return ctx.fail(Failure.HTTP_UNEXPECTED_STATUS_CODE, Stage.HTTP)
    return ctx.succeed()


SPEC = ProbeSpec(kind="http", target_model=HttpTarget, probe=probe, description="HTTP GET of a URL")
HTTPS_SPEC = ProbeSpec(
    kind="https", target_model=HttpsTarget, probe=probe, description="HTTPS GET of a URL (verified TLS)"
)
