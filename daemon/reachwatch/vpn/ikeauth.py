"""The IKE_AUTH exchange on UDP 4500: authenticate with a pre-shared key and get one CHILD_SA.

The probe did IKE_SA_INIT (``probes/ikev2.py``) with a NAT_DETECTION_SOURCE_IP that is not ours, so the
responder believes we are behind a NAT: IKE moves to port 4500 behind the non-ESP marker (RFC 7296 §2.23)
and the CHILD_SA's ESP travels in UDP on that same port (RFC 3948), which an unprivileged UDP socket can
send and receive. The request (``formats/ike_auth.py``) is resent unchanged every ``retransmit`` seconds
until an answer to it passes its integrity check (the responder answers a retransmission from its cache,
§2.1); answers that do not (someone else's, forged, damaged) are counted, never trusted.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from reachwatch.formats import ike_auth
from reachwatch.formats.ike_packets import NON_ESP_MARKER
from reachwatch.net.udp import UdpSocket
from reachwatch.vpn.path_control import ReplyTally


@dataclass
class AuthOutcome:
    """The responder's checked answer and, when it created a CHILD_SA, its ESP keys."""

    response: ike_auth.AuthResponse
    child: ike_auth.ChildKeys | None


def _is_ike(datagram: bytes) -> bool:
    return datagram[:4] == NON_ESP_MARKER


async def authenticate(
    sock: UdpSocket,
    keys: ike_auth.IkeKeys,
    *,
    message1: bytes,
    message2: bytes,
    identity: str,
    psk: bytes,
    retransmit: float,
    tally: ReplyTally,
) -> AuthOutcome:
    """Run IKE_AUTH (message id 1) until answered; bounded by the caller's deadline.

    ``message1``/``message2``: the IKE_SA_INIT request we sent and its answer, without the marker (each
    side signs its own).
    """
    spi_in = bytes([1 + os.urandom(1)[0] % 254]) + os.urandom(3)  # SPIs 0-255 are reserved (RFC 4303 §2.1)
    request, _ = ike_auth.build_auth_request(keys, message1, identity, psk, spi_in)
    while True:
        sock.send(NON_ESP_MARKER + request)
        try:
            async with asyncio.timeout(retransmit):
                while True:
                    datagram = await sock.recv(_is_ike)
                    parts = ike_auth.open_message(keys, datagram[4:], ike_auth.IKE_AUTH, 1)
                    if parts is None:
                        tally.reject()
                        continue
                    response = ike_auth.parse_auth_response(parts, keys, message2, psk)
                    child = None
                    if response.authentic and response.esp_spi is not None and response.error is None:
                        child = ike_auth.derive_child_keys(keys, response.esp_spi, spi_in)
                    return AuthOutcome(response, child)
        except TimeoutError:
            continue


def leave(sock: UdpSocket, keys: ike_auth.IkeKeys) -> None:
    """Delete the IKE SA (and its CHILD_SA) on the responder: a probe must not leave sessions behind on a
    scarce endpoint. Not waited for: the responder's own liveness checks clean up if it is lost."""
    sock.send(NON_ESP_MARKER + ike_auth.build_delete(keys, 2))
