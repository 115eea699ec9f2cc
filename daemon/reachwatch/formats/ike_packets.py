"""IKEv2 IKE_SA_INIT messages (RFC 7296): build the initiator's request, parse and check the answer.

The request carries one SA payload with two proposals (AES-CBC + HMAC integrity, and AES-GCM), a KE payload
for one Diffie-Hellman group (ECP-256 19, Curve25519 31 or MODP-2048 14; the key share is real, so a
responder that validates points accepts it, and ``KeyShare`` keeps its private half for IKE_AUTH's keys),
a 32-byte nonce and the two NAT-detection notifies; a COOKIE notify goes first when the responder asked
for one (§2.6). A probe about to authenticate offers only the suite ``formats/ike_auth.py`` implements.
On UDP 4500 every message is preceded by the 4-byte zero non-ESP marker (RFC 3948 §2.2). No sockets
here; ``probes/ikev2.py`` does the talking.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import socket
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

IKE_SA_INIT = 34
FLAG_INITIATOR, FLAG_RESPONSE = 0x08, 0x20
PAYLOAD_SA, PAYLOAD_KE, PAYLOAD_NONCE, PAYLOAD_NOTIFY = 33, 34, 40, 41
# notify message types (§3.10.1)
NO_PROPOSAL_CHOSEN, INVALID_KE_PAYLOAD = 14, 17
NAT_DETECTION_SOURCE_IP, NAT_DETECTION_DESTINATION_IP, COOKIE = 16388, 16389, 16390
NON_ESP_MARKER = b"\x00\x00\x00\x00"
HEADER_LEN = 28
MAX_MESSAGE = 8192  # an IKE_SA_INIT response with certificate requests is well below this
MAX_PAYLOADS = 32

# transform types and ids (IANA "IKEv2 Parameters")
ENCR, PRF, INTEG, DH = 1, 2, 3, 4
ENCR_AES_CBC, ENCR_AES_GCM_16 = 12, 20
PRF_HMAC_SHA1, PRF_HMAC_SHA2_256, PRF_HMAC_SHA2_384 = 2, 5, 6
AUTH_HMAC_SHA1_96, AUTH_HMAC_SHA2_256_128, AUTH_HMAC_SHA2_384_192 = 2, 12, 13
MODP_2048, ECP_256, CURVE25519 = 14, 19, 31
SUPPORTED_GROUPS = (ECP_256, CURVE25519, MODP_2048)
KEY_LENGTH_ATTR = 0x800E  # TV format attribute "Key Length" (bit 15 set)

# RFC 3526 group 14 prime, generator 2
_MODP_2048_P = int(
    "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404dd"
    "ef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7ed"
    "ee386bfb5a899fa5ae9f24117c4b1fe649286651ece45b3dc2007cb8a163bf0598da48361c55d39a69163fa8fd24cf5f"
    "83655d23dca3ad961c62f356208552bb9ed529077096966d670c354e4abc9804f1746c08ca18217c32905e462e36ce3b"
    "e39e772c180e86039b2783a2ec07a28fb5c55df06f4c52c9de2bcbf6955817183995497cea956ae515d2261898fa0510"
    "15728e5a8aacaa68ffffffffffffffff",
    16,
)


class KeyShare:
    """One side of a Diffie-Hellman exchange in ``group``: the public value we send in KE and, from the
    responder's KE, the shared secret g^ir (RFC 7296 §2.14: big endian, padded to the group's length)."""

    def __init__(self, group: int) -> None:
        self.group = group
        if group == ECP_256:
            self._ec = ec.generate_private_key(ec.SECP256R1())
            point = self._ec.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
            self.public = point[1:]  # x || y (RFC 5903)
        elif group == CURVE25519:
            self._x = x25519.X25519PrivateKey.generate()
            self.public = self._x.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        elif group == MODP_2048:
            # pyca/cryptography deprecates finite-field DH (a warning now, removal later), and the MODP
            # groups are all that many responders offer (strongSwan without its openssl plugin): the
            # arithmetic is one modular exponentiation, done by Python's own ``pow``. The exponent is
            # 256 bits (RFC 3526 §8: twice the group's ~112-bit strength) and used once.
            self._x_modp = secrets.randbits(256) | (1 << 255)
            self.public = pow(2, self._x_modp, _MODP_2048_P).to_bytes(256, "big")
        else:
            raise ValueError(f"unsupported DH group {group}")

    def shared(self, peer: bytes) -> bytes:
        """g^ir from the responder's KE data; ``ValueError`` when it is not a valid public value."""
        if self.group == ECP_256:
            point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + peer)
            return self._ec.exchange(ec.ECDH(), point)
        if self.group == CURVE25519:
            return self._x.exchange(x25519.X25519PublicKey.from_public_bytes(peer))
        y = int.from_bytes(peer, "big")
        if len(peer) != 256 or not 1 < y < _MODP_2048_P - 1:
            raise ValueError("MODP-2048 public value out of range")
        return pow(y, self._x_modp, _MODP_2048_P).to_bytes(256, "big")


