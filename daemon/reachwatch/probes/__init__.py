"""Probes: one module per protocol, all with the signature of ``probes.base``; this is the registry.

The registry is a literal mapping so "which kinds exist" is answered by reading one dict. Each module
exports ``SPEC`` (its config model and probe function). ``config.schema`` builds the target union from it.
"""

from __future__ import annotations

from typing import Any

from reachwatch.probes import ikev2, openvpn, openvpn_tunnel, tcp, wireguard
from reachwatch.probes import http_proxy, openconnect, shadowsocks, socks5
from reachwatch.probes import dns as dns_probe
from reachwatch.probes import http as http_probe
from reachwatch.probes import throughput as throughput_probe
from reachwatch.probes import tls as tls_probe
from reachwatch.probes import tor_dirport, tor_relay
from reachwatch.probes import fronting, stun, tor_bootstrap, tor_bridge
from reachwatch.probes.base import ProbeSpec

PROBES: dict[str, ProbeSpec[Any]] = {
    "tcp": tcp.SPEC,
    "socks5": socks5.SPEC,
    "shadowsocks": shadowsocks.SPEC,
    "openconnect": openconnect.SPEC,
    "http_proxy": http_proxy.SPEC,
    "openvpn": openvpn.SPEC,
    "wireguard": wireguard.SPEC,
    "ikev2": ikev2.SPEC,
    "openvpn_tunnel": openvpn_tunnel.SPEC,
    "tls": tls_probe.SPEC,
    "http": http_probe.SPEC,
    "https": http_probe.HTTPS_SPEC,
    "dns": dns_probe.SPEC,
    "throughput": throughput_probe.SPEC,
    "tor_relay": tor_relay.SPEC,
    "tor_dirport": tor_dirport.SPEC,
    "tor_bridge": tor_bridge.SPEC,
    "tor_bootstrap": tor_bootstrap.SPEC,
    "stun": stun.SPEC,
    "fronting": fronting.SPEC,
}

__all__ = ["PROBES"]
