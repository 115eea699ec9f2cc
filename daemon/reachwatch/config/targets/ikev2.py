"""The ``ikev2`` target: an IKEv2 responder and the first key exchange to offer (probe:
``probes/ikev2.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from reachwatch.config.targets.udp_control import UdpControl
from reachwatch.config.types import Duration, Host, TargetBase, host_port


class Ikev2Target(TargetBase):
    """An IKEv2 responder (strongSwan, libreswan, Windows RRAS, routers...)."""

    kind: Literal["ikev2"]
    host: Host = Field(min_length=1, description="the IKEv2 responder's host name or IP address")
    port: int = Field(default=500, ge=1, le=65535, description="UDP port: 500, or 4500 (NAT traversal)")
    nat_t: bool | None = Field(
        default=None, description="send the non-ESP marker (NAT traversal); unset: exactly when port is 4500"
    )
    dh_group: Literal[14, 19, 31] = Field(
        default=19, description="the key exchange group sent first; the SA offers all three"
    )
    retransmit: Duration = Field(default=2.0, description="resend IKE_SA_INIT this often while waiting")
    control: UdpControl | None = Field(
        default=None,
        description=(
            "a UDP service on the same route: an answer to it while IKE is silent is protocol_blocking "
            "evidence"
        ),
    )

    def destination(self) -> str:
        return host_port(self.host, self.port)

    def uses_nat_t(self) -> bool:
        return self.port == 4500 if self.nat_t is None else self.nat_t
