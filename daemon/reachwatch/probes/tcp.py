"""``tcp``: can a TCP connection to host:port be opened from here?

Success means the three-way handshake completed. A SYN that goes unanswered until the deadline is
``connect``/``generic_timeout_error`` (what an IP or port blackhole looks like); an RST is
``connection_refused`` (closed port, or a censor that forges one).
"""

from __future__ import annotations

from reachwatch.config.targets.tcp import TcpTarget
from reachwatch.model import ProbeResult
from reachwatch.net.dial import close_quietly
from reachwatch.probes.base import ProbeContext, ProbeSpec, open_tcp


async def probe(target: TcpTarget, ctx: ProbeContext) -> ProbeResult:
    _, _, writer = await open_tcp(ctx, target.host, target.port)
    await close_quietly(writer)
    return ctx.succeed()


SPEC = ProbeSpec(kind="tcp", target_model=TcpTarget, probe=probe, description="TCP connect")
