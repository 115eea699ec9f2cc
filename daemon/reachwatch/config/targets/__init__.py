"""Target models: one module per kind, and the literal registry ``TARGET_MODELS`` (kind -> model).

"Which kinds exist and what does each accept" is answered by reading the dict below. ``config.schema``
builds the ``targets:`` union from it; each probe (``probes/<kind>.py``) imports its model from here, and
``probes.PROBE_MODULES`` names the same kinds (a test keeps the two registries equal). Importing this
package imports pydantic models and pure value checks only: no probe, no socket code, no runtime service.
"""

from __future__ import annotations

from reachwatch.config.targets import (
    dns,
    fronting,
    http,
    http_proxy,
    ikev2,
    openconnect,
    openvpn,
    openvpn_tunnel,
    port_survey,
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
from reachwatch.config.types import TargetBase

TARGET_MODELS: dict[str, type[TargetBase]] = {
    # the web and the network underneath it
    "tcp": tcp.TcpTarget,
    "tls": tls.TlsTarget,
    "http": http.HttpTarget,
    "https": http.HttpsTarget,
    "dns": dns.DnsTarget,
    "throughput": throughput.ThroughputTarget,
    # Tor
    "tor_relay": tor_relay.TorRelayTarget,
    "tor_dirport": tor_dirport.TorDirPortTarget,
    "tor_bridge": tor_bridge.TorBridgeTarget,
    "tor_bootstrap": tor_bootstrap.TorBootstrapTarget,
    "stun": stun.StunTarget,
    "fronting": fronting.FrontingTarget,
    # VPNs
    "openvpn": openvpn.OpenVpnTarget,
    "openvpn_tunnel": openvpn_tunnel.OpenVpnTunnelTarget,
    "wireguard": wireguard.WireGuardTarget,
    "ikev2": ikev2.Ikev2Target,
    "openconnect": openconnect.OpenConnectTarget,
    # proxies
    "shadowsocks": shadowsocks.ShadowsocksTarget,
    "socks5": socks5.Socks5Target,
    "http_proxy": http_proxy.HttpProxyTarget,
    # the network itself: which ports still reach abroad
    "port_survey": port_survey.PortSurveyTarget,
}

__all__ = ["TARGET_MODELS"]
