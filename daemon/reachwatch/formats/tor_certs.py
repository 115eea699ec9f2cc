"""Checking a relay's identity from the certificates of its Tor link handshake (no sockets here).

The responder's CERTS cell (tor-spec section 4.2, cert-spec) binds the TLS connection to the relay's
long-term identity:

* RSA: the type-2 certificate is the self-signed RSA1024 identity; the relay's fingerprint is the SHA-1 of
  that key's PKCS#1 ``RSAPublicKey`` DER (dir-spec). The type-1 link certificate is signed by the
  identity key and certifies the key of the TLS certificate the relay presented.
* Ed25519: type 4 (identity -> signing key, identity key in extension 04), type 5 (signing key ->
  SHA-256 of the TLS certificate) and type 7 (the RSA identity cross-certifying the Ed25519 identity).

Why the TLS binding matters: a middlebox that terminates TLS and relays the real relay's CERTS cell
presents its own TLS certificate, so the type-1/type-5 binding fails even though every signature is
genuine. That is ``tor_identity_mismatch``, never "reachable".

Outcomes: ``CertsMalformed`` (not a well-formed CERTS cell: the peer does not speak Tor's link protocol
correctly) and ``CertsMismatch`` (well-formed, but not proof of the relay we asked for), with its
subclass ``CertsNotBoundToTls`` for validly signed certificates bound to another TLS certificate.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

if TYPE_CHECKING:  # cryptography 40+; at run time bookworm's 38 must do (deploy/debian-python.txt)
    from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

CERT_LINK = 1
CERT_RSA_IDENTITY = 2
CERT_RSA_AUTH = 3
CERT_ED_SIGNING = 4
CERT_ED_TLS_LINK = 5
CERT_ED_AUTH = 6
CERT_RSA_ED_CROSS = 7

_EXT_SIGNED_WITH_ED25519_KEY = 4
_EXT_FLAG_AFFECTS_VALIDATION = 1
_CROSSCERT_PREFIX = b"Tor TLS RSA/Ed25519 cross-certificate"
# tor's own tolerance for certificate lifetimes (x509.h TOR_X509_PAST_SLOP / FUTURE_SLOP): a vantage
# with a slightly wrong clock must not turn every relay into a failure.
_PAST_SLOP = timedelta(days=2)
_FUTURE_SLOP = timedelta(days=30)
_MAX_CERTS = 16


class CertsMalformed(Exception):
    """The CERTS cell is not well formed or lacks the certificates the spec requires."""


class CertsMismatch(Exception):
    """Well-formed certificates that do not prove the expected identity on this TLS connection."""


class CertsNotBoundToTls(CertsMismatch):
    """Genuinely signed certificates that certify *another* TLS certificate than the one presented.

    What a TLS-terminating middlebox that relays the real relay's CERTS cell looks like: the signatures
    check out, only the binding to our TLS connection does not.
    """


@dataclass(frozen=True)
class LinkIdentity:
    """What the responder proved on this connection."""

    rsa_fingerprint: str  # 40 upper-case hex digits
    ed25519_identity: bytes | None  # 32 bytes when the Ed25519 certificates were present and valid
    ed25519_present: bool = False  # the CERTS cell carried Ed25519 certificates (checked or not)


def parse_certs_payload(payload: bytes) -> dict[int, list[bytes]]:
    """Split a CERTS cell body (N, then N x [type, length, body]) into certificate bodies by type."""
    if not payload:
        raise CertsMalformed("empty CERTS cell")
    count = payload[0]
    if count > _MAX_CERTS:
        raise CertsMalformed(f"CERTS cell claims {count} certificates")
    out: dict[int, list[bytes]] = {}
    pos = 1
    for _ in range(count):
        if pos + 3 > len(payload):
            raise CertsMalformed("truncated CERTS entry header")
        ctype, clen = payload[pos], struct.unpack_from("!H", payload, pos + 1)[0]
        pos += 3
        if pos + clen > len(payload):
            raise CertsMalformed("truncated CERTS entry")
        out.setdefault(ctype, []).append(payload[pos : pos + clen])
        pos += clen
    return out


def rsa_fingerprint(key: rsa.RSAPublicKey) -> str:
    """SHA-1 of the PKCS#1 DER encoding of the public key: how tor names a relay."""
    der = key.public_bytes(Encoding.DER, PublicFormat.PKCS1)
    return hashlib.sha1(der).hexdigest().upper()  # noqa: S324 (an identifier, not a security choice)


