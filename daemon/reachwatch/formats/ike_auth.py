"""IKEv2 after IKE_SA_INIT (RFC 7296): the keys, the encrypted SK payload, IKE_AUTH with a pre-shared key
and the CHILD_SA it creates.

One suite, the one ``ike_packets.auth_sa_payload_body`` offers: PRF-HMAC-SHA2-256, AES-CBC-256 with
HMAC-SHA2-256-128 for the SK payload (§3.14) and the same pair for ESP. Pure functions and values; the
exchange itself (sockets, retransmission) is ``vpn/ikeauth.py``.

- ``derive_ike_keys``: SKEYSEED = prf(Ni | Nr, g^ir), then the seven keys from prf+ (§2.14);
- ``seal``/``open_message``: an encrypted message (header, SK{inner payloads}, ICV over all but the ICV);
- ``build_auth_request``: IDi, AUTH (§2.15, "Key Pad for IKEv2"), a CFG_REQUEST for an inside address
  (§3.15), SAi2 for ESP with our SPI, TSi and TSr (all IPv4; the responder narrows them, §2.9);
- ``parse_auth_response``: the responder's payloads, its AUTH checked against the same PSK;
- ``derive_child_keys``: KEYMAT = prf+(SK_d, Ni | Nr) (§2.17), initiator-to-responder keys first.
"""

from __future__ import annotations

import ipaddress
import os
import struct
from dataclasses import dataclass, field
from hmac import compare_digest

from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

IKE_AUTH, INFORMATIONAL = 35, 37
FLAG_INITIATOR, FLAG_RESPONSE = 0x08, 0x20
PAYLOAD_SA, PAYLOAD_IDI, PAYLOAD_IDR, PAYLOAD_AUTH = 33, 35, 36, 39
PAYLOAD_NOTIFY, PAYLOAD_DELETE, PAYLOAD_TSI, PAYLOAD_TSR, PAYLOAD_SK, PAYLOAD_CP = 41, 42, 44, 45, 46, 47
AUTHENTICATION_FAILED = 24  # notify (§3.10.1)
AUTH_SHARED_KEY_MIC = 2
ID_IPV4_ADDR, ID_FQDN, ID_RFC822_ADDR = 1, 2, 3
CFG_REQUEST, CFG_REPLY, INTERNAL_IP4_ADDRESS = 1, 2, 1
PROTO_IKE, PROTO_ESP = 1, 3
ENCR, INTEG, ESN = 1, 3, 5
ENCR_AES_CBC, AUTH_HMAC_SHA2_256_128 = 12, 12
TS_IPV4_ADDR_RANGE = 7
HEADER_LEN, BLOCK, ICV_LEN, KEY_LEN = 28, 16, 16, 32
MAX_MESSAGE = 16384
MAX_PAYLOADS = 32
KEY_PAD = b"Key Pad for IKEv2"


def prf(key: bytes, data: bytes) -> bytes:
    """PRF_HMAC_SHA2_256."""
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def prf_plus(key: bytes, seed: bytes, length: int) -> bytes:
    """prf+ (§2.13): T1 = prf(K, S | 0x01), Tn = prf(K, Tn-1 | S | n)."""
    out, block, n = b"", b"", 1
    while len(out) < length:
        block = prf(key, block + seed + bytes([n]))
        out, n = out + block, n + 1
    return out[:length]


@dataclass(frozen=True)
class IkeKeys:
    """The IKE SA's keys and what identifies it."""

    spi_i: bytes
    spi_r: bytes
    ni: bytes
    nr: bytes
    sk_d: bytes
    sk_ai: bytes
    sk_ar: bytes
    sk_ei: bytes
    sk_er: bytes
    sk_pi: bytes
    sk_pr: bytes


def derive_ike_keys(shared: bytes, ni: bytes, nr: bytes, spi_i: bytes, spi_r: bytes) -> IkeKeys:
    skeyseed = prf(ni + nr, shared)
    stream = prf_plus(skeyseed, ni + nr + spi_i + spi_r, 7 * KEY_LEN)
    k = [stream[i * KEY_LEN : (i + 1) * KEY_LEN] for i in range(7)]
    return IkeKeys(spi_i, spi_r, ni, nr, *k)


