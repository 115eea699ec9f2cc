"""The ``tor_relay`` target: a relay's ORPort and the identity it must prove (probe: ``probes/tor_relay.py``).

Relay sets (``config.relaysets``) and the directory authorities (``config.dirauths``) generate these too.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from reachwatch.config.tor_identity import decode_ed25519_identity, normalize_fingerprint
from reachwatch.config.types import NAME_PATTERN, Host, TargetBase, host_port


class TorRelayTarget(TargetBase):
    """A relay's ORPort and the identity it must prove."""

    kind: Literal["tor_relay"]
    host: Host = Field(min_length=1, description="the relay's IP address or host name")
    port: int = Field(ge=1, le=65535, description="the relay's ORPort")
    fingerprint: str = Field(
        description=(
            "RSA identity the relay must prove on the link: `$HEX`, `HEX` or `HEX HEX ...` (40 hex digits)"
        )
    )
    ed25519_identity: str | None = Field(
        default=None,
        description=(
            "Ed25519 identity, base64 as in tor's fingerprint-ed25519 or the consensus `id ed25519`; "
            "proved too when set"
        ),
    )
    relay_set: str | None = Field(
        default=None,
        pattern=NAME_PATTERN,
        description=(
            "the relay set this target came from (set by relay-set expansion: the aggregate metrics group "
            "by it)"
        ),
    )
    relay_flags: tuple[str, ...] = Field(
        default=(),
        description="the relay's consensus flags (set by relay-set expansion, for the aggregate metrics)",
    )
    relay_country: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2}$",
        description="the relay's country, lower-case ISO code (set by relay-set expansion: Onionoo or GeoIP)",
    )
    relay_as: str | None = Field(
        default=None,
        pattern=r"^AS\d{1,10}$",
        description=(
            "the relay's autonomous system, `AS<number>` (set by relay-set expansion: Onionoo or ip2asn)"
        ),
    )
    per_target_metrics: bool = Field(
        default=True,
        description=(
            "false: no per-relay series, only the relay set's aggregates (relay-set members, for cardinality)"
        ),
    )

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: str) -> str:
        return normalize_fingerprint(value)

    @field_validator("ed25519_identity")
    @classmethod
    def _ed25519(cls, value: str | None) -> str | None:
        if value is not None:
            decode_ed25519_identity(value)
        return value

    def destination(self) -> str:
        return host_port(self.host, self.port)

    def sensitive_values(self) -> list[str]:
        values = [*super().sensitive_values(), self.fingerprint]
        if self.ed25519_identity:
            values.append(self.ed25519_identity)
        return values
