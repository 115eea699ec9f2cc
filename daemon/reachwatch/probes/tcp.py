"""``tcp``: can a TCP connection to host:port be opened from here?

Success means the three-way handshake completed. A SYN that goes unanswered until the deadline is
``connect``/``generic_timeout_error`` (what an IP or port blackhole looks like); an RST is
``connection_refused`` (closed port, or a censor that forges one).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reachwatch.config.types import TargetBase, host_port
from reachwatch.model import ProbeResult
from reachwatch.net.dial import close_quietly
from reachwatch.probes.base import ProbeContext, ProbeSpec, open_tcp


class TcpTarget(TargetBase):
    """A host and port to connect to."""

    kind: Literal["tcp"]
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)

    def destination(self) -> str:
        return host_port(self.host, self.port)


async def probe(target: TcpTarget, ctx: ProbeContext) -> ProbeResult:
    _, _, writer = await open_tcp(ctx, target.host, target.port)
    await close_quietly(writer)
    return ctx.succeed()


SPEC = ProbeSpec(kind="tcp", target_model=TcpTarget, probe=probe, description="TCP connect")
