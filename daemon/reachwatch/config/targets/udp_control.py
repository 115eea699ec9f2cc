"""The UDP path control of the UDP VPN kinds (``openvpn``, ``wireguard``, ``ikev2``): an endpoint on the same
route that answers any datagram (runtime: ``vpn/path_control.py``)."""

from __future__ import annotations

from pydantic import Field

from reachwatch.config.types import Host, StrictModel


class UdpControl(StrictModel):
    """A UDP endpoint on the same route as the target that answers any datagram (echo, DNS...)."""

    host: Host = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