def key_share(group: int) -> bytes:
    """A fresh public value for ``group`` (for a probe that never derives keys)."""
    return KeyShare(group).public


def _transform(ttype: int, tid: int, key_bits: int | None, last: bool) -> bytes:
    attrs = struct.pack(">HH", KEY_LENGTH_ATTR, key_bits) if key_bits else b""
    return struct.pack(">BxHBxH", 0 if last else 3, 8 + len(attrs), ttype, tid) + attrs


def _proposal(num: int, transforms: list[Transform], last: bool) -> bytes:
    body = b"".join(_transform(t, i, k, n == len(transforms) - 1) for n, (t, i, k) in enumerate(transforms))
    return struct.pack(">BxHBBBB", 0 if last else 2, 8 + len(body), num, 1, 0, len(transforms)) + body


Transform = tuple[int, int, int | None]  # (type, id, key length in bits)


def sa_payload_body(groups: tuple[int, ...] = SUPPORTED_GROUPS) -> bytes:
    prfs: list[Transform] = [(PRF, p, None) for p in (PRF_HMAC_SHA2_256, PRF_HMAC_SHA2_384, PRF_HMAC_SHA1)]
    dhs: list[Transform] = [(DH, g, None) for g in groups]
    cbc: list[Transform] = [(ENCR, ENCR_AES_CBC, 256), (ENCR, ENCR_AES_CBC, 128)]
    cbc += [(INTEG, a, None) for a in (AUTH_HMAC_SHA2_256_128, AUTH_HMAC_SHA2_384_192, AUTH_HMAC_SHA1_96)]
    gcm: list[Transform] = [(ENCR, ENCR_AES_GCM_16, 256), (ENCR, ENCR_AES_GCM_16, 128)]
    return _proposal(1, cbc + prfs + dhs, False) + _proposal(2, gcm + prfs + dhs, True)


def auth_sa_payload_body(groups: tuple[int, ...] = SUPPORTED_GROUPS) -> bytes:
    """The one suite a probe that authenticates can use (``formats/ike_auth.py``): AES-CBC-256,
    HMAC-SHA2-256-128, PRF-HMAC-SHA2-256 (strongSwan's and most responders' defaults), any of our groups."""
    suite: list[Transform] = [(ENCR, ENCR_AES_CBC, 256), (INTEG, AUTH_HMAC_SHA2_256_128, None)]
    suite += [(PRF, PRF_HMAC_SHA2_256, None)] + [(DH, g, None) for g in groups]
    return _proposal(1, suite, True)


def _payload(next_type: int, body: bytes) -> bytes:
    return struct.pack(">BxH", next_type, 4 + len(body)) + body


def _notify_body(ntype: int, data: bytes) -> bytes:
    return struct.pack(">BBH", 0, 0, ntype) + data


def nat_detection(spi_i: bytes, ip: str, port: int) -> bytes:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    return hashlib.sha1(spi_i + b"\x00" * 8 + socket.inet_pton(family, ip) + struct.pack(">H", port)).digest()  # noqa: S324 - RFC 7296 §2.23 mandates SHA-1


