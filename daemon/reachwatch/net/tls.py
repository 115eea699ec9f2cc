"""TLS client handshakes over an open TCP stream, and what the server presented.

Verification is OpenSSL's (``ssl`` module, ``CERT_REQUIRED`` + hostname check against the system roots or
a ``ca_file``): we never re-implement path validation. What we add is *evidence*: the presented chain
(DER, parsed with ``cryptography``), its issuer names, SPKI/certificate pins, and a small list of known
national interception roots, so that a failed validation can say who signed the substituted certificate.

Why a second, diagnostic connection after a failed verification: asyncio's ``start_tls`` drops the
``SSLObject`` when the handshake fails, so the chain that failed is out of reach. ``read_presented_chain``
makes ONE extra handshake to the same pinned address with the same SNI and no verification, only to read
the chain. The cost is one connection, only on failure; a censor serving a different chain to the second
connection would only hide itself, never make us blame the wrong party. The chain itself is read with
``SSLObject._sslobj.get_unverified_chain()``: private in 3.11, public (``get_unverified_chain``) in 3.13;
when absent we fall back to the leaf alone.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from reachwatch.failures import Failure, Stage
from reachwatch.net.dial import connect_tcp
from reachwatch.net.errors import NetFailure, classified

# Roots used by the Kazakh state for TLS interception; matched on the issuer/subject names of the
# presented chain (not on keys: the keys differ between campaigns). Sources (see shared REFERENCE.md and
# research/ooni_tor.md section 4): "Qaznet Trust Network" (Jul-Aug 2019, IMC 2020 Raman et al.; Dec
# 2020 repeat) and "C=KZ, O=ISCA, CN=Information Security Certification Authority" (2020-2024, OONI 2024
# Kazakhstan report; Mozilla bug 1879046). A name match is only ever consulted after OpenSSL has already
# refused the chain, so a look-alike name cannot turn a valid chain into "interception".
KNOWN_INTERCEPTION_ROOTS: tuple[dict[str, str], ...] = (
    {"CN": "Qaznet Trust Network"},
    {"C": "KZ", "O": "ISCA", "CN": "Information Security Certification Authority"},
)

_ATTR_SHORT = {
    x509.NameOID.COMMON_NAME: "CN",
    x509.NameOID.ORGANIZATION_NAME: "O",
    x509.NameOID.COUNTRY_NAME: "C",
}


@dataclass(frozen=True)
class PresentedChain:
    """The certificates a server presented, leaf first, as DER, with the derived names and pins."""

    der: tuple[bytes, ...]

    @functools.cached_property
    def certs(self) -> tuple[x509.Certificate, ...]:
        """Parsed on first use: most successful probes never need more than the DER (bench/sweep.py)."""
        parsed: list[x509.Certificate] = []
        for blob in self.der:
            try:
                parsed.append(x509.load_der_x509_certificate(blob))
            except ValueError:
                break  # garbage from a hostile server: keep what parsed
        return tuple(parsed)

    @property
    def leaf_issuer(self) -> str:
        return self.certs[0].issuer.rfc4514_string() if self.certs else ""

    @property
    def top_issuer(self) -> str:
        """Issuer of the last presented certificate: the root the chain claims to descend from."""
        return self.certs[-1].issuer.rfc4514_string() if self.certs else ""

    @property
    def leaf_subject(self) -> str:
        """The leaf's subject name (every successful ``tls`` probe reports it), from recent leaves."""
        return _leaf_subject(self.der[0]) if self.der else ""

    def spki_sha256(self) -> list[str]:
        """Base64 SHA-256 of each certificate's SubjectPublicKeyInfo (HPKP/``openssl`` pin format)."""
        return [spki_sha256(c) for c in self.certs]

    def leaf_sha256(self) -> str:
        """Hex SHA-256 of the leaf certificate (``openssl x509 -fingerprint -sha256`` without colons)."""
        return hashlib.sha256(self.der[0]).hexdigest() if self.der else ""

    def interception_root(self) -> str | None:
        """The name of a known national interception root in the chain (issuer or subject), if any."""
        for cert in self.certs:
            for name in (cert.issuer, cert.subject):
                attrs = {_ATTR_SHORT[a.oid]: str(a.value) for a in name if a.oid in _ATTR_SHORT}
                for known in KNOWN_INTERCEPTION_ROOTS:
                    if all(attrs.get(k) == v for k, v in known.items()):
                        return name.rfc4514_string()
        return None


