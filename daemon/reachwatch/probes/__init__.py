"""Probes: one module per protocol, all with the signature of ``probes.base``; this is the registry.

The registry is a literal mapping so "which kinds exist" is answered by reading one dict. Each module
exports ``SPEC`` (its config model and probe function). ``config.schema`` builds the target union from it.
"""

from __future__ import annotations

from typing import Any

from reachwatch.probes import (
    dns,
    fronting,
    http,
    http_proxy,
    ikev2,
    openconnect,
    openvpn,
    openvpn_tunnel,
    shadowsocks,
    socks5,
    stun,
    tcp,
    throughput,
    tls,
    tor_bootstrap,
    tor_bridge,
    tor_dirport,
    tor_relay,
    wireguard,
)
from reachwatch.probes.base import ProbeSpec

PROBES: dict[str, ProbeSpec[Any]] = {
    # the web and the network underneath it
    "tcp": tcp.SPEC,
    "tls": tls.SPEC,
    "http": http.SPEC,
    "https": http.HTTPS_SPEC,
    "dns": dns.SPEC,
    "throughput": throughput.SPEC,
    # Tor
    "tor_relay": tor_relay.SPEC,
    "tor_dirport": tor_dirport.SPEC,
    "tor_bridge": tor_bridge.SPEC,
    "tor_bootstrap": tor_bootstrap.SPEC,
    "stun": stun.SPEC,
    "fronting": fronting.SPEC,
    # VPNs
    "openvpn": openvpn.SPEC,
    "openvpn_tunnel": openvpn_tunnel.SPEC,
    "wireguard": wireguard.SPEC,
    "ikev2": ikev2.SPEC,
    "openconnect": openconnect.SPEC,
    # proxies
    "shadowsocks": shadowsocks.SPEC,
    "socks5": socks5.SPEC,
    "http_proxy": http_proxy.SPEC,
}

__all__ = ["PROBES"]
