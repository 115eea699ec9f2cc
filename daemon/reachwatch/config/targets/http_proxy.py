"""The ``http_proxy`` target: an HTTP CONNECT proxy (probe: ``probes/http_proxy.py``)."""

from __future__ import annotations

from typing import Literal

from reachwatch.config.targets.socks5 import ProxyTargetBase


class HttpProxyTarget(ProxyTargetBase):
    """An HTTP proxy that supports CONNECT, optionally with Basic auth."""

    kind: Literal["http_proxy"]
