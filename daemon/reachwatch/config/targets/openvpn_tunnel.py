"""The ``openvpn_tunnel`` target: the user's ``.ovpn`` and the endpoint the real client is run against (probe:
``probes/openvpn_tunnel.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reachwatch.config.types import Duration, TargetBase


class OpenVpnTunnelTarget(TargetBase):
    """The user's ``.ovpn`` file plus the endpoint it is checked against."""

    kind: Literal["openvpn_tunnel"]
    host: str = Field(min_length=1)
    port: int = Field(default=1194, ge=1, le=65535)
    proto: Literal["udp", "tcp"] = "udp"  # replaces the file's proto
    config_file: str = Field(min_length=1)
    auth_user_pass_file: str | None = None
    hold: Duration = 10.0  # how long the tunnel must stay up after Initialization Sequence Completed
    ping: int = Field(default=1, ge=1, le=60)  # keepalive interval in seconds (--ping)
    ping_restart: int = Field(default=5, ge=2, le=300)  # seconds of silence that count as a cut
    openvpn_binary: str = "openvpn"  # the client to run (path or name on PATH)

    def destination(self) -> str:
        return f"{self.host}:{self.port}"
