"""The "same port, other payload" control for TCP protocols that a censor may fingerprint.

When a protocol handshake (SOCKS5, HTTP CONNECT) meets silence after the TCP connect worked, the silence
alone cannot say "dead server" from "the censor drops this protocol's first packet". The control opens
a second connection to the same address and port and sends bytes that are NOT the protocol's (see
``CONTROL_PAYLOAD``): a live server reacts to them (an error answer or a FIN: microsocks closes, tinyproxy
says 400). A reaction to the control while the real handshake got nothing is protocol blocking; no
reaction either way attributes nothing. An RST does not count as a reaction: a censor can forge one.
"""

from __future__ import annotations

import asyncio

from reachwatch.net.dial import close_quietly
from reachwatch.net.errors import NetFailure

# printable, protocol-less, not a SOCKS version byte, not an HTTP method a proxy would act on
CONTROL_PAYLOAD = b"reachwatch control\r\n\r\n"


async def other_payload_gets_reaction(ip: str, port: int, wait: float) -> bool:
    """True when the server at ``ip:port`` answers ``CONTROL_PAYLOAD`` with bytes or a clean close."""
    try:
        async with asyncio.timeout(wait):
            reader, writer = await asyncio.open_connection(ip, port)
            try:
                writer.write(CONTROL_PAYLOAD)
                await writer.drain()
                await reader.read(1)  # any byte, or b"" for a FIN: both are a live server reacting
                return True
            finally:
                await close_quietly(writer)
    except (TimeoutError, OSError, NetFailure):
        return False
