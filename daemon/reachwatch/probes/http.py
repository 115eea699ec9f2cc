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
from typing import Literal

from pydantic import Field, field_validator

from reachwatch.config.types import TargetBase, host_port
from reachwatch.failures import Failure, Stage, Technique
from reachwatch.model import ProbeResult
from reachwatch.net.http import HttpExchange, Url
from reachwatch.net.tls import discard
from reachwatch.probes.base import ProbeContext, ProbeSpec, open_tcp
from reachwatch.probes.tls import TlsOptions, handshake_with_evidence

DEFAULT_MAX_BYTES = 64 * 1024
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field-name


class _HttpFields(TargetBase):
    """Fields shared by ``http`` and ``https`` targets.

    - ``url``: what to GET; its scheme must match the kind.
    - ``address``: connect to this IP instead of resolving the URL's host (the Host header and SNI still
      carry the URL's host).
    - ``expected_status``: accepted status codes; empty means any 2xx or 3xx.
    - ``blockpage_patterns``: regular expressions searched in the body (decoded as latin-1, so any byte
      matches) and in the ``Location`` header.
    - ``max_bytes``: read at most this much of the body, then stop (fact ``truncated``).
    - ``headers``: extra request headers.
    """

    url: str
    address: str | None = None
    expected_status: list[int] = Field(default_factory=list)
    blockpage_patterns: list[str] = Field(default_factory=list)
    max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=1, le=16 * 1024 * 1024)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("blockpage_patterns")
    @classmethod
    def _compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return patterns

    @field_validator("headers")
    @classmethod
    def _sendable(cls, headers: dict[str, str]) -> dict[str, str]:
        # what h11 would refuse when sending; refused here so it is a config error at load, not a
        # crash at every attempt whose log line quotes the value (often a token)
        for name, value in headers.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"header name {name!r} is not an HTTP token")
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name} has a line break or NUL in its value")
        return headers

    def parsed(self) -> Url:
        return Url.parse(self.url)

    def destination(self) -> str:
        url = self.parsed()
        host = self.address or url.host
        return host_port(host, url.port)

    def sensitive_values(self) -> list[str]:
        values = [self.url, self.parsed().host, self.address]
        return [v for v in values if v]


class HttpTarget(_HttpFields):
    """A plain-HTTP URL."""

    kind: Literal["http"]

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str) -> str:
        if Url.parse(url).scheme != "http":
            raise ValueError("an http target needs an http:// URL (use kind https for https://)")
        return url


class HttpsTarget(_HttpFields, TlsOptions):
    """An HTTPS URL; ``server_name`` overrides the SNI/verified name (default: the URL's host)."""

    kind: Literal["https"]
    server_name: str | None = None

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str) -> str:
        if Url.parse(url).scheme != "https":
            raise ValueError("an https target needs an https:// URL")
        return url

    def sensitive_values(self) -> list[str]:
        values = [*super().sensitive_values(), self.server_name, *self.spki_sha256, *self.cert_sha256]
        return [v for v in values if v]


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
