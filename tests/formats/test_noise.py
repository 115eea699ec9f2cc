"""WireGuard's Noise pieces on bytes alone: the XChaCha20-Poly1305 known answer, cookie-reply framing,
forged responses. The real wireguard-go exchange (including a cookie reply under load) is
``tests/vpn/test_wireguard.py``."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_encrypt
from nacl.exceptions import CryptoError

from reachwatch.formats import noise

# draft-irtf-cfrg-xchacha-03, appendix A.3.1 (AEAD_XChaCha20_Poly1305)
XCHACHA_KEY = bytes(range(0x80, 0xA0))
XCHACHA_NONCE = bytes(range(0x40, 0x58))
XCHACHA_AAD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
XCHACHA_PLAIN = (
    b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
    b"sunscreen would be it."
)
XCHACHA_SEALED = bytes.fromhex(
    "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
    "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
    "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
    "21f9664c97637da9768812f615c68b13b52e"
    "c0875924c1c7987947deafd8780acf49"  # the tag
)


def test_xchacha20poly1305_opens_the_draft_vector() -> None:
    opened = noise.xchacha20poly1305_open(XCHACHA_KEY, XCHACHA_NONCE, XCHACHA_SEALED, XCHACHA_AAD)
    assert opened == XCHACHA_PLAIN


@pytest.mark.parametrize("flip", [0, 60, len(XCHACHA_SEALED) - 1], ids=["ciphertext", "middle", "tag"])
def test_xchacha20poly1305_refuses_a_flipped_bit(flip: int) -> None:
    damaged = bytearray(XCHACHA_SEALED)
    damaged[flip] ^= 0x01
    with pytest.raises(CryptoError):
        noise.xchacha20poly1305_open(XCHACHA_KEY, XCHACHA_NONCE, bytes(damaged), XCHACHA_AAD)


def _cookie_reply(init: noise.Initiation, server_pub: bytes, cookie: bytes, *, mac1: bytes) -> bytes:
    """A type-3 message as the responder builds it (whitepaper 5.4.7): sealed under
    HASH(LABEL_COOKIE || server public key), with the initiation's MAC1 as associated data."""
    nonce = os.urandom(24)
    key = noise.hash_(noise.LABEL_COOKIE, server_pub)
    sealed = crypto_aead_xchacha20poly1305_ietf_encrypt(cookie, mac1, nonce, key)
    return b"\x03\x00\x00\x00" + init.sender_index.to_bytes(4, "little") + nonce + sealed


def test_cookie_reply_for_our_initiation_yields_the_cookie() -> None:
    client, server_pub = X25519PrivateKey.generate(), noise.raw_public(X25519PrivateKey.generate())
    init = noise.build_initiation(client, server_pub, noise.tai64n())
    cookie = os.urandom(16)
    reply = _cookie_reply(init, server_pub, cookie, mac1=init.mac1)
    assert len(reply) == noise.COOKIE_LEN
    assert noise.open_cookie_reply(init, server_pub, reply) == cookie


def test_cookie_reply_for_another_initiation_or_server_is_refused() -> None:
    client = X25519PrivateKey.generate()
    server_pub, other_pub = (noise.raw_public(X25519PrivateKey.generate()) for _ in range(2))
    init = noise.build_initiation(client, server_pub, noise.tai64n())
    other_mac1 = _cookie_reply(init, server_pub, os.urandom(16), mac1=os.urandom(16))
    other_server = _cookie_reply(init, other_pub, os.urandom(16), mac1=init.mac1)
    assert noise.open_cookie_reply(init, server_pub, other_mac1) is None
    assert noise.open_cookie_reply(init, server_pub, other_server) is None
    wrong_index = bytearray(_cookie_reply(init, server_pub, os.urandom(16), mac1=init.mac1))
    wrong_index[4] ^= 0xFF
    assert noise.open_cookie_reply(init, server_pub, bytes(wrong_index)) is None


@pytest.mark.parametrize("ephemeral", ["zero", "random"])
def test_forged_response_does_not_authenticate(ephemeral: str) -> None:
    client, server = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    server_pub = noise.raw_public(server)
    init = noise.build_initiation(client, server_pub, noise.tai64n())
    forged = bytearray(92)
    forged[0] = 2
    if ephemeral == "random":
        forged[12:44] = noise.raw_public(X25519PrivateKey.generate())
    forged[8:12] = init.sender_index.to_bytes(4, "little")
    forged[60:76] = noise.mac(noise.hash_(noise.LABEL_MAC1, noise.raw_public(client)), bytes(forged[:60]))
    assert noise.consume_response(init, client, server_pub, bytes(forged), None) is None
    assert len(init.packet) == noise.INITIATION_LEN


def test_transport_messages_round_trip_between_the_two_sides_of_a_session() -> None:
    ours = noise.Session(local_index=11, remote_index=22, send_key=os.urandom(32), recv_key=os.urandom(32))
    theirs = noise.Session(local_index=22, remote_index=11, send_key=ours.recv_key, recv_key=ours.send_key)
    sealed = noise.seal_transport(ours, 5, b"an inner packet")
    assert len(sealed) == 16 + 16 + 16  # header, 15 bytes padded to 16, tag
    assert noise.open_transport(theirs, sealed) == (5, b"an inner packet" + b"\x00")
    assert noise.open_transport(ours, sealed) is None  # our own message is not for our index
    damaged = bytearray(sealed)
    damaged[-1] ^= 1
    assert noise.open_transport(theirs, bytes(damaged)) is None
    assert noise.open_transport(theirs, sealed[:31]) is None
