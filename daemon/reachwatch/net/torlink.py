"""The responder side of Tor's link handshake, as seen by a client that does not run tor (tor-spec 4).

After TLS: we send VERSIONS (variable-length cell, 2-byte CircID 0), read the relay's VERSIONS, pick the
highest common link protocol (4 or 5: both use 4-byte CircIDs afterwards), then read CERTS,
AUTH_CHALLENGE and NETINFO. We stop there and close: completing the handshake (our NETINFO, circuits) is
not needed to prove the relay's identity, and sending less makes the probe cheaper for the relay.

Every read is bounded: a variable-length cell larger than ``MAX_VAR_PAYLOAD`` (real CERTS cells are ~2 KB)
and more than ``MAX_CELLS`` cells before NETINFO are protocol errors, so a hostile endpoint costs at most
a few hundred KB. Time is bounded by the probe's deadline. Errors are classified here:
``tor_link_handshake_failed`` (the peer does not speak the link protocol properly) and, from the
certificate checks in ``reachwatch.formats.tor_certs``, ``tor_identity_mismatch``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import secrets
import ssl
import struct
import time
from dataclasses import dataclass, field

from reachwatch.failures import Failure, Stage
from reachwatch.formats.tor_certs import (
    CertsMalformed,
    CertsMismatch,
    CertsNotBoundToTls,
    LinkIdentity,
    parse_certs_payload,
    verify_responder_certs,
)
from reachwatch.net.errors import NetFailure, classified

CMD_PADDING = 0
CMD_VERSIONS = 7
CMD_NETINFO = 8
CMD_VPADDING = 128
CMD_CERTS = 129
CMD_AUTH_CHALLENGE = 130
CMD_AUTHORIZE = 132

OFFERED_VERSIONS = (4, 5)
FIXED_PAYLOAD = 509  # fixed-size cell body; with a 4-byte CircID and the command, 514 bytes on the wire
MAX_VAR_PAYLOAD = 16 * 1024
MAX_CELLS = 32

_STAGE = Stage.PROTOCOL_HANDSHAKE


def _broken(detail: str) -> NetFailure:
    return NetFailure(Failure.TOR_LINK_HANDSHAKE_FAILED, _STAGE, detail)


@functools.cache
def link_tls_context() -> ssl.SSLContext:
    """No certificate validation (relay certificates are self-signed by design; identity is checked
    in-protocol). Security level 1 so that an old relay's TLS key does not fail before we can look.
    One shared context: it holds no per-connection state, and building one per probe costs CPU."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("DEFAULT:@SECLEVEL=1")
    return ctx


def random_sni() -> str:
    """tor clients send a random ``www.<random>.com`` SNI; so do we, to look like one.

    As tor's ``crypto_random_hostname(4, 25, "www.", ".com")``: 4 to 25 characters of lower-case base32
    (a-z, 2-7) from random bytes. Two calls to the system's random source, not one per character (26 of
    them cost ~0.2 ms a probe: a tenth of its CPU).
    """
    length = 4 + secrets.randbelow(22)
    return f"www.{base64.b32encode(secrets.token_bytes(length)).decode('ascii')[:length].lower()}.com"


def versions_cell(versions: tuple[int, ...] = OFFERED_VERSIONS) -> bytes:
    """VERSIONS always uses the 2-byte CircID form: the link version is not yet known."""
    payload = b"".join(struct.pack("!H", v) for v in versions)
    return struct.pack("!HBH", 0, CMD_VERSIONS, len(payload)) + payload


@dataclass(frozen=True)
class Cell:
    circ_id: int
    command: int
    payload: bytes


async def read_cell(reader: asyncio.StreamReader, circ_id_len: int) -> Cell:
    """One cell; variable-length for VERSIONS and commands >= 128, fixed 509-byte body otherwise."""
    with classified(_STAGE):
        header = await reader.readexactly(circ_id_len + 1)
        circ_id = int.from_bytes(header[:circ_id_len], "big")
        command = header[circ_id_len]
        if command == CMD_VERSIONS or command >= 128:
            (length,) = struct.unpack("!H", await reader.readexactly(2))
            if length > MAX_VAR_PAYLOAD:
                raise _broken(f"variable-length cell of {length} bytes")
            payload = await reader.readexactly(length)
        else:
            payload = await reader.readexactly(FIXED_PAYLOAD)
    return Cell(circ_id, command, payload)


