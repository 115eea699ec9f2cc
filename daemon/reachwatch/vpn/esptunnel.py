"""An IPsec CHILD_SA in user space: IP packets in and out as ESP in UDP 4500 (RFC 3948).

After IKE_AUTH (``vpn/ikeauth.py``) the probe holds the CHILD_SA's keys; this tunnel seals each inner
packet as ESP to the responder's SPI on the same UDP 4500 socket the IKE SA uses (the flow a censor already
saw) and opens what comes back to our SPI. The responder's kernel (XFRM) decrypts, routes and answers:
no XFRM state, tun device or privilege on our side. Datagrams behind the non-ESP marker are IKE (the
responder's liveness checks) and NAT-keepalives are one byte: both are skipped here.
"""

from __future__ import annotations

from reachwatch.failures import Failure
from reachwatch.formats import esp
from reachwatch.formats.ike_auth import ChildKeys
from reachwatch.net.errors import NetFailure
from reachwatch.net.udp import UdpSocket

MAX_UNAUTHENTIC = 64  # ESP packets to our SPI that fail their check before the tunnel is called broken


def _is_esp(datagram: bytes) -> bool:
    return len(datagram) > 8 and datagram[:4] != b"\x00\x00\x00\x00"


class EspTunnel:
    """``vpn.ping.PacketTunnel`` over one CHILD_SA."""

    def __init__(self, sock: UdpSocket, keys: ChildKeys) -> None:
        self.sock = sock
        self.keys = keys
        self.seq = 1  # ESP sequence numbers start at 1 (RFC 4303 §3.3.3)
        self.unauthentic = 0

    def send(self, packet: bytes) -> None:
        k = self.keys
        self.sock.send(esp.seal(k.spi_out, self.seq, k.enc_out, k.integ_out, packet))
        self.seq += 1

    async def recv(self) -> bytes:
        k = self.keys
        while True:
            datagram = await self.sock.recv(_is_esp)
            opened = esp.open_packet(k.spi_in, k.enc_in, k.integ_in, datagram)
            if opened is None:
                self.unauthentic += 1
                if self.unauthentic >= MAX_UNAUTHENTIC:
                    raise NetFailure(Failure.PROTOCOL_ERROR, self.sock.stage, "ESP packets fail to open")
                continue
            return opened[1]
