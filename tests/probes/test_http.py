"""The http/https probes against a real aiohttp server on 127.0.0.1: status, size, block pages, TLS."""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from aiohttp import web

from reachwatch.config.targets.http import HttpsTarget, HttpTarget
from reachwatch.failures import Failure, Stage, Technique
from tests.probes.util import run
from tests.servers import free_port, http_app, rogue_ca, server_context

BLOCKPAGE = b"<html><h1>Access to this resource is restricted</h1> by decision of the authorities</html>"


def site() -> web.Application:
    async def ok(request: web.Request) -> web.Response:
        assert request.headers["Host"].startswith("site.test")
        return web.Response(body=b"hello, world")

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=b"x" * 300_000)

    async def blocked(_: web.Request) -> web.Response:
        return web.Response(body=BLOCKPAGE)

    async def redirect(_: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "http://blockpage.test/?restricted=1"})

    app = web.Application()
    app.router.add_get("/ok", ok)
    app.router.add_get("/big", big)
    app.router.add_get("/blocked", blocked)
    app.router.add_get("/redirect", redirect)
    return app


def target(port: int, path: str, **extra: object) -> dict[str, object]:
    return {"kind": "http", "url": f"http://site.test:{port}{path}", "address": "127.0.0.1", **extra}


async def test_plain_get_reports_status_size_and_stage_timings() -> None:
    async with http_app(site()) as port:
        result = await run(target(port, "/ok"))
    assert result.success, result
    assert result.facts["status"] == 200
    assert result.facts["body_bytes"] == len(b"hello, world")
    assert result.facts["truncated"] is False
    assert 0 < float(result.facts["time_to_first_byte_s"]) <= result.stage_durations["http"]
    assert set(result.stage_durations) == {"resolve", "connect", "http"}


async def test_body_is_read_only_up_to_max_bytes() -> None:
    async with http_app(site()) as port:
        result = await run(target(port, "/big", max_bytes=4096))
    assert result.success
    assert result.facts["body_bytes"] == 4096
    assert result.facts["truncated"] is True
    assert int(result.facts["received_bytes"]) < 4096 + 2 * 16 * 1024  # one read chunk of slack


async def test_unexpected_status_is_reported_with_the_status() -> None:
    async with http_app(site()) as port:
        missing = await run(target(port, "/nothing-here"))
        accepted = await run(target(port, "/nothing-here", expected_status=[404]))
    assert (missing.failure, missing.stage) == (Failure.HTTP_UNEXPECTED_STATUS_CODE, Stage.HTTP)
    assert missing.facts["status"] == 404
    assert accepted.success


async def test_blockpage_pattern_in_body_is_blockpage_evidence() -> None:
    async with http_app(site()) as port:
        result = await run(target(port, "/blocked", blockpage_patterns=["(?i)access .* is restricted"]))
        clean = await run(target(port, "/ok", blockpage_patterns=["(?i)access .* is restricted"]))
    assert (result.failure, result.stage) == (Failure.HTTP_BLOCKPAGE, Stage.HTTP)
    assert result.evidence is Technique.HTTP_BLOCKPAGE
    assert clean.success


async def test_redirect_to_a_blockpage_host_is_blockpage_evidence() -> None:
    async with http_app(site()) as port:
        result = await run(target(port, "/redirect", blockpage_patterns=[r"blockpage\.test"]))
    assert result.failure is Failure.HTTP_BLOCKPAGE
    assert result.facts["status"] == 302


async def test_closed_port_is_connection_refused_at_connect() -> None:
    result = await run(target(free_port(), "/ok"))
    assert (result.failure, result.stage) == (Failure.CONNECTION_REFUSED, Stage.CONNECT)


async def test_https_get_with_verified_certificate(ca: trustme.CA, ca_file: Path) -> None:
    async with http_app(site(), ssl_ctx=server_context(ca, "site.test")) as port:
        result = await run(
            {
                "kind": "https",
                "url": f"https://site.test:{port}/ok",
                "address": "127.0.0.1",
                "ca_file": str(ca_file),
            }
        )
    assert result.success, result
    assert set(result.stage_durations) == {"resolve", "connect", "tls_handshake", "http"}


async def test_https_through_a_national_root_names_the_issuer(ca_file: Path) -> None:
    kz = rogue_ca("KZ", "ISCA", "Information Security Certification Authority")
    async with http_app(site(), ssl_ctx=server_context(kz, "site.test")) as port:
        result = await run(
            {
                "kind": "https",
                "url": f"https://site.test:{port}/ok",
                "address": "127.0.0.1",
                "ca_file": str(ca_file),
            }
        )
    assert (result.failure, result.stage) == (Failure.SSL_UNKNOWN_AUTHORITY, Stage.TLS_HANDSHAKE)
    assert result.facts["tls_issuer"] == "CN=Information Security Certification Authority,O=ISCA,C=KZ"
    assert result.evidence is Technique.TLS_INTERCEPTION


def test_targets_name_every_identifying_value() -> None:
    http = HttpTarget.model_validate(
        {"name": "a", "kind": "http", "url": "http://secret.test:8080/x", "address": "192.0.2.7"}
    )
    https = HttpsTarget.model_validate(
        {"name": "b", "kind": "https", "url": "https://secret.test/x", "server_name": "front.test"}
    )
    assert http.destination() == "192.0.2.7:8080"
    assert {"secret.test", "192.0.2.7"} <= set(http.sensitive_values())
    assert {"secret.test", "front.test"} <= set(https.sensitive_values())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"kind": "http", "url": "https://x.test/"}, "kind https"),
        ({"kind": "https", "url": "http://x.test/"}, "https://"),
        ({"kind": "http", "url": "http://x.test/", "blockpage_patterns": ["("]}, "invalid regular"),
        # found at load, not as a crash logged with the value at every attempt
        ({"kind": "http", "url": "http://x.test/", "headers": {"X-Token": "a\nb"}}, "header X-Token"),
        ({"kind": "http", "url": "http://x.test/", "headers": {"Bad Name": "v"}}, "header name"),
    ],
)
def test_invalid_targets_are_refused_with_a_reason(data: dict[str, object], message: str) -> None:
    model = HttpsTarget if data["kind"] == "https" else HttpTarget
    with pytest.raises(ValueError, match=message):
        model.model_validate({"name": "x", **data})