@dataclass
class LinkHandshake:
    """What the responder sent up to NETINFO (certificates not yet checked: see ``verify_identity``)."""

    link_version: int
    certs: dict[int, list[bytes]]
    tls_cert_der: bytes
    auth_methods: list[int] = field(default_factory=list)
    clock_skew_s: int | None = None  # relay clock minus ours, from NETINFO


def _parse_versions(payload: bytes) -> list[int]:
    if len(payload) % 2:
        raise _broken("odd-length VERSIONS cell")
    return [v for (v,) in struct.iter_unpack("!H", payload)]


def _parse_auth_challenge(payload: bytes) -> list[int]:
    if len(payload) < 34:
        raise _broken("short AUTH_CHALLENGE cell")
    (n,) = struct.unpack_from("!H", payload, 32)
    if len(payload) < 34 + 2 * n:
        raise _broken("truncated AUTH_CHALLENGE cell")
    return [m for (m,) in struct.iter_unpack("!H", payload[34 : 34 + 2 * n])]


async def link_handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, tls_cert_der: bytes
) -> LinkHandshake:
    """Run the initiator's half up to the responder's NETINFO and split its CERTS cell.

    ``tls_cert_der`` is the certificate the TLS peer actually presented: ``verify_identity`` checks
    that the CERTS cell binds to it.
    """
    with classified(_STAGE):
        writer.write(versions_cell())
        await writer.drain()
    first = await read_cell(reader, 2)
    if first.command != CMD_VERSIONS or first.circ_id != 0:
        raise _broken(f"expected VERSIONS, got command {first.command}")
    common = set(_parse_versions(first.payload)) & set(OFFERED_VERSIONS)
    if not common:
        raise _broken("no common link protocol version")
    version = max(common)

    certs_payload: bytes | None = None
    auth_methods: list[int] = []
    for _ in range(MAX_CELLS):
        cell = await read_cell(reader, 4)
        if cell.command in (CMD_PADDING, CMD_VPADDING):
            continue
        if cell.command == CMD_CERTS:
            if certs_payload is not None:
                raise _broken("second CERTS cell")
            certs_payload = cell.payload
        elif cell.command == CMD_AUTH_CHALLENGE:
            auth_methods = _parse_auth_challenge(cell.payload)
        elif cell.command == CMD_AUTHORIZE:
            continue  # reserved for future use: ignored, as tor does
        elif cell.command == CMD_NETINFO:
            (timestamp,) = struct.unpack_from("!I", cell.payload, 0)
            skew = int(timestamp - time.time()) if timestamp else None
            break
        else:
            raise _broken(f"unexpected command {cell.command} during the link handshake")
    else:
        raise _broken(f"no NETINFO within {MAX_CELLS} cells")
    if certs_payload is None:
        raise _broken("NETINFO before CERTS")
    try:
        certs = parse_certs_payload(certs_payload)
    except CertsMalformed as exc:
        raise _broken(str(exc)) from exc
    return LinkHandshake(version, certs, tls_cert_der, auth_methods, skew)


class TlsNotBound(NetFailure):
    """``tor_identity_mismatch`` where the relay's genuine certificates certify another TLS certificate:
    someone terminated TLS between us and the relay (see ``formats.tor_certs.CertsNotBoundToTls``)."""


def verify_identity(link: LinkHandshake, *, ed25519: bool = True) -> LinkIdentity:
    """What the CERTS cell proves on this TLS connection (``formats.tor_certs``), classified: malformed
    certificates are ``tor_link_handshake_failed``, anything that is not proof is ``tor_identity_mismatch``.

    Separate from ``link_handshake`` so a probe can record what the handshake showed (link version)
    before an identity failure ends the attempt. ``ed25519=False``: the RSA identity only, when the link
    certificate binds it (``verify_responder_certs``).
    """
    try:
        return verify_responder_certs(link.certs, link.tls_cert_der, ed25519=ed25519)
    except CertsMalformed as exc:
        raise _broken(str(exc)) from exc
    except CertsNotBoundToTls as exc:
        raise TlsNotBound(Failure.TOR_IDENTITY_MISMATCH, _STAGE, str(exc)) from exc
    except CertsMismatch as exc:
        raise NetFailure(Failure.TOR_IDENTITY_MISMATCH, _STAGE, str(exc)) from exc
