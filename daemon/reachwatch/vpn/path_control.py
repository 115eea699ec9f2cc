"""The "is the path fine?" control shared by the UDP VPN probes, and the tally of unauthentic replies.

A key-less or wrong-key VPN server is silent, and so is a censored one; silence alone is never evidence.
The rule that turns silence into ``protocol_blocking`` evidence, and its memory of who answered before,
is ``probes/handshakes.py``; this module gives it its "the path works now" half for UDP: a non-VPN
datagram to a ``control`` endpoint on the same route (an echo or DNS service on the VPN host, ideally)
answered while our handshake was not.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass

from reachwatch.config.targets.udp_control import UdpControl
from reachwatch.failures import Failure, Stage
from reachwatch.net.dial import pin_address
from reachwatch.net.errors import NetFailure
from reachwatch.net.udp import open_udp


async def control_answers(control: UdpControl) -> bool:
    """Whether the control answers a neutral datagram (first byte 0x00: no VPN opcode or message type)."""
    try:
        ip = await pin_address(control.host)
        sock = await open_udp(ip, control.port)
    except NetFailure:
        return False
    try:
        sock.send(b"\x00reachwatch-path-check" + os.urandom(8))
        await sock.recv()
        return True
    except NetFailure:
        return False
    finally:
        sock.close()


async def control_result(task: asyncio.Task[bool] | None, budget: float) -> bool | None:
    """The control's answer, waited for at most ``budget`` seconds once the handshake is over (what is
    left of the attempt); ``None`` when no control is configured. Not answering in time is ``False``."""
    if task is None:
        return None
    try:
        async with asyncio.timeout(max(0.05, budget)):
            return await task
    except TimeoutError:
        return False


@dataclass
class ReplyTally:
    """Replies that came back but were not an authentic answer (forged, garbage, another session's).

    Lives outside the handshake coroutine so the count survives the deadline cancelling it: "only
    unauthentic replies" is ``protocol_error``, "nothing at all" is silence.
    """

    rejected: int = 0
    limit: int = 64  # a flood of junk ends the attempt early instead of costing CPU until the deadline

    def reject(self) -> None:
        self.rejected += 1
        if self.rejected >= self.limit:
            raise NetFailure(Failure.PROTOCOL_ERROR, Stage.PROTOCOL_HANDSHAKE, "too many unauthentic replies")
