"""The ``wireguard`` target: the server's public key and the probe peer's own key (probe:
``probes/wireguard.py``)."""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from pydantic import Field, field_validator

from reachwatch.config.targets.udp_control import UdpControl
from reachwatch.config.types import Duration, TargetBase, host_port


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
    """A WireGuard endpoint; ``private_key_file`` holds the probe peer's own key (``wg genkey``)."""

    kind: Literal["wireguard"]
    host: str = Field(min_length=1)
    port: int = Field(default=51820, ge=1, le=65535)
    public_key: str  # the server's public key, base64 (as in wg-quick's [Peer] PublicKey)
    private_key_file: str = Field(min_length=1)
    preshared_key_file: str | None = None  # the peer's PresharedKey, base64, if the server sets one
    retransmit: Duration = 2.0  # resend a fresh initiation this often while waiting
    control: UdpControl | None = None

    @field_validator("public_key")
    @classmethod
    def _check_public_key(cls, value: str) -> str:
        wireguard_key(value, "public_key")
        return value

    def destination(self) -> str:
        return host_port(self.host, self.port)

    def sensitive_values(self) -> list[str]:
        return [*super().sensitive_values(), self.public_key]
