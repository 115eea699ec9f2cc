"""Link-protocol cells and the CERTS checks, on a CERTS cell captured from a real tor relay.

Each tampering below is one a forger or a broken middlebox could produce; each must be refused with the
right outcome (malformed -> ``CertsMalformed``, not proof of this relay -> ``CertsMismatch``).
"""

from __future__ import annotations

import re
import socket
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from reachwatch.config.tor_identity import decode_ed25519_identity, normalize_fingerprint
from reachwatch.formats.tor_certs import (
    CertsMalformed,
    CertsMismatch,
    CertsNotBoundToTls,
    parse_certs_payload,
    verify_responder_certs,
)
from reachwatch.net.torlink import link_tls_context, random_sni, versions_cell
from tests.net.test_tls import sm2_certificate_der
from tests.tor.lonerelay import TorRelayProcess

pytestmark = pytest.mark.slow

Captured = tuple[bytes, dict[int, list[bytes]]]


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "relay closed early"
        data += chunk
    return data


@pytest.fixture(scope="module")
def captured(tor_relay_process: TorRelayProcess) -> Captured:
    """(DER of the relay's TLS certificate, its CERTS cell by type), read with a blocking socket."""
    ctx = link_tls_context()
    with (
        socket.create_connection(("127.0.0.1", tor_relay_process.or_port), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname="www.example.com") as tls,
    ):
        tls_der = tls.getpeercert(binary_form=True)
        assert tls_der
        tls.sendall(versions_cell())
        _, cmd, length = struct.unpack("!HBH", _recv_exactly(tls, 5))
        assert cmd == 7
        _recv_exactly(tls, length)
        while True:
            _, cmd = struct.unpack("!IB", _recv_exactly(tls, 5))
            if cmd >= 128:
                (length,) = struct.unpack("!H", _recv_exactly(tls, 2))
                payload = _recv_exactly(tls, length)
            else:
                payload = _recv_exactly(tls, 509)
            if cmd == 129:
                return tls_der, parse_certs_payload(payload)


def test_versions_cell_uses_two_byte_circid_and_offers_4_and_5() -> None:
    assert versions_cell() == bytes.fromhex("0000 07 0004 0004 0005")


def test_real_relay_certs_prove_its_fingerprint_and_ed25519_identity(
    captured: Captured, tor_relay_process: TorRelayProcess
) -> None:
    tls_der, certs = captured
    assert sorted(certs) == [1, 2, 4, 5, 7]  # what tor 0.4.x responders send
    identity = verify_responder_certs(certs, tls_der)
    assert identity.rsa_fingerprint == tor_relay_process.fingerprint
    assert tor_relay_process.ed25519_identity is not None
    assert identity.ed25519_identity == decode_ed25519_identity(tor_relay_process.ed25519_identity)


def test_rsa_only_responder_is_verified_through_the_type1_link_cert(captured: Captured) -> None:
    tls_der, certs = captured
    rsa_only = {t: v for t, v in certs.items() if t in (1, 2)}
    assert verify_responder_certs(rsa_only, tls_der).ed25519_identity is None


def test_rsa_only_mode_skips_the_ed25519_chain_only_when_the_link_cert_binds_the_identity(
    captured: Captured,
) -> None:
    tls_der, certs = captured
    identity = verify_responder_certs(certs, tls_der, ed25519=False)
    assert identity.ed25519_identity is None and identity.ed25519_present
    assert identity.rsa_fingerprint == verify_responder_certs(certs, tls_der).rsa_fingerprint
    # a broken Ed25519 chain goes unnoticed here (it is not what is asked) ...
    broken = {**certs, 5: [certs[5][0][:-1] + bytes([certs[5][0][-1] ^ 1])]}
    assert verify_responder_certs(broken, tls_der, ed25519=False).rsa_fingerprint == identity.rsa_fingerprint
    # ... but without a type-1 certificate the chain is the binding, and it is verified anyway
    without_type1 = {t: v for t, v in broken.items() if t != 1}
    with pytest.raises(CertsMismatch):
        verify_responder_certs(without_type1, tls_der, ed25519=False)


def test_ed25519_binding_alone_detects_another_tls_certificate(captured: Captured) -> None:
    _, certs = captured
    other_pem = trustme.CA().issue_cert("x.example").cert_chain_pems[0].bytes()
    other_der = x509.load_pem_x509_certificate(other_pem).public_bytes(Encoding.DER)
    without_type1 = {t: v for t, v in certs.items() if t != 1}
    with pytest.raises(CertsNotBoundToTls, match="type-5"):
        verify_responder_certs(without_type1, other_der)
    with pytest.raises(CertsNotBoundToTls, match="type-1"):
        verify_responder_certs(certs, other_der)


