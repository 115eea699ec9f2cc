"""A WireGuard tunnel in user space: IP packets in and out as transport messages of one session.

After the probe's handshake (``formats/noise.py``) the session keys seal each inner packet into a type-4
message on the same UDP socket (the same flow a censor already saw), and open the server's replies; no
tun device, no kernel module, no privilege. Counters start at 0 and only grow (the responder drops
replays); the server can send nothing until our first transport message confirms the keys, which the
data stage's first packet does.
"""

from __future__ import annotations

from reachwatch.failures import Failure
from reachwatch.formats import noise
from reachwatch.net.errors import NetFailure
from reachwatch.net.udp import UdpSocket

MAX_UNAUTHENTIC = 64  # transport messages that fail to open before the tunnel is called broken


class WireGuardTunnel:
    """``vpn.ping.PacketTunnel`` over a WireGuard session."""

    def __init__(self, sock: UdpSocket, session: noise.Session) -> None:
        self.sock = sock
        self.session = session
        self.counter = 0
        self.unauthentic = 0

    def send(self, packet: bytes) -> None:
        self.sock.send(noise.seal_transport(self.session, self.counter, packet))
        self.counter += 1

    async def recv(self) -> bytes:
        while True:
            message = await self.sock.recv(lambda d: d[:1] == bytes([noise.MSG_TRANSPORT]))
            opened = noise.open_transport(self.session, message)
            if opened is None:
                self.unauthentic += 1
                if self.unauthentic >= MAX_UNAUTHENTIC:
                    raise NetFailure(Failure.PROTOCOL_ERROR, self.sock.stage, "transport fails to open")
                continue
            plaintext = opened[1]
            if plaintext:  # an empty one is a keepalive
                return plaintext