@functools.lru_cache(maxsize=512)
def _leaf_subject(der: bytes) -> str:
    """The subject of the certificate ``der`` ("" when it does not parse, as ``PresentedChain.certs``).

    A server presents the same leaf attempt after attempt, and parsing it was ~4 % of a successful
    ``tls`` probe's CPU (bench/sweep.py, py-spy). Only the leaf is parsed, not the whole chain. 512
    leaves of 1-2 kB at most: a fleet with more TLS targets than that parses as before.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError:
        return ""
    return cert.subject.rfc4514_string()


def spki_sha256(cert: x509.Certificate) -> str:
    """Base64 SHA-256 of the certificate's SubjectPublicKeyInfo (the ``sha256/...`` pin format).

    Hashed as the certificate carries it, not re-encoded from a parsed key: ``public_key()`` raises for
    key types cryptography does not load (SM2, GOST: national certificates a server or a censor may
    present) and could re-encode others differently from ``openssl pkey -pubout``.
    """
    return base64.b64encode(hashlib.sha256(_spki_der(cert.tbs_certificate_bytes)).digest()).decode("ascii")


def _der_element(data: bytes, offset: int) -> tuple[int, int, int]:
    """(tag, start of the value, end of the element) of the DER element at ``offset``."""
    if offset + 2 > len(data):
        raise ValueError("truncated DER element")
    tag, first = data[offset], data[offset + 1]
    if first < 0x80:
        start, length = offset + 2, first
    else:
        size = first & 0x7F
        start, length = offset + 2 + size, int.from_bytes(data[offset + 2 : offset + 2 + size], "big")
    if start + length > len(data):
        raise ValueError("truncated DER element")
    return tag, start, start + length


def _spki_der(tbs: bytes) -> bytes:
    """The SubjectPublicKeyInfo element of a TBSCertificate (RFC 5280 section 4.1): after the optional
    ``[0]`` version come serial, signature algorithm, issuer, validity and subject."""
    _, offset, end = _der_element(tbs, 0)
    tag, _, after = _der_element(tbs, offset)
    if tag == 0xA0:  # explicit version
        offset = after
    for _ in range(5):
        offset = _der_element(tbs, offset)[2]
    if offset >= end:
        raise ValueError("no SubjectPublicKeyInfo in the certificate")
    return tbs[offset : _der_element(tbs, offset)[2]]


def normalize_pin(pin: str) -> str:
    """Accept ``sha256/<base64>``, bare base64, or hex (with or without colons); return base64."""
    value = pin.strip().removeprefix("sha256/")
    hexish = value.replace(":", "")
    if len(hexish) == 64 and all(c in "0123456789abcdefABCDEF" for c in hexish):
        return base64.b64encode(bytes.fromhex(hexish)).decode("ascii")
    return value


def normalize_fingerprint(fp: str) -> str:
    """A certificate fingerprint as lower-case hex without colons (what ``leaf_sha256`` returns)."""
    return fp.strip().replace(":", "").lower()


def client_context(
    *, ca_file: Path | None = None, verify: bool = True, alpn: tuple[str, ...] = ()
) -> ssl.SSLContext:
    """A client context: system roots (or ``ca_file``), CERT_REQUIRED and hostname check when ``verify``.

    Contexts are shared between attempts: loading a CA bundle costs more CPU than the handshake itself
    (bench/sweep.py measured 0.65 ms per probe). The key includes the file's mtime and size so an edited
    bundle is picked up without a restart. An SSLContext is safe to share; no session is reused.
    """
    key: tuple[object, ...] = (verify, alpn, None)
    if ca_file is not None:
        try:
            st = ca_file.stat()
            key = (verify, alpn, str(ca_file), st.st_mtime_ns, st.st_size)
        except OSError:
            return _new_client_context(ca_file, verify, alpn)  # let ssl report the unreadable file
    ctx = _CONTEXTS.get(key)
    if ctx is None:
        if len(_CONTEXTS) >= _MAX_CONTEXTS:
            _CONTEXTS.pop(next(iter(_CONTEXTS)))
        ctx = _CONTEXTS[key] = _new_client_context(ca_file, verify, alpn)
    return ctx


_CONTEXTS: dict[tuple[object, ...], ssl.SSLContext] = {}
_MAX_CONTEXTS = 64


def _new_client_context(ca_file: Path | None, verify: bool, alpn: tuple[str, ...]) -> ssl.SSLContext:
    if verify:
        ctx = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


@dataclass
class TlsSession:
    """An established TLS stream and what the handshake showed."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    chain: PresentedChain  # as presented, leaf first
    verified: PresentedChain  # as validated by OpenSSL (empty when not verifying)
    version: str
    cipher: str
    alpn: str | None


