"""The ``stun`` target: a STUN server as listed in an ICE configuration (probe: ``probes/stun.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reachwatch.config.types import Host, TargetBase, host_port


class StunTarget(TargetBase):
    """A STUN server (``stun:host:port`` in an ICE list)."""

    kind: Literal["stun"]
    host: Host = Field(
        min_length=1,
        description="the STUN server's host name or IP address (as in a `stun:host:port` ICE entry)",
    )
    port: int = Field(default=3478, ge=1, le=65535, description="the STUN server's UDP port")

    def destination(self) -> str:
        return host_port(self.host, self.port)
