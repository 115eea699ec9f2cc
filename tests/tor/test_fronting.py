"""The fronting probe against a real local TLS server that checks what a CDN checks: the SNI (front)
and the Host header (real service) of the request, and that they differ."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme

from reachwatch.config.targets.fronting import FrontingTarget
from reachwatch.failures import Failure, Stage
from reachwatch.model import ProbeResult
from reachwatch.probes.base import ProbeContext, run_probe
from reachwatch.probes.fronting import SPEC

FRONT = "front.example"
REAL = "broker.real.example"


@dataclass
class Cdn:
    port: int
    ca_file: Path
    honours_fronting: bool = True
    seen: list[tuple[str | None, str | None]] = field(default_factory=list)  # (SNI, Host) per request


@pytest.fixture
async def cdn(tmp_path: Path) -> AsyncIterator[Cdn]:
    ca = trustme.CA()
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(FRONT).configure_cert(ctx)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    state = Cdn(port=0, ca_file=ca_file)
    sni_by_obj: dict[int, str | None] = {}

    def on_sni(sslobj: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sni_by_obj[id(sslobj)] = name

    ctx.sni_callback = on_sni  # type: ignore[assignment]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        sni = sni_by_obj.get(id(writer.get_extra_info("ssl_object")))
        host = next(
            (
                ln.split(b":", 1)[1].strip().decode()
                for ln in head.split(b"\r\n")
                if ln.lower().startswith(b"host:")
            ),
            None,
        )
        state.seen.append((sni, host))
        if sni != host and state.honours_fronting and host == REAL:
            status, body = b"200 OK", b"snowflake broker ok"
        else:
            status, body = b"421 Misdirected Request", b"fronting refused"
        writer.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()
        await server.wait_closed()


async def front(
    cdn: Cdn, *, sni: str = FRONT, url: str = f"https://{REAL}/", private: bool = False, **extra: object
) -> ProbeResult:
    target = FrontingTarget.model_validate(
        {"name": "meek", "kind": "fronting", "url": url, "front": sni, "address": "127.0.0.1",
         "port": cdn.port, "ca_file": str(cdn.ca_file), "private": private, **extra}
    )  # fmt: skip
    return await run_probe(SPEC, target, ProbeContext("meek", "fronting", 5.0, private=private))


async def test_fronted_request_sends_front_as_sni_and_real_service_as_host(cdn: Cdn) -> None:
    result = await front(cdn, expect_body="broker ok")
    assert result.success, result
    assert cdn.seen == [(FRONT, REAL)]
    assert result.facts["status_code"] == 200 and result.facts["front"] == FRONT


async def test_cdn_refusing_fronting_is_unexpected_status_not_blocking(cdn: Cdn) -> None:
    cdn.honours_fronting = False
    result = await front(cdn)
    assert (result.failure, result.stage) == (Failure.HTTP_UNEXPECTED_STATUS_CODE, Stage.HTTP)
    assert result.facts["status_code"] == 421


async def test_front_certificate_is_verified_for_the_front_name(cdn: Cdn) -> None:
    result = await front(cdn, sni="other-front.example")
    assert (result.failure, result.stage) == (Failure.SSL_INVALID_HOSTNAME, Stage.TLS_HANDSHAKE)
    assert cdn.seen == []  # nothing was sent over a connection we could not authenticate


async def test_body_without_expected_marker_fails(cdn: Cdn) -> None:
    result = await front(cdn, expect_body="not in the answer")
    assert (result.failure, result.stage) == (Failure.HTTP_INVALID_RESPONSE, Stage.HTTP)


async def test_private_fronting_target_publishes_neither_front_nor_address(cdn: Cdn) -> None:
    result = await front(cdn, private=True)
    assert result.success, result
    assert cdn.seen == [(FRONT, REAL)]
    assert not any(FRONT in str(v) or "127.0.0.1" in str(v) for v in result.facts.values()), result.facts


def test_private_fronting_target_redacts_front_and_real_host_even_with_a_pinned_address() -> None:
    target = FrontingTarget.model_validate(
        {
            "name": "meek",
            "kind": "fronting",
            "url": f"https://{REAL}/x",
            "front": FRONT,
            "address": "192.0.2.7",
        }
    )
    assert {"192.0.2.7", FRONT, REAL} <= set(target.sensitive_values())
