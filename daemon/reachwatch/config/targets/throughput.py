"""The ``throughput`` target: a download and a control download to compare (probe:
``probes/throughput.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from reachwatch.config.targets.tls import TlsOptions
from reachwatch.config.types import Duration, TargetBase, Url, host_port


class ThroughputTarget(TargetBase):
    """Two URLs of downloadable content at least ``size`` bytes long: the measured one and a control."""

    kind: Literal["throughput"]
    url: str = Field(description="the measured download (http:// or https://, at least `size` bytes long)")
    control_url: str = Field(
        description=(
            "the comparison download: a host with no reason to be throttled, on a similar path out of the "
            "country"
        )
    )
    address: str | None = Field(
        default=None, description="connect to this IP for `url` instead of resolving its host"
    )
    control_address: str | None = Field(
        default=None, description="connect to this IP for `control_url` instead of resolving its host"
    )
    tls: TlsOptions = Field(
        default_factory=TlsOptions,
        description="how to judge the certificate of `url` (as for `tls` targets, pins included)",
    )
    control_tls: TlsOptions = Field(
        default_factory=TlsOptions, description="how to judge the certificate of `control_url`"
    )
    size: int = Field(
        default=1024 * 1024, ge=16 * 1024, le=256 * 1024 * 1024, description="body bytes to time"
    )
    max_ratio: float = Field(
        default=0.25, gt=0.0, le=1.0, description="a target/control throughput ratio below this is throttling"
    )
    transfer_timeout: Duration | None = Field(
        default=None,
        description="time budget of the target transfer; unset: 45 % of what is left of the deadline",
    )
    stall_timeout: Duration | None = Field(
        default=None,
        gt=0,
        description=(
            "no body byte for this long after the download started is a cut (transfer_incomplete with "
            "its cut point), not a slow transfer; default a third of the transfer's time budget"
        ),
    )

    @field_validator("url", "control_url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        Url.parse(url)
        return url

    def destination(self) -> str:
        url = Url.parse(self.url)
        host = self.address or url.host
        return host_port(host, url.port)

    def sensitive_values(self) -> list[str]:
        values = [
            self.url,
            Url.parse(self.url).host,
            self.address,
            *self.tls.spki_sha256,
            *self.tls.cert_sha256,
        ]
        return [v for v in values if v]
