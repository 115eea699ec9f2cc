"""The ``tor_dirport`` target: a DirPort and the identity its descriptor must carry (probe:
``probes/tor_dirport.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from reachwatch.config.tor_identity import normalize_fingerprint
from reachwatch.config.types import Host, TargetBase, host_port


class TorDirPortTarget(TargetBase):
    """A DirPort, and optionally the identity its descriptor must carry."""

    kind: Literal["tor_dirport"]
    host: Host = Field(min_length=1, description="the relay's or authority's IP address or host name")
    port: int = Field(ge=1, le=65535, description="its DirPort")
    fingerprint: str | None = Field(
        default=None, description="expected RSA identity: the served descriptor must be signed by it"
    )

    @field_validator("fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        return normalize_fingerprint(value) if value is not None else None

    def destination(self) -> str:
        return host_port(self.host, self.port)

    def sensitive_values(self) -> list[str]:
        values = super().sensitive_values()
        return [*values, self.fingerprint] if self.fingerprint else values
