"""The UDP path control of the UDP VPN kinds (``openvpn``, ``wireguard``, ``ikev2``): an endpoint on the same
route that answers any datagram (runtime: ``vpn/path_control.py``)."""

from __future__ import annotations

from pydantic import Field

from reachwatch.config.types import Host, StrictModel


class UdpControl(StrictModel):
    """A UDP endpoint on the same route as the target that answers any datagram (echo, DNS...)."""

    host: Host = Field(
        min_length=1,
        description="host of a UDP service on the same route as the target (often the VPN host itself)",
    )
    port: int = Field(
        ge=1, le=65535, description="its UDP port (an echo or DNS service answers any datagram)"
    )
