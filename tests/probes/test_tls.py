"""The tls probe against real TLS servers on 127.0.0.1: validation, issuer naming, pins, SNI blocking."""

from __future__ import annotations

import datetime
import ssl
import time
from pathlib import Path

import trustme
from cryptography import x509
from cryptography.hazmat.primitives import hashes

from reachwatch.failures import Failure, Stage, Technique
from reachwatch.net.tls import spki_sha256
from tests.probes.util import run
from tests.servers import (
    blackhole,
    free_port,
    hold_open,
    reset,
    rogue_ca,
    server_context,
    sni_filter,
    tcp_server,
)

KZ_ROOT = "CN=Information Security Certification Authority,O=ISCA,C=KZ"


def tls_target(port: int, ca_file: Path, **extra: object) -> dict[str, object]:
    return {
        "kind": "tls",
        "host": "127.0.0.1",
        "port": port,
        "server_name": "good.test",
        "ca_file": str(ca_file),
        **extra,
    }


async def test_valid_chain_for_the_sni_name_is_reachable(ca: trustme.CA, ca_file: Path) -> None:
    async with tcp_server(hold_open, ssl_ctx=server_context(ca, "good.test")) as port:
        result = await run(tls_target(port, ca_file))
    assert result.success, result
    assert result.facts["tls_version"] in {"TLSv1.2", "TLSv1.3"}
    assert set(result.stage_durations) == {"resolve", "connect", "tls_handshake"}


async def test_national_root_is_named_and_marked_as_interception(ca_file: Path) -> None:
    kz = rogue_ca("KZ", "ISCA", "Information Security Certification Authority")
    async with tcp_server(hold_open, ssl_ctx=server_context(kz, "good.test")) as port:
        result = await run(tls_target(port, ca_file))
    assert (result.failure, result.stage) == (Failure.SSL_UNKNOWN_AUTHORITY, Stage.TLS_HANDSHAKE)
    assert result.facts["tls_issuer"] == KZ_ROOT
    assert result.evidence is Technique.TLS_INTERCEPTION


async def test_national_root_is_named_even_for_a_private_target(ca_file: Path) -> None:
    kz = rogue_ca("KZ", "ISCA", "Information Security Certification Authority")
    async with tcp_server(hold_open, ssl_ctx=server_context(kz, "good.test")) as port:
        result = await run(tls_target(port, ca_file, private=True))
    assert result.facts["tls_issuer"] == KZ_ROOT
    assert "ip" not in result.facts and "tls_leaf_issuer" not in result.facts


async def test_unknown_ordinary_authority_is_named_without_evidence(ca_file: Path) -> None:
    other = rogue_ca("DE", "Some Company", "Some Company Root")
    async with tcp_server(hold_open, ssl_ctx=server_context(other, "good.test")) as port:
        public = await run(tls_target(port, ca_file))
        private = await run(tls_target(port, ca_file, private=True))
    assert public.failure is Failure.SSL_UNKNOWN_AUTHORITY
    assert public.facts["tls_issuer"] == "CN=Some Company Root,O=Some Company,C=DE"
    assert public.evidence is None
    assert private.failure is Failure.SSL_UNKNOWN_AUTHORITY
    assert "tls_issuer" not in private.facts  # a private CA's name identifies the target


async def test_hostname_mismatch_is_invalid_hostname(ca: trustme.CA, ca_file: Path) -> None:
    async with tcp_server(hold_open, ssl_ctx=server_context(ca, "other.test")) as port:
        result = await run(tls_target(port, ca_file))
    assert (result.failure, result.stage) == (Failure.SSL_INVALID_HOSTNAME, Stage.TLS_HANDSHAKE)
    assert result.evidence is None


async def test_spki_pin_mismatch_on_a_valid_chain_is_interception(ca: trustme.CA, ca_file: Path) -> None:
    wrong_pin = spki_sha256(x509.load_pem_x509_certificate(trustme.CA().cert_pem.bytes()))
    async with tcp_server(hold_open, ssl_ctx=server_context(ca, "good.test")) as port:
        result = await run(tls_target(port, ca_file, spki_sha256=[wrong_pin]))
    assert (result.failure, result.stage) == (Failure.SSL_PIN_MISMATCH, Stage.TLS_HANDSHAKE)
    assert result.evidence is Technique.TLS_INTERCEPTION
    assert "tls_issuer" in result.facts


