"""The ``ikev2`` target: an IKEv2 responder and the first key exchange to offer (probe:
``probes/ikev2.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from reachwatch.config.secrets import SecretEnv, SecretFile
from reachwatch.config.targets.datastage import DataStageConfig
from reachwatch.config.targets.udp_control import UdpControl
from reachwatch.config.types import Duration, Host, InsideIPv4, TargetBase, host_port


class Ikev2Target(TargetBase):
    """An IKEv2 responder (strongSwan, libreswan, Windows RRAS, routers...). Without credentials the probe
    proves a live responder (IKE_SA_INIT); with a pre-shared key and ``ping_address`` it authenticates,
    gets a CHILD_SA and carries the data stage through it as ESP."""

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

    psk_file: SecretFile | None = Field(
        default=None,
        description=(
            "file holding the probe account's pre-shared key (IKE_AUTH with a PSK); with ping_address it "
            "turns the data stage on"
        ),
    )
    psk_env: SecretEnv | None = Field(
        default=None, description="environment variable holding the pre-shared key (instead of psk_file)"
    )
    identity: str = Field(
        default="reachwatch",
        min_length=1,
        max_length=255,
        description=(
            "our IKE identity (IDi) in IKE_AUTH: an IPv4 address, user@domain, or a name (FQDN); the "
            "responder picks the PSK by it"
        ),
    )
    ping_address: InsideIPv4 | None = Field(
        default=None,
        description=(
            "an IPv4 address inside the responder's traffic selectors (TSr) that answers ICMP echo; the "
            "data stage's echoes go there through ESP"
        ),
    )
    data_stage: DataStageConfig = Field(
        default_factory=DataStageConfig,
        description="what goes through the CHILD_SA (ICMP echoes to ping_address) before it counts as usable",
    )

    @model_validator(mode="after")
    def _credentials_and_ping_together(self) -> Ikev2Target:
        if self.psk_file and self.psk_env:
            raise ValueError("set psk_file or psk_env, not both")
        if (self.psk_file is None and self.psk_env is None) != (self.ping_address is None):
            raise ValueError("set a pre-shared key (psk_file or psk_env) and ping_address together")
        return self

    def data_stage_on(self) -> bool:
        """Whether the probe authenticates and carries data (credentials and ping_address are given)."""
        return self.ping_address is not None

    def destination(self) -> str:
        return host_port(self.host, self.port)

    def uses_nat_t(self) -> bool:
        return self.port == 4500 if self.nat_t is None else self.nat_t
