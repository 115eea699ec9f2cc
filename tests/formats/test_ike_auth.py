"""IKE_AUTH and ESP layouts on bytes alone: key agreement, the SK payload and ESP round-trip and refuse any
changed byte, AUTH verifies only with the same PSK, and arbitrary input (fuzzed) is refused, never raised
on. The real exchange with strongSwan's charon is in tests/vpn/test_ikev2.py."""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reachwatch.formats import esp, ike_auth
from reachwatch.formats import ike_packets as ike


@pytest.mark.parametrize("group", ike.SUPPORTED_GROUPS)
def test_both_sides_of_a_key_exchange_agree_on_g_ir(group: int) -> None:
    ours, theirs = ike.KeyShare(group), ike.KeyShare(group)
    assert ours.shared(theirs.public) == theirs.shared(ours.public)
    assert len(ours.shared(theirs.public)) == {ike.ECP_256: 32, ike.CURVE25519: 32, ike.MODP_2048: 256}[group]


def test_a_modp_public_value_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match="range"):
        ike.KeyShare(ike.MODP_2048).shared(b"\x00" * 255 + b"\x01")


def test_prf_plus_chains_hmac_sha256_blocks_as_rfc_7296_says() -> None:
    key, seed = b"k" * 32, b"seed"
    t1 = hmac.new(key, seed + b"\x01", hashlib.sha256).digest()
    t2 = hmac.new(key, t1 + seed + b"\x02", hashlib.sha256).digest()
    assert ike_auth.prf_plus(key, seed, 48) == (t1 + t2)[:48]


def _keys() -> ike_auth.IkeKeys:
    return ike_auth.derive_ike_keys(
        os.urandom(256), os.urandom(32), os.urandom(32), os.urandom(8), os.urandom(8)
    )


def _respond(keys: ike_auth.IkeKeys, parts: list[tuple[int, bytes]], exchange: int, msg_id: int) -> bytes:
    """The responder's side of an encrypted message, assembled here from the RFC, not from ``seal``."""
    inner = ike_auth.chain(parts)
    pad = (-(len(inner) + 1)) % 16
    iv = os.urandom(16)
    ct = ike_auth.cbc_encrypt(keys.sk_er, iv, inner + bytes(pad) + bytes([pad]))
    length = 28 + 4 + 16 + len(ct) + 16
    header = keys.spi_i + keys.spi_r + struct.pack(">BBBBII", 46, 0x20, exchange, 0x20, msg_id, length)
    signed = header + struct.pack(">BxH", parts[0][0], 4 + 16 + len(ct) + 16) + iv + ct
    return signed + hmac.new(keys.sk_ar, signed, hashlib.sha256).digest()[:16]


def test_the_responders_encrypted_answer_opens_and_a_changed_byte_does_not() -> None:
    keys = _keys()
    parts = [
        (ike_auth.PAYLOAD_IDR, b"\x02\x00\x00\x00server"),
        (ike_auth.PAYLOAD_NOTIFY, b"\x00\x00\x00\x18"),
    ]
    message = _respond(keys, parts, ike_auth.IKE_AUTH, 1)
    assert ike_auth.open_message(keys, message, ike_auth.IKE_AUTH, 1) == parts
    assert ike_auth.open_message(keys, message, ike_auth.IKE_AUTH, 2) is None  # another request's answer
    for i in range(len(message)):
        damaged = message[:i] + bytes([message[i] ^ 1]) + message[i + 1 :]
        assert ike_auth.open_message(keys, damaged, ike_auth.IKE_AUTH, 1) is None, i


def test_our_request_is_sealed_with_the_initiators_keys() -> None:
    keys = _keys()
    message = ike_auth.seal(keys, ike_auth.IKE_AUTH, 1, [(ike_auth.PAYLOAD_IDI, b"\x02\x00\x00\x00me")])
    assert struct.unpack(">I", message[24:28])[0] == len(message) and message[16] == ike_auth.PAYLOAD_SK
    assert hmac.new(keys.sk_ai, message[:-16], hashlib.sha256).digest()[:16] == message[-16:]
    plain = ike_auth.cbc_decrypt(keys.sk_ei, message[32:48], message[48:-16])
    assert plain[: 4 + 6] == b"\x00\x00\x00\x0a\x02\x00\x00\x00me"


def test_the_responders_auth_verifies_only_with_the_same_psk() -> None:
    keys, message2, idr = _keys(), os.urandom(300), ike_auth.id_body("server")
    auth = ike_auth.psk_auth(b"secret", message2, keys.ni, keys.sk_pr, idr)
    parts = [(ike_auth.PAYLOAD_IDR, idr), (ike_auth.PAYLOAD_AUTH, b"\x02\x00\x00\x00" + auth)]
    assert ike_auth.parse_auth_response(parts, keys, message2, b"secret").authentic
    assert not ike_auth.parse_auth_response(parts, keys, message2, b"other").authentic


def test_esp_round_trips_and_refuses_a_changed_byte_or_another_spi() -> None:
    spi, enc, integ = b"\xc1\x00\x00\x01", os.urandom(32), os.urandom(32)
    inner = b"\x45" + os.urandom(1227)
    packet = esp.seal(spi, 7, enc, integ, inner)
    assert (len(packet) - 8 - 16) % 16 == 0
    assert esp.open_packet(spi, enc, integ, packet) == (7, inner)
    assert esp.open_packet(b"\xc1\x00\x00\x02", enc, integ, packet) is None
    for i in (0, 5, 9, len(packet) // 2, len(packet) - 1):
        damaged = packet[:i] + bytes([packet[i] ^ 0x80]) + packet[i + 1 :]
        assert esp.open_packet(spi, enc, integ, damaged) is None, i


@given(st.binary(max_size=600))
def test_arbitrary_bytes_are_refused_never_raised_on(data: bytes) -> None:
    keys = ike_auth.IkeKeys(
        data[:8].ljust(8, b"\0"), data[8:16].ljust(8, b"\0"), b"", b"", *([b"k" * 32] * 7)
    )
    assert ike_auth.open_message(keys, data, ike_auth.IKE_AUTH, 1) is None
    assert esp.open_packet(data[:4], b"e" * 32, b"i" * 32, data) is None
    parts = ike_auth.parse_payloads(ike_auth.PAYLOAD_IDR, data)
    if parts is not None:
        ike_auth.parse_auth_response(parts, keys, b"", b"psk")