async def test_matching_ca_pin_passes_and_unverified_leaf_pin_accepts_self_issued(
    ca: trustme.CA, ca_file: Path
) -> None:
    ca_pin = spki_sha256(x509.load_pem_x509_certificate(ca.cert_pem.bytes()))
    leaf = ca.issue_cert("good.test")
    leaf_fp = x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).fingerprint(hashes.SHA256())
    async with tcp_server(hold_open, ssl_ctx=server_context(ca, "good.test")) as port:
        pinned = await run(tls_target(port, ca_file, spki_sha256=[f"sha256/{ca_pin}"]))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(ctx)
    async with tcp_server(hold_open, ssl_ctx=ctx) as port:
        unverified = await run(
            {
                "kind": "tls",
                "host": "127.0.0.1",
                "port": port,
                "verify": False,
                "cert_sha256": [leaf_fp.hex()],
            }
        )
        wrong = await run(
            {"kind": "tls", "host": "127.0.0.1", "port": port, "verify": False, "cert_sha256": ["00" * 32]}
        )
    assert pinned.success, pinned
    assert unverified.success, unverified
    assert wrong.failure is Failure.SSL_PIN_MISMATCH


async def test_blackhole_after_connect_times_out_in_tls_handshake_within_deadline(ca_file: Path) -> None:
    async with tcp_server(blackhole) as port:
        start = time.monotonic()
        result = await run(tls_target(port, ca_file), timeout=1.0)
        elapsed = time.monotonic() - start
    assert (result.failure, result.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.TLS_HANDSHAKE)
    assert elapsed < 1.0 + 0.5


async def test_reset_after_client_hello_is_connection_reset_in_tls_handshake(ca_file: Path) -> None:
    async with tcp_server(reset) as port:
        result = await run(tls_target(port, ca_file))
    assert (result.failure, result.stage) == (Failure.CONNECTION_RESET, Stage.TLS_HANDSHAKE)


async def test_closed_port_is_connection_refused_at_connect(ca_file: Path) -> None:
    result = await run(tls_target(free_port(), ca_file))
    assert (result.failure, result.stage) == (Failure.CONNECTION_REFUSED, Stage.CONNECT)


async def test_sni_triggered_drop_is_tls_interference_when_neutral_sni_completes(
    ca: trustme.CA, ca_file: Path
) -> None:
    async with (
        tcp_server(hold_open, ssl_ctx=server_context(ca, "good.test", "neutral.test")) as backend,
        sni_filter(backend, "good.test") as port,
    ):
        result = await run(tls_target(port, ca_file, neutral_sni="neutral.test"), timeout=2.0)
        control = await run(tls_target(port, ca_file, server_name="neutral.test"), timeout=2.0)
    assert control.success, control  # the filter lets other names through
    assert (result.failure, result.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.TLS_HANDSHAKE)
    assert result.evidence is Technique.TLS_INTERFERENCE
    assert result.facts["neutral_sni_handshake"] is True


async def test_address_wide_drop_is_not_blamed_on_the_sni(ca_file: Path) -> None:
    async with tcp_server(blackhole) as port:
        result = await run(tls_target(port, ca_file, neutral_sni="neutral.test"), timeout=2.0)
    assert (result.failure, result.stage) == (Failure.GENERIC_TIMEOUT_ERROR, Stage.TLS_HANDSHAKE)
    assert result.evidence is None
    assert result.facts["neutral_sni_handshake"] is False


async def test_ip_literal_host_is_verified_against_the_certificate_ip(ca: trustme.CA, ca_file: Path) -> None:
    async with tcp_server(hold_open, ssl_ctx=server_context(ca, "127.0.0.1")) as port:
        matching = await run({"kind": "tls", "host": "127.0.0.1", "port": port, "ca_file": str(ca_file)})
    async with tcp_server(hold_open, ssl_ctx=server_context(ca, "127.0.0.2")) as port:
        other_ip = await run({"kind": "tls", "host": "127.0.0.1", "port": port, "ca_file": str(ca_file)})
    assert matching.success, matching
    assert (other_ip.failure, other_ip.stage) == (Failure.SSL_INVALID_HOSTNAME, Stage.TLS_HANDSHAKE)


async def test_expired_certificate_is_invalid_certificate(ca: trustme.CA, ca_file: Path) -> None:
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=10)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("good.test", not_before=past, not_after=past + datetime.timedelta(days=1)).configure_cert(
        ctx
    )
    async with tcp_server(hold_open, ssl_ctx=ctx) as port:
        result = await run(tls_target(port, ca_file))
    assert (result.failure, result.stage) == (Failure.SSL_INVALID_CERTIFICATE, Stage.TLS_HANDSHAKE)
    assert result.evidence is None
