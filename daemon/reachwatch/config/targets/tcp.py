"""The ``tcp`` target: a host and port to open a TCP connection to (probe: ``probes/tcp.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reachwatch.config.types import Host, TargetBase, host_port


class TcpTarget(TargetBase):
    """A host and port to connect to."""

    kind: Literal["tcp"]
    host: Host = Field(min_length=1, description="host name or IP address to connect to")
    port: int = Field(ge=1, le=65535, description="TCP port")

    def destination(self) -> str:
        return host_port(self.host, self.port)