@dataclass(frozen=True)
class ChildKeys:
    """ESP keys of one CHILD_SA: ``out`` seals what we send (to the responder's SPI), ``in`` opens what
    comes back (to our SPI)."""

    spi_out: bytes
    spi_in: bytes
    enc_out: bytes
    integ_out: bytes
    enc_in: bytes
    integ_in: bytes


def derive_child_keys(keys: IkeKeys, spi_out: bytes, spi_in: bytes) -> ChildKeys:
    stream = prf_plus(keys.sk_d, keys.ni + keys.nr, 4 * KEY_LEN)
    k = [stream[i * KEY_LEN : (i + 1) * KEY_LEN] for i in range(4)]
    return ChildKeys(spi_out, spi_in, k[0], k[1], k[2], k[3])


def hmac_sha256_128(key: bytes, data: bytes) -> bytes:
    """AUTH_HMAC_SHA2_256_128: HMAC-SHA-256 truncated to 16 bytes (RFC 4868)."""
    return prf(key, data)[:ICV_LEN]


def cbc_encrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def cbc_decrypt(key: bytes, iv: bytes, data: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def icv_ok(key: bytes, data: bytes, icv: bytes) -> bool:
    """Constant-time check of a truncated HMAC-SHA-256 ICV."""
    return compare_digest(hmac_sha256_128(key, data), icv)


def _payload(next_type: int, body: bytes) -> bytes:
    return struct.pack(">BxH", next_type, 4 + len(body)) + body


def chain(parts: list[tuple[int, bytes]]) -> bytes:
    """Payloads in order, each header naming the next one's type."""
    return b"".join(
        _payload(parts[i + 1][0] if i + 1 < len(parts) else 0, body) for i, (_, body) in enumerate(parts)
    )


def seal(keys: IkeKeys, exchange: int, msg_id: int, parts: list[tuple[int, bytes]]) -> bytes:
    """An initiator's request carrying ``parts`` inside one SK payload (no non-ESP marker)."""
    inner = chain(parts)
    pad = (-(len(inner) + 1)) % BLOCK
    plain = inner + b"\x00" * pad + bytes([pad])
    iv = os.urandom(BLOCK)
    ct = cbc_encrypt(keys.sk_ei, iv, plain)
    length = HEADER_LEN + 4 + BLOCK + len(ct) + ICV_LEN
    header = (
        keys.spi_i
        + keys.spi_r
        + struct.pack(">BBBBII", PAYLOAD_SK, 0x20, exchange, FLAG_INITIATOR, msg_id, length)
    )
    sk_header = struct.pack(">BxH", parts[0][0] if parts else 0, 4 + BLOCK + len(ct) + ICV_LEN)
    signed = header + sk_header + iv + ct
    return signed + hmac_sha256_128(keys.sk_ai, signed)


def open_message(keys: IkeKeys, data: bytes, exchange: int, msg_id: int) -> list[tuple[int, bytes]] | None:
    """The payloads inside the responder's encrypted answer to our request ``msg_id``; ``None`` when
    ``data`` is not that answer or fails its integrity check."""
    if not HEADER_LEN + 4 + BLOCK + ICV_LEN <= len(data) <= MAX_MESSAGE:
        return None
    next_type, version, xchg, flags, mid, length = struct.unpack(">BBBBII", data[16:28])
    if data[:8] != keys.spi_i or data[8:16] != keys.spi_r or version >> 4 != 2 or length != len(data):
        return None
    if xchg != exchange or mid != msg_id or not flags & FLAG_RESPONSE or flags & FLAG_INITIATOR:
        return None
    if next_type != PAYLOAD_SK:
        return None
    first, _, plen = struct.unpack(">BBH", data[HEADER_LEN : HEADER_LEN + 4])
    if HEADER_LEN + plen != len(data) or (plen - 4 - BLOCK - ICV_LEN) % BLOCK:
        return None
    if not icv_ok(keys.sk_ar, data[:-ICV_LEN], data[-ICV_LEN:]):
        return None
    iv = data[HEADER_LEN + 4 : HEADER_LEN + 4 + BLOCK]
    plain = cbc_decrypt(keys.sk_er, iv, data[HEADER_LEN + 4 + BLOCK : -ICV_LEN])
    pad = plain[-1]
    if pad + 1 > len(plain):
        return None
    return parse_payloads(first, plain[: len(plain) - pad - 1])


def parse_payloads(first: int, data: bytes) -> list[tuple[int, bytes]] | None:
    """A chain of generic payloads, or ``None`` when a length lies."""
    out: list[tuple[int, bytes]] = []
    offset, next_type = 0, first
    while next_type != 0:
        if len(out) >= MAX_PAYLOADS or offset + 4 > len(data):
            return None
        following, _, plen = struct.unpack(">BBH", data[offset : offset + 4])
        if plen < 4 or offset + plen > len(data):
            return None
        out.append((next_type, data[offset + 4 : offset + plen]))
        next_type, offset = following, offset + plen
    return out


def id_body(identity: str) -> bytes:
    """An ID payload's body (type, reserved, data): an IPv4 address, an e-mail-style name or an FQDN."""
    try:
        return struct.pack(">B3x", ID_IPV4_ADDR) + ipaddress.IPv4Address(identity).packed
    except ValueError:
        kind = ID_RFC822_ADDR if "@" in identity else ID_FQDN
        return struct.pack(">B3x", kind) + identity.encode()


def psk_auth(psk: bytes, message: bytes, nonce: bytes, sk_p: bytes, identity: bytes) -> bytes:
    """AUTH data for a shared key (§2.15): prf(prf(PSK, "Key Pad for IKEv2"), message | nonce | prf(SK_p,
    ID body)). The initiator signs its IKE_SA_INIT and Nr; the responder its answer and Ni."""
    return prf(prf(psk, KEY_PAD), message + nonce + prf(sk_p, identity))


def _ts(start: str, end: str) -> bytes:
    selector = struct.pack(">BBHHH", TS_IPV4_ADDR_RANGE, 0, 16, 0, 65535)
    return (
        struct.pack(">B3x", 1)
        + selector
        + ipaddress.IPv4Address(start).packed
        + ipaddress.IPv4Address(end).packed
    )


def esp_sa_body(spi: bytes) -> bytes:
    """SAi2: one ESP proposal, AES-CBC-256 + HMAC-SHA2-256-128, no extended sequence numbers."""
    transforms = (
        struct.pack(">BxHBxHHH", 3, 12, ENCR, ENCR_AES_CBC, 0x800E, 256)
        + struct.pack(">BxHBxH", 3, 8, INTEG, AUTH_HMAC_SHA2_256_128)
        + struct.pack(">BxHBxH", 0, 8, ESN, 0)
    )
    return (
        struct.pack(">BxHBBBB", 0, 8 + len(spi) + len(transforms), 1, PROTO_ESP, len(spi), 3)
        + spi
        + transforms
    )


def build_auth_request(
    keys: IkeKeys, message1: bytes, identity: str, psk: bytes, esp_spi: bytes
) -> tuple[bytes, bytes]:
    """The IKE_AUTH request (message id 1) and our ID body. ``message1``: our IKE_SA_INIT as sent."""
    idi = id_body(identity)
    auth = struct.pack(">B3x", AUTH_SHARED_KEY_MIC) + psk_auth(psk, message1, keys.nr, keys.sk_pi, idi)
    cp = struct.pack(">B3x", CFG_REQUEST) + struct.pack(">HH", INTERNAL_IP4_ADDRESS, 0)
    parts = [
        (PAYLOAD_IDI, idi),
        (PAYLOAD_AUTH, auth),
        (PAYLOAD_CP, cp),
        (PAYLOAD_SA, esp_sa_body(esp_spi)),
        (PAYLOAD_TSI, _ts("0.0.0.0", "255.255.255.255")),
        (PAYLOAD_TSR, _ts("0.0.0.0", "255.255.255.255")),
    ]
    return seal(keys, IKE_AUTH, 1, parts), idi


@dataclass
class AuthResponse:
    """What the responder's IKE_AUTH answer said, after its AUTH was checked."""

    authentic: bool  # its AUTH payload verified with our PSK (False: absent or wrong)
    notifies: dict[int, bytes] = field(default_factory=dict)
    esp_spi: bytes | None = None  # the responder's inbound SPI: where our ESP goes
    inside_address: str | None = None  # INTERNAL_IP4_ADDRESS from its CFG_REPLY
    tsi: list[tuple[str, str]] = field(default_factory=list)
    tsr: list[tuple[str, str]] = field(default_factory=list)

    @property
    def error(self) -> int | None:
        errors = [t for t in self.notifies if t < 16384]
        return errors[0] if errors else None


def parse_auth_response(
    parts: list[tuple[int, bytes]], keys: IkeKeys, message2: bytes, psk: bytes
) -> AuthResponse:
    """Read the responder's IKE_AUTH payloads; ``message2``: its IKE_SA_INIT answer (what it signs)."""
    found = dict(parts)
    resp = AuthResponse(authentic=False)
    for ptype, body in parts:
        if ptype == PAYLOAD_NOTIFY and len(body) >= 4:
            resp.notifies.setdefault(struct.unpack(">H", body[2:4])[0], body[4 + body[1] :])
    idr, auth = found.get(PAYLOAD_IDR), found.get(PAYLOAD_AUTH)
    if idr is not None and auth is not None and len(auth) > 4 and auth[0] == AUTH_SHARED_KEY_MIC:
        expected = psk_auth(psk, message2, keys.ni, keys.sk_pr, idr)
        resp.authentic = compare_digest(expected, auth[4:])
    resp.esp_spi = _proposal_spi(found.get(PAYLOAD_SA, b""))
    resp.inside_address = _cp_address(found.get(PAYLOAD_CP, b""))
    resp.tsi = _ranges(found.get(PAYLOAD_TSI, b""))
    resp.tsr = _ranges(found.get(PAYLOAD_TSR, b""))
    return resp


def _proposal_spi(sa: bytes) -> bytes | None:
    if len(sa) < 8 or sa[5] != PROTO_ESP or sa[6] != 4 or len(sa) < 12:
        return None
    return sa[8:12]


def _cp_address(cp: bytes) -> str | None:
    if len(cp) < 4 or cp[0] != CFG_REPLY:
        return None
    offset = 4
    while offset + 4 <= len(cp):
        atype, alen = struct.unpack(">HH", cp[offset : offset + 4])
        value = cp[offset + 4 : offset + 4 + alen]
        if atype & 0x7FFF == INTERNAL_IP4_ADDRESS and len(value) >= 4:
            return str(ipaddress.IPv4Address(value[:4]))
        offset += 4 + alen
    return None


def _ranges(ts: bytes) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    offset = 4
    for _ in range(ts[0] if ts else 0):
        if offset + 16 > len(ts):
            break
        ttype, _, slen = struct.unpack(">BBH", ts[offset : offset + 4])
        if ttype == TS_IPV4_ADDR_RANGE and slen == 16:
            start, end = ts[offset + 8 : offset + 12], ts[offset + 12 : offset + 16]
            out.append((str(ipaddress.IPv4Address(start)), str(ipaddress.IPv4Address(end))))
        offset += max(slen, 8)
    return out


def in_ranges(address: str, ranges: list[tuple[str, str]]) -> bool:
    ip = ipaddress.IPv4Address(address)
    return any(ipaddress.IPv4Address(a) <= ip <= ipaddress.IPv4Address(b) for a, b in ranges)


def build_delete(keys: IkeKeys, msg_id: int) -> bytes:
    """INFORMATIONAL with a Delete of the IKE SA (and with it its CHILD_SAs, §1.4.1): leave cleanly."""
    return seal(keys, INFORMATIONAL, msg_id, [(PAYLOAD_DELETE, struct.pack(">BBH", PROTO_IKE, 0, 0))])