def _flip_last_byte(blob: bytes) -> bytes:
    return blob[:-1] + bytes([blob[-1] ^ 0x01])


@pytest.mark.parametrize("cert_type", [1, 4, 5, 7])
def test_a_forged_signature_is_identity_mismatch(captured: Captured, cert_type: int) -> None:
    tls_der, certs = captured
    forged = {**certs, cert_type: [_flip_last_byte(certs[cert_type][0])]}
    with pytest.raises(CertsMismatch) as info:
        verify_responder_certs(forged, tls_der)
    assert not isinstance(info.value, CertsNotBoundToTls)  # a forgery is not a TLS-binding problem


def test_missing_identity_certificate_is_malformed(captured: Captured) -> None:
    tls_der, certs = captured
    with pytest.raises(CertsMalformed, match="type 2"):
        verify_responder_certs({t: v for t, v in certs.items() if t != 2}, tls_der)


def test_duplicate_certificate_type_is_malformed(captured: Captured) -> None:
    tls_der, certs = captured
    with pytest.raises(CertsMalformed, match="more than one"):
        verify_responder_certs({**certs, 2: certs[2] * 2}, tls_der)


def test_partial_ed25519_set_is_malformed(captured: Captured) -> None:
    tls_der, certs = captured
    with pytest.raises(CertsMalformed, match="type 7"):
        verify_responder_certs({t: v for t, v in certs.items() if t != 7}, tls_der)


def test_certificates_far_outside_their_lifetime_are_malformed(captured: Captured) -> None:
    tls_der, certs = captured
    with pytest.raises(CertsMalformed, match=r"validity|expired"):
        verify_responder_certs(certs, tls_der, now=datetime.now(UTC) + timedelta(days=3 * 365))


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x01\x02", b"\x01\x02\x00\x10abc", b"\xff" + b"\x00" * 10],
    ids=["empty", "short-header", "truncated-body", "absurd-count"],
)
def test_truncated_or_absurd_certs_cells_are_malformed(payload: bytes) -> None:
    with pytest.raises(CertsMalformed):
        parse_certs_payload(payload)


def test_garbage_in_certificate_slots_is_malformed(captured: Captured) -> None:
    tls_der, certs = captured
    with pytest.raises(CertsMalformed):
        verify_responder_certs({**certs, 2: [b"not a certificate"]}, tls_der)
    with pytest.raises(CertsMalformed):
        verify_responder_certs({**certs, 4: [b"\x01\x04" + b"\x00" * 20]}, tls_der)


@pytest.mark.parametrize(
    "form",
    [
        "$7CDF18CD9CAFABF77E6592205A37BCB7CFA8C717",
        "7cdf18cd9cafabf77e6592205a37bcb7cfa8c717",
        "7CDF 18CD 9CAF ABF7 7E65 9220 5A37 BCB7 CFA8 C717",
        "$7CDF18CD9CAFABF77E6592205A37BCB7CFA8C717~nickname",
    ],
)
def test_fingerprint_forms_normalize_to_upper_hex(form: str) -> None:
    assert normalize_fingerprint(form) == "7CDF18CD9CAFABF77E6592205A37BCB7CFA8C717"


@pytest.mark.parametrize("bad", ["", "7CDF", "Z" * 40, "A" * 41])
def test_fingerprint_rejects_non_fingerprints(bad: str) -> None:
    with pytest.raises(ValueError, match="40 hex"):
        normalize_fingerprint(bad)


def test_certificate_with_a_key_type_we_cannot_load_is_malformed_not_a_crash(
    captured: Captured, tmp_path: Path
) -> None:
    """cryptography raises UnsupportedAlgorithm (not ValueError) for keys such as SM2: a hostile peer
    putting one in the CERTS cell must give tor_link_handshake_failed / identity mismatch, not a bug."""
    tls_der, certs = captured
    sm2_cert_der = sm2_certificate_der(tmp_path)
    with pytest.raises(CertsMalformed):
        verify_responder_certs({**certs, 2: [sm2_cert_der]}, tls_der)
    with pytest.raises(CertsMismatch):
        verify_responder_certs(certs, sm2_cert_der)


def test_random_sni_looks_like_tors_own() -> None:
    names = {random_sni() for _ in range(200)}
    assert all(re.fullmatch(r"www\.[a-z2-7]{4,25}\.com", name) for name in names), names
    lengths = {len(n) - len('www..com') for n in names}
    assert len(names) > 190 and min(lengths) < 8 and max(lengths) > 20
