"""Probes: one module per protocol, all with the signature of ``probes.base``; this is the registry.

The registry is a literal mapping so "which kinds exist" is answered by reading one dict: kind -> the
module that probes it (``module`` exports ``SPEC``; ``module:NAME`` when one module serves two kinds). A
module is imported the first time a config uses its kind (``spec_for``), so ``reachwatch --help`` and
``validate`` load no probe, no socket code and none of the protocol libraries (stem, dnspython, h11). The
target models live below, in ``config.targets.TARGET_MODELS``; a test keeps the two registries equal and
checks that each ``SPEC`` uses its kind's model.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reachwatch.probes.base import ProbeSpec

PROBE_MODULES: dict[str, str] = {
    # the web and the network underneath it
    "tcp": "tcp",
    "tls": "tls",
    "http": "http",
    "https": "http:HTTPS_SPEC",
    "dns": "dns",
    "throughput": "throughput",
    # Tor
    "tor_relay": "tor_relay",
    "tor_dirport": "tor_dirport",
    "tor_bridge": "tor_bridge",
    "tor_bootstrap": "tor_bootstrap",
    "stun": "stun",
    "fronting": "fronting",
    # VPNs
    "openvpn": "openvpn",
    "openvpn_tunnel": "openvpn_tunnel",
    "wireguard": "wireguard",
    "ikev2": "ikev2",
    "openconnect": "openconnect",
    # proxies
    "shadowsocks": "shadowsocks",
    "socks5": "socks5",
    "http_proxy": "http_proxy",
    # the network itself: which ports still reach abroad
    "port_survey": "port_survey",
}


def spec_for(kind: str) -> ProbeSpec[Any]:
    """The probe of ``kind``, importing its module on first use; ``KeyError`` for an unknown kind."""
    module_name, _, attribute = PROBE_MODULES[kind].partition(":")
    module = importlib.import_module(f"{__name__}.{module_name}")
    spec: ProbeSpec[Any] = getattr(module, attribute or "SPEC")
    return spec


class _LazyProbes(Mapping[str, "ProbeSpec[Any]"]):
    """``PROBE_MODULES`` seen as kind -> ``ProbeSpec``: the mapping the scheduler takes (tests swap in
    their own). Listing or testing membership imports nothing; reading an entry imports its module."""

    def __getitem__(self, kind: str) -> ProbeSpec[Any]:
        return spec_for(kind)

    def __iter__(self) -> Iterator[str]:
        return iter(PROBE_MODULES)

    def __len__(self) -> int:
        return len(PROBE_MODULES)

    def __contains__(self, kind: object) -> bool:
        return kind in PROBE_MODULES


PROBES: Mapping[str, ProbeSpec[Any]] = _LazyProbes()

__all__ = ["PROBES", "PROBE_MODULES", "spec_for"]