def _chain(sslobj: ssl.SSLObject, which: str) -> PresentedChain:
    """``which`` is ``get_unverified_chain`` (what the server sent) or ``get_verified_chain`` (the path
    OpenSSL built, trust anchor included; empty without verification)."""
    inner = getattr(sslobj, "_sslobj", None)
    getter = getattr(sslobj, which, None) or getattr(inner, which, None)
    if getter is not None:
        certs = getter() or []
        # 3.11 returns _ssl.Certificate objects; 3.13 returns DER bytes
        der = tuple(
            c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
            for c in certs
        )
        if der:
            return PresentedChain(der)
    if which == "get_verified_chain":
        return PresentedChain(())
    leaf = sslobj.getpeercert(binary_form=True)
    return PresentedChain((leaf,) if leaf else ())


async def tls_handshake(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    server_name: str | None,
    context: ssl.SSLContext,
    *,
    handshake_timeout: float | None = None,
) -> TlsSession:
    """Upgrade an open TCP stream to TLS with ``server_name`` as SNI (and as the name verified).

    ``handshake_timeout`` bounds the handshake alone (a probe that wants time left for a diagnostic sets it);
    expiry is ``tls_handshake``/``generic_timeout_error``. Verification failures keep OpenSSL's verdict,
    classified in ``net.errors`` (unknown authority, hostname, other).
    """
    with classified(Stage.TLS_HANDSHAKE):
        try:
            async with asyncio.timeout(handshake_timeout):
                # ssl_handshake_timeout is asyncio's own cap (60 s default); ours is the caller's deadline
                await writer.start_tls(context, server_hostname=server_name or None)
        except TimeoutError as exc:
            raise NetFailure(Failure.GENERIC_TIMEOUT_ERROR, Stage.TLS_HANDSHAKE, "handshake timeout") from exc
    sslobj = writer.get_extra_info("ssl_object")
    if not isinstance(sslobj, ssl.SSLObject):
        raise NetFailure(Failure.SSL_FAILED_HANDSHAKE, Stage.TLS_HANDSHAKE, "no TLS session after handshake")
    cipher = sslobj.cipher()
    return TlsSession(
        reader=reader,
        writer=writer,
        chain=_chain(sslobj, "get_unverified_chain"),
        verified=_chain(sslobj, "get_verified_chain"),
        version=sslobj.version() or "",
        cipher=cipher[0] if cipher else "",
        alpn=sslobj.selected_alpn_protocol(),
    )


async def read_presented_chain(ip: str, port: int, server_name: str | None) -> PresentedChain:
    """Diagnostic only: one unverified handshake to ``ip:port`` to read the chain it presents.

    Used after OpenSSL refused a chain (see module docstring). Bounded by the caller's deadline.
    """
    reader, writer = await connect_tcp(ip, port)
    try:
        session = await tls_handshake(reader, writer, server_name, client_context(verify=False))
        return session.chain
    finally:
        discard(writer)


def discard(writer: asyncio.StreamWriter) -> None:
    """Drop a connection now, without a TLS close_notify exchange or waiting for the peer.

    A graceful close waits for a peer that may be a blackhole or a tarpit; after a measurement the
    connection has nothing left to tell us, so it must not eat the deadline of the next step.
    """
    writer.transport.abort()


def check_pins(
    chain: PresentedChain,
    spki_pins: list[str],
    cert_fingerprints: list[str],
    verified: PresentedChain | None = None,
) -> None:
    """Raise ``ssl_pin_mismatch`` unless a configured pin matches.

    SPKI pins match any certificate of the presented or the validated chain (pinning a CA key is common,
    and the root is usually not sent); certificate fingerprints match the leaf only.
    """
    if spki_pins:
        wanted = {normalize_pin(p) for p in spki_pins}
        keys = set(chain.spki_sha256()) | set(verified.spki_sha256() if verified else ())
        if not wanted.intersection(keys):
            raise NetFailure(Failure.SSL_PIN_MISMATCH, Stage.TLS_HANDSHAKE, "no SPKI pin matched")
    if cert_fingerprints:
        wanted = {normalize_fingerprint(f) for f in cert_fingerprints}
        if chain.leaf_sha256() not in wanted:
            raise NetFailure(Failure.SSL_PIN_MISMATCH, Stage.TLS_HANDSHAKE, "certificate fingerprint differs")
