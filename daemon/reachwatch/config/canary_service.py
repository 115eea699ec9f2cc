"""The ``canary:`` section: what ``reachwatch canary`` (runtime: ``canaryd.py``) listens on and how it
limits what it answers.

The canary is the far end of the ``port_survey`` target and of the proxy kinds' ``canary`` with
``mode: reachwatch``. It answers only requests keyed with the shared secret (``formats/canary.py``), so it
is no open reflector: a UDP reply is never larger than its request, and replies are rate-limited per
source address and in total. The daemon ignores this section; the canary ignores every other one.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, Field, model_validator

from reachwatch.config.ports import SURVIVOR_PORTS, PortList
from reachwatch.config.targets.canary import CanarySecret, one_secret
from reachwatch.config.types import Duration, parse_byte_count

DEFAULT_CANARY_METRICS = "127.0.0.1:10492"


class CanaryServiceConfig(CanarySecret):
    """``reachwatch canary``: an echo service on TCP and UDP port lists that answers keyed requests only."""

    listen_addresses: list[str] = Field(
        default_factory=lambda: ["0.0.0.0"],
        min_length=1,
        max_length=8,
        description='IP addresses to listen on ("0.0.0.0": all IPv4; add "::" for all IPv6)',
    )
    tcp_ports: PortList = Field(
        default=SURVIVOR_PORTS,
        description=(
            'TCP ports (ranges allowed: [22, 443, "8000-8010"]); ports below 1024 need '
            "CAP_NET_BIND_SERVICE (deploy/systemd/reachwatch-canary.service)"
        ),
    )
    udp_ports: PortList = Field(default=SURVIVOR_PORTS, description="UDP ports (as tcp_ports)")
    per_source_rate: float = Field(
        default=20.0,
        gt=0.0,
        le=10000.0,
        description="replies per second to one source address (an IPv6 /64 counts as one source)",
    )
    per_source_burst: int = Field(
        default=100, ge=1, le=100000, description="replies one source may get at once before the rate applies"
    )
    global_rate: float = Field(
        default=2000.0, gt=0.0, le=1000000.0, description="replies per second to all sources together"
    )
    max_connections: int = Field(default=256, ge=1, le=65536, description="TCP connections held at once")
    max_connections_per_source: int = Field(
        default=16, ge=1, le=65536, description="TCP connections one source address may hold at once"
    )
    request_timeout: Duration = Field(
        default=5.0, description="a TCP client must send its whole request within this, or is closed"
    )
    echo_max_bytes: Annotated[int, BeforeValidator(parse_byte_count)] = Field(
        default=32 * 1024 * 1024,
        ge=0,
        le=1024 * 1024 * 1024,
        description="an echo session (proxy data stage) ends after echoing this much (bytes, or 32MiB)",
    )
    echo_max_seconds: Duration = Field(default=330.0, description="an echo session ends after this long")
    metrics_listen_address: str = Field(
        default=DEFAULT_CANARY_METRICS,
        description="where the canary serves /metrics (loopback by default, like the daemon)",
    )

    @model_validator(mode="after")
    def _needs_secret_and_ports(self) -> CanaryServiceConfig:
        one_secret(self, "canary")
        if not self.tcp_ports and not self.udp_ports:
            raise ValueError("canary: tcp_ports and udp_ports are both empty")
        return self
