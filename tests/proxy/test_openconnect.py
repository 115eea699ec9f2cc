"""The openconnect probe against a real ocserv (Debian's 1.1.6) with a trustme certificate on loopback."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from cryptography import x509

from reachwatch.failures import Failure, Stage
from reachwatch.net.tls import spki_sha256
from tests.probes.util import run
from tests.proxy.conftest import ocserv, secret_file
from tests.servers import LOOPBACK, http_app

# ocserv refuses to start without root ("This server requires root access to operate")
pytestmark = [pytest.mark.slow, pytest.mark.root]


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, str]]:
    """(port, CA file, SPKI pin of the server certificate); one ocserv for the module (it takes ~1 s to
    shut down cleanly)."""
    tmp_path = tmp_path_factory.mktemp("ocserv")
    cert = ca.issue_cert("vpn.example.test", LOOPBACK)
    cert_pem, key_pem, ca_pem = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert_pem.write_bytes(b"".join(b.bytes() for b in cert.cert_chain_pems))
    key_pem.write_bytes(cert.private_key_pem.bytes())
    ca.cert_pem.write_to_path(str(ca_pem))
    pin = spki_sha256(x509.load_pem_x509_certificate(cert.cert_chain_pems[0].bytes()))
    with ocserv(tmp_path, cert_pem, key_pem) as port:
        yield port, ca_pem, pin


def target(port: int, **extra: object) -> dict[str, object]:
    return {"kind": "openconnect", "host": LOOPBACK, "port": port, **extra}


async def test_init_exchange_gets_auth_request_form_from_ocserv(server: tuple[int, Path, str]) -> None:
    port, ca_pem, _ = server
    result = await run(target(port, ca_file=str(ca_pem), server_name="vpn.example.test"))
    assert result.success, result
    assert result.facts["http_status"] == 200
    assert result.facts["auth_form_fields"] == ["username"]
    assert set(result.stage_durations) >= {"connect", "tls_handshake", "protocol_handshake"}


async def test_self_signed_server_with_spki_pin_and_no_verification(server: tuple[int, Path, str]) -> None:
    port, _, pin = server
    result = await run(target(port, verify=False, spki_sha256=[pin]))
    assert result.success, result


async def test_unknown_issuer_fails_at_tls_handshake(server: tuple[int, Path, str]) -> None:
    port, _, _ = server
    result = await run(target(port, server_name="vpn.example.test"))  # system roots do not know trustme
    assert (result.failure, result.stage) == (Failure.SSL_UNKNOWN_AUTHORITY, Stage.TLS_HANDSHAKE)


async def test_camouflage_secret_goes_into_the_url(server: tuple[int, Path, str], tmp_path: Path) -> None:
    # ocserv 1.1.6 has no camouflage mode and 404s any URL but its own: a secret in the URL therefore
    # turns the form into a 404, which proves the probe sent it (and how a wrong secret is reported)
    port, ca_pem, _ = server
    secret = secret_file(tmp_path, "camo", "s3cret\n")
    result = await run(target(port, ca_file=str(ca_pem), camouflage_secret_file=str(secret)))
    assert (result.failure, result.stage) == (Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)
    assert result.facts["http_status"] == 404


async def test_ordinary_https_site_is_not_an_openconnect_server(ca: trustme.CA) -> None:
    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<html><form><input name='q'></form></html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/", page)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(LOOPBACK).configure_cert(ctx)
    async with http_app(app, ssl_ctx=ctx) as port:
        result = await run(target(port, verify=False))
    assert (result.failure, result.stage) == (Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE)
    assert result.facts["http_status"] == 200


async def test_login_with_probe_account_completes(server: tuple[int, Path, str], tmp_path: Path) -> None:
    port, ca_pem, _ = server
    pw = secret_file(tmp_path, "oc.pass", "pw\n")  # the ocpasswd account made by the fixture
    result = await run(target(port, ca_file=str(ca_pem), username="probe", password_file=str(pw)))
    assert result.success, result
    assert result.facts["login"] == "ok"


async def test_refused_password_is_auth_failed(server: tuple[int, Path, str], tmp_path: Path) -> None:
    port, ca_pem, _ = server
    pw = secret_file(tmp_path, "oc.pass", "not-the-password")
    result = await run(target(port, ca_file=str(ca_pem), username="probe", password_file=str(pw)))
    assert (result.failure, result.stage) == (Failure.AUTH_FAILED, Stage.PROTOCOL_HANDSHAKE)
    assert "login" not in result.facts