def build_sa_init(
    spi_i: bytes,
    group: int,
    *,
    local: tuple[str, int],
    remote: tuple[str, int],
    cookie: bytes | None = None,
    nat_t: bool = False,
    share: KeyShare | None = None,
    nonce: bytes | None = None,
    authenticating: bool = False,
) -> bytes:
    """One IKE_SA_INIT request (message id 0).

    ``authenticating``: offer only the suite ``formats/ike_auth.py`` implements, and hash a source that is
    not ours into NAT_DETECTION_SOURCE_IP, so the responder believes we are behind a NAT and puts the
    CHILD_SA's ESP inside UDP 4500 (RFC 3948), which an unprivileged socket can receive; strongSwan's own
    ``encap = yes`` does the same.
    """
    parts: list[tuple[int, bytes]] = []
    if cookie is not None:
        parts.append((PAYLOAD_NOTIFY, _notify_body(COOKIE, cookie)))
    parts.append((PAYLOAD_SA, auth_sa_payload_body() if authenticating else sa_payload_body()))
    public = share.public if share is not None else key_share(group)
    parts.append((PAYLOAD_KE, struct.pack(">HH", group, 0) + public))
    parts.append((PAYLOAD_NONCE, nonce if nonce is not None else os.urandom(32)))
    if authenticating:
        local = (socket.inet_ntoa(os.urandom(4)), int.from_bytes(os.urandom(2), "big"))
    parts.append((PAYLOAD_NOTIFY, _notify_body(NAT_DETECTION_SOURCE_IP, nat_detection(spi_i, *local))))
    parts.append((PAYLOAD_NOTIFY, _notify_body(NAT_DETECTION_DESTINATION_IP, nat_detection(spi_i, *remote))))
    body = b"".join(
        _payload(parts[i + 1][0] if i + 1 < len(parts) else 0, b) for i, (_, b) in enumerate(parts)
    )
    header = (
        spi_i
        + b"\x00" * 8
        + struct.pack(">BBBBII", parts[0][0], 0x20, IKE_SA_INIT, FLAG_INITIATOR, 0, HEADER_LEN + len(body))
    )
    return (NON_ESP_MARKER if nat_t else b"") + header + body


@dataclass
class SaInitResponse:
    """What a valid IKE_SA_INIT response said."""

    spi_r: bytes
    payloads: list[int] = field(default_factory=list)
    notifies: dict[int, bytes] = field(default_factory=dict)
    dh_group: int | None = None
    ke_data: bytes = b""
    nonce: bytes = b""
    message: bytes = b""  # the whole message without the non-ESP marker (signed in IKE_AUTH)

    @property
    def error(self) -> int | None:
        """The first error notify (types below 16384), if any."""
        errors = [t for t in self.notifies if t < 16384]
        return errors[0] if errors else None


def parse_sa_init_response(data: bytes, spi_i: bytes, *, nat_t: bool = False) -> SaInitResponse | None:
    """The response if ``data`` is a well-formed IKE_SA_INIT response to our SPI, else None."""
    if nat_t:
        if data[:4] != NON_ESP_MARKER:
            return None
        data = data[4:]
    if len(data) < HEADER_LEN or len(data) > MAX_MESSAGE:
        return None
    spi_i_r, spi_r = data[:8], data[8:16]
    next_type, version, xchg, flags, msg_id, length = struct.unpack(">BBBBII", data[16:28])
    if spi_i_r != spi_i or version >> 4 != 2 or xchg != IKE_SA_INIT or msg_id != 0 or length != len(data):
        return None
    if not flags & FLAG_RESPONSE or flags & FLAG_INITIATOR:
        return None
    resp = SaInitResponse(spi_r, message=data)
    offset = HEADER_LEN
    while next_type != 0:
        if len(resp.payloads) >= MAX_PAYLOADS or offset + 4 > len(data):
            return None
        following, _, plen = struct.unpack(">BBH", data[offset : offset + 4])
        if plen < 4 or offset + plen > len(data):
            return None
        body = data[offset + 4 : offset + plen]
        resp.payloads.append(next_type)
        if next_type == PAYLOAD_NOTIFY and len(body) >= 4:
            spi_size, ntype = body[1], struct.unpack(">H", body[2:4])[0]
            resp.notifies.setdefault(ntype, body[4 + spi_size :])
        elif next_type == PAYLOAD_KE and len(body) >= 2:
            resp.dh_group = struct.unpack(">H", body[:2])[0]
            resp.ke_data = body[4:]
        elif next_type == PAYLOAD_NONCE:
            resp.nonce = body
        next_type, offset = following, offset + plen
    if resp.error is None and not (PAYLOAD_SA in resp.payloads or COOKIE in resp.notifies):
        return None  # neither an answer nor a refusal: not an IKE_SA_INIT response we understand
    if resp.error is None and COOKIE not in resp.notifies and spi_r == b"\x00" * 8:
        return None  # an accepting responder must have chosen its SPI
    return resp
