"""The ``wireguard`` target: the server's public key and the probe peer's own key (probe:
``probes/wireguard.py``)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from reachwatch.config.secrets import SecretFile
from reachwatch.config.targets.datastage import DataStageConfig
from reachwatch.config.targets.udp_control import UdpControl
from reachwatch.config.types import Duration, Host, TargetBase, host_port


def wireguard_key(value: str, field: str) -> bytes:
    """A WireGuard key as wg(8) writes it (base64 of 32 bytes); ``ValueError`` naming ``field`` only."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{field} is not base64") from None
    if len(raw) != 32:
        raise ValueError(f"{field} must decode to 32 bytes")
    return raw


class WireGuardTarget(TargetBase):
    """A WireGuard endpoint and the probe peer's own key. With ``tunnel_address`` and ``ping_address`` the
    probe also carries data through the tunnel."""

    kind: Literal["wireguard"]
    host: Host = Field(min_length=1, description="the WireGuard endpoint's host name or IP address")
    port: int = Field(default=51820, ge=1, le=65535, description="its UDP port")
    public_key: str = Field(description="the server's public key, base64 (as in wg-quick's [Peer] PublicKey)")
    private_key_file: SecretFile = Field(
        min_length=1,
        description="the probe peer's own private key (`wg genkey`), configured as a peer on the server",
    )
    preshared_key_file: SecretFile | None = Field(
        default=None, description="the peer's PresharedKey, base64, when the server sets one"
    )
    retransmit: Duration = Field(
        default=2.0, description="resend a fresh initiation this often while waiting"
    )
    control: UdpControl | None = Field(
        default=None,
        description=(
            "a UDP service on the same route: an answer to it while WireGuard is silent is "
            "protocol_blocking evidence"
        ),
    )
    tunnel_address: str | None = Field(
        default=None,
        description=(
            "the probe peer's own IPv4 address inside the tunnel (wg-quick's Address, inside the peer's "
            "AllowedIPs on the server); with ping_address it turns the data stage on"
        ),
    )
    ping_address: str | None = Field(
        default=None,
        description=(
            "an IPv4 address inside the tunnel that answers ICMP echo, usually the server's own tunnel "
            "address (often the DNS of the wg-quick file); the data stage's echoes go there"
        ),
    )
    data_stage: DataStageConfig = Field(
        default_factory=DataStageConfig,
        description="what goes through the tunnel (ICMP echoes to ping_address) before it counts as usable",
    )

    @field_validator("tunnel_address", "ping_address")
    @classmethod
    def _ipv4(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ipaddress.IPv4Address(value.split("/", 1)[0])
            except ValueError:
                raise ValueError("must be an IPv4 address (IPv6 inside tunnels is not probed yet)") from None
            return value.split("/", 1)[0]
        return value

    @model_validator(mode="after")
    def _both_addresses(self) -> WireGuardTarget:
        if (self.tunnel_address is None) != (self.ping_address is None):
            raise ValueError("set tunnel_address and ping_address together (the data stage needs both)")
        return self

    def data_stage_on(self) -> bool:
        """Whether the probe carries data after the handshake (both tunnel addresses are given)."""
        return self.tunnel_address is not None and self.ping_address is not None

    @field_validator("public_key")
    @classmethod
    def _check_public_key(cls, value: str) -> str:
        wireguard_key(value, "public_key")
        return value

    def destination(self) -> str:
        return host_port(self.host, self.port)

    def sensitive_values(self) -> list[str]:
        return [*super().sensitive_values(), self.public_key]
