"""The canary settings of the kinds that carry data (``socks5``, ``http_proxy``, ``shadowsocks``): where the
echo service abroad is and how much to push through it (runtime: ``vpn/canary.py``)."""

from __future__ import annotations

from pydantic import Field

from reachwatch.config.types import Duration, StrictModel


class CanaryConfig(StrictModel):
    """Where the canary (an echo service outside the country) is, and how much to push through."""

    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    # 0 turns the usability push off; 64-256 KiB sees Russia-2023-style cuts (a few KB to tens of KB)
    push_bytes: int = Field(default=128 * 1024, ge=0, le=4 * 1024 * 1024)
    # no progress for this long during the push counts as a cut
    stall_timeout: Duration = 5.0
