"""The ``fronting`` target: a real service's URL and the CDN front to reach it through (probe:
``probes/fronting.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from reachwatch.config.secrets import PublicFile
from reachwatch.config.types import TargetBase, Url, host_port


class FrontingTarget(TargetBase):
    """The real service's URL and the front domain to reach it through."""

    kind: Literal["fronting"]
    url: str = Field(
        pattern=r"^https://",
        description=(
            "the real service's https:// URL: its host goes in the Host header, inside the encryption"
        ),
    )
    front: str = Field(
        min_length=1, description="the front domain: the SNI and the name the certificate is verified for"
    )
    address: str | None = Field(
        default=None, description="connect to this edge address instead of resolving the front"
    )
    port: int = Field(default=443, ge=1, le=65535, description="the front's TLS port")
    expect_status: list[int] = Field(
        default_factory=lambda: [200],
        min_length=1,
        description="HTTP statuses that prove the real service answered",
    )
    expect_body: str | None = Field(default=None, description="text the real service's answer must contain")
    max_bytes: int = Field(
        default=64 * 1024, ge=1, le=1024 * 1024, description="read at most this much of the body"
    )
    ca_file: PublicFile | None = Field(
        default=None, description="PEM CA bundle for the front instead of the system roots"
    )

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        Url.parse(value)
        return value

    def destination(self) -> str:
        return host_port(self.address or self.front, self.port)

    def sensitive_values(self) -> list[str]:
        # the front and the real service identify a private target even when an edge ``address`` is set
        return [*super().sensitive_values(), self.front, Url.parse(self.url).host]
