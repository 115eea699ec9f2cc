"""The ``openvpn_tunnel`` target: the user's ``.ovpn`` and the endpoint the real client is run against (probe:
``probes/openvpn_tunnel.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reachwatch.config.secrets import SecretFile
from reachwatch.config.targets.canary import CanaryConfig
from reachwatch.config.targets.datastage import DataStageConfig
from reachwatch.config.types import Duration, Host, TargetBase, host_port


class OpenVpnTunnelTarget(TargetBase):
    """The user's ``.ovpn`` file plus the endpoint it is checked against. With a ``canary`` the client
    runs with a real tun device in its own user and network namespace and the data stage goes through
    the tunnel to the canary; without one, the client runs with ``--dev null`` and the tunnel is only held
    for ``hold`` seconds."""

    kind: Literal["openvpn_tunnel"]
    host: Host = Field(
        min_length=1, description="the server to run against (replaces the file's `remote` lines)"
    )
    port: int = Field(default=1194, ge=1, le=65535, description="its port (replaces the file's)")
    proto: Literal["udp", "tcp"] = Field(
        default="udp", description="udp or tcp (replaces the file's `proto`)"
    )
    config_file: SecretFile = Field(
        min_length=1, description="the user's .ovpn (it carries inline keys: mode 0600)"
    )
    auth_user_pass_file: SecretFile | None = Field(
        default=None, description="username and password lines, when the server asks for them"
    )
    hold: Duration = Field(
        default=10.0, description="how long the tunnel must stay up after Initialization Sequence Completed"
    )
    ping: int = Field(default=1, ge=1, le=60, description="keepalive interval in seconds (--ping)")
    ping_restart: int = Field(
        default=5, ge=2, le=300, description="seconds of silence that count as a cut (--ping-restart)"
    )
    openvpn_binary: str = Field(default="openvpn", description="the client to run (a path or a name on PATH)")
    canary: CanaryConfig | None = Field(
        default=None,
        description=(
            "an echo service reachable through the tunnel (usually the operator's canary abroad): turns on "
            "the data stage, with the client in its own network namespace (needs unprivileged user "
            "namespaces and /dev/net/tun)"
        ),
    )
    data_stage: DataStageConfig = Field(
        default_factory=DataStageConfig,
        description="what goes through the tunnel to the canary before it counts as usable (with canary)",
    )

    def data_stage_on(self) -> bool:
        """Whether the probe carries data through the tunnel (a canary is configured)."""
        return self.canary is not None

    def sensitive_values(self) -> list[str]:
        return [*super().sensitive_values(), *([self.canary.host] if self.canary else [])]

    def destination(self) -> str:
        return host_port(self.host, self.port)