def _one(certs: dict[int, list[bytes]], ctype: int, *, required: bool) -> bytes | None:
    found = certs.get(ctype, [])
    if len(found) > 1:
        raise CertsMalformed(f"more than one certificate of type {ctype}")
    if not found and required:
        raise CertsMalformed(f"no certificate of type {ctype}")
    return found[0] if found else None


def _x509(der: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_der_x509_certificate(der)
    except ValueError:
        raise CertsMalformed(f"{what} is not an X.509 certificate") from None


def _public_key(cert: x509.Certificate, what: str) -> CertificatePublicKeyTypes:
    try:
        return cert.public_key()
    except (ValueError, UnsupportedAlgorithm):  # SM2, GOST...: a peer's choice, not our bug
        raise CertsMalformed(f"{what} has a key type that cannot be loaded") from None


def _check_lifetime(not_before: datetime, not_after: datetime, now: datetime, what: str) -> None:
    if now + _PAST_SLOP < not_before or now - _PAST_SLOP > not_after:
        raise CertsMalformed(f"{what} is outside its validity period")


def _rsa_verify_x509(cert: x509.Certificate, key: rsa.RSAPublicKey) -> bool:
    algorithm = cert.signature_hash_algorithm
    if algorithm is None:
        return False
    try:
        key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), algorithm)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class _EdCert:
    cert_type: int
    expires: datetime
    key_type: int
    certified_key: bytes
    signed_with: bytes | None
    signed_part: bytes
    signature: bytes


def _parse_ed_cert(body: bytes, what: str) -> _EdCert:
    """cert-spec section 2.1: VERSION, TYPE, EXPIRATION (hours), KEY_TYPE, KEY(32), N_EXT, EXTs, SIG(64)."""
    if len(body) < 40 + 64 or body[0] != 1:
        raise CertsMalformed(f"{what} is not a version-1 Ed25519 certificate")
    cert_type, hours, key_type = body[1], struct.unpack_from("!I", body, 2)[0], body[6]
    certified_key, n_ext = body[7:39], body[39]
    pos, signed_with = 40, None
    for _ in range(n_ext):
        if pos + 4 > len(body) - 64:
            raise CertsMalformed(f"{what}: truncated extension")
        ext_len, ext_type, ext_flags = struct.unpack_from("!HBB", body, pos)
        data = body[pos + 4 : pos + 4 + ext_len]
        pos += 4 + ext_len
        if pos > len(body) - 64:
            raise CertsMalformed(f"{what}: truncated extension")
        if ext_type == _EXT_SIGNED_WITH_ED25519_KEY:
            if len(data) != 32:
                raise CertsMalformed(f"{what}: bad signing-key extension")
            signed_with = data
        elif ext_flags & _EXT_FLAG_AFFECTS_VALIDATION:
            raise CertsMalformed(f"{what}: unknown critical extension {ext_type}")
    if pos != len(body) - 64:
        raise CertsMalformed(f"{what}: trailing bytes")
    expires = datetime.fromtimestamp(hours * 3600, tz=UTC)
    return _EdCert(cert_type, expires, key_type, certified_key, signed_with, body[:pos], body[pos:])


def _ed_verify(key: bytes, signature: bytes, data: bytes) -> bool:
    try:
        ed25519.Ed25519PublicKey.from_public_bytes(key).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


def _verify_ed25519(
    certs: dict[int, list[bytes]], identity: rsa.RSAPublicKey, tls_cert_der: bytes, now: datetime
) -> bytes:
    """Check types 4, 5 and 7; return the Ed25519 identity key."""
    body4 = _one(certs, CERT_ED_SIGNING, required=True)
    body5 = _one(certs, CERT_ED_TLS_LINK, required=True)
    body7 = _one(certs, CERT_RSA_ED_CROSS, required=True)
    assert body4 is not None and body5 is not None and body7 is not None
    signing = _parse_ed_cert(body4, "type-4 certificate")
    link = _parse_ed_cert(body5, "type-5 certificate")
    if signing.cert_type != CERT_ED_SIGNING or link.cert_type != CERT_ED_TLS_LINK:
        raise CertsMalformed("Ed25519 certificate with the wrong inner type")
    if signing.signed_with is None:
        raise CertsMalformed("type-4 certificate does not carry the identity key")
    for cert, what in ((signing, "type-4"), (link, "type-5")):
        if cert.expires + _PAST_SLOP < now:
            raise CertsMalformed(f"{what} certificate expired")
    ed_identity = signing.signed_with
    if not _ed_verify(ed_identity, signing.signature, signing.signed_part):
        raise CertsMismatch("type-4 certificate not signed by the Ed25519 identity")
    if not _ed_verify(signing.certified_key, link.signature, link.signed_part):
        raise CertsMismatch("type-5 certificate not signed by the Ed25519 signing key")
    if link.certified_key != hashlib.sha256(tls_cert_der).digest():
        raise CertsNotBoundToTls("type-5 certificate does not certify the TLS certificate presented")
    # type 7: ED25519_KEY(32) EXPIRATION(4, hours) SIGLEN(1) SIG; RSA PKCS#1 over a bare SHA-256 digest
    if len(body7) < 37 or len(body7) != 37 + body7[36]:
        raise CertsMalformed("malformed type-7 cross-certificate")
    if body7[:32] != ed_identity:
        raise CertsMismatch("type-7 cross-certificate names another Ed25519 identity")
    digest = hashlib.sha256(_CROSSCERT_PREFIX + body7[:36]).digest()
    try:
        recovered = identity.recover_data_from_signature(body7[37:], padding.PKCS1v15(), None)
    except (InvalidSignature, ValueError):
        raise CertsMismatch("type-7 cross-certificate not signed by the RSA identity") from None
    if recovered != digest:
        raise CertsMismatch("type-7 cross-certificate not signed by the RSA identity")
    return ed_identity


