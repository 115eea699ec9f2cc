"""The ``throughput`` target: a download and a control download to compare (probe:
``probes/throughput.py``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from reachwatch.config.targets.tls import TlsOptions
from reachwatch.config.types import Duration, TargetBase, Url, host_port


class ThroughputTarget(TargetBase):
    """Two URLs of downloadable content at least ``size`` bytes long.

    - ``url`` / ``address`` / ``tls``: the measured download (``address`` pins the IP; ``tls`` as for
      ``tls`` targets, pins included);
    - ``control_url`` / ``control_address`` / ``control_tls``: the comparison download;
    - ``size``: body bytes to time (default 1 MiB); ``max_ratio``: target/control below this is
      throttling; ``transfer_timeout``: time budget of the target transfer.
    """

    kind: Literal["throughput"]
    url: str
    control_url: str
    address: str | None = None
    control_address: str | None = None
    tls: TlsOptions = Field(default_factory=TlsOptions)
    control_tls: TlsOptions = Field(default_factory=TlsOptions)
    size: int = Field(default=1024 * 1024, ge=16 * 1024, le=256 * 1024 * 1024)
    max_ratio: float = Field(default=0.25, gt=0.0, le=1.0)
    transfer_timeout: Duration | None = None
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