def _validity(cert: x509.Certificate) -> tuple[datetime, datetime]:
    """notBefore and notAfter, timezone-aware.

    cryptography 42 added the ``*_utc`` properties and deprecated the naive ones (a warning, an error in
    the tests); Debian bookworm's 38 has only the naive ones, which are UTC.
    """
    if hasattr(cert, "not_valid_before_utc"):
        return cert.not_valid_before_utc, cert.not_valid_after_utc
    return (
        cert.not_valid_before.replace(tzinfo=UTC),  # pragma: no cover - cryptography < 42
        cert.not_valid_after.replace(tzinfo=UTC),
    )


def verify_responder_certs(
    certs: dict[int, list[bytes]], tls_cert_der: bytes, now: datetime | None = None, *, ed25519: bool = True
) -> LinkIdentity:
    """Prove which relay answered on this TLS connection, or raise CertsMalformed/CertsMismatch.

    ``ed25519=False``: prove the RSA identity only, as tor-spec 4.2 allows ("to authenticate the responder
    as having a given RSA identity only"), when the type-1 link certificate binds it to this TLS key: the
    Ed25519 chain is then not verified (two Ed25519 verifications, a third of the check's CPU: a 7,000-relay
    set's members carry no Ed25519 identity to compare with). Without a type-1 certificate the Ed25519
    chain is what binds the RSA identity (through the type-7 cross-certificate) and is verified anyway.
    """
    now = now or datetime.now(UTC)
    body2 = _one(certs, CERT_RSA_IDENTITY, required=True)
    assert body2 is not None
    identity_cert = _x509(body2, "type-2 identity certificate")
    identity = _public_key(identity_cert, "type-2 identity certificate")
    if not isinstance(identity, rsa.RSAPublicKey) or identity.key_size != 1024:
        raise CertsMalformed("type-2 identity key is not RSA1024")
    before, after = _validity(identity_cert)
    _check_lifetime(before, after + _FUTURE_SLOP, now, "identity")
    if not _rsa_verify_x509(identity_cert, identity):
        raise CertsMismatch("type-2 identity certificate is not self-signed")
    try:
        tls_key = x509.load_der_x509_certificate(tls_cert_der).public_key()
    except (ValueError, UnsupportedAlgorithm):
        raise CertsMismatch("the TLS certificate presented is not parseable") from None
    tls_spki = tls_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)

    has_ed = any(t in certs for t in (CERT_ED_SIGNING, CERT_ED_TLS_LINK, CERT_RSA_ED_CROSS))
    body1 = _one(certs, CERT_LINK, required=not has_ed)
    if body1 is not None:
        link_cert = _x509(body1, "type-1 link certificate")
        _check_lifetime(*_validity(link_cert), now, "link cert")
        if not _rsa_verify_x509(link_cert, identity):
            raise CertsMismatch("type-1 link certificate not signed by the RSA identity")
        link_key = _public_key(link_cert, "type-1 link certificate")
        link_spki = link_key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        if link_spki != tls_spki:
            raise CertsNotBoundToTls("type-1 link certificate does not certify the TLS key presented")
    verify_ed = has_ed and (ed25519 or body1 is None)
    ed_identity = _verify_ed25519(certs, identity, tls_cert_der, now) if verify_ed else None
    return LinkIdentity(
        rsa_fingerprint=rsa_fingerprint(identity), ed25519_identity=ed_identity, ed25519_present=has_ed
    )
