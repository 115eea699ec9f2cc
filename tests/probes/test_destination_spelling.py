"""Per-destination limits key on ``destination()``: the VPN, STUN and fronting kinds spell an IPv6
endpoint like tcp/tls do (``host_port``), bracketed or not in the config, so one endpoint is one key."""

from __future__ import annotations

from typing import Any

import pytest

from reachwatch.config.targets.fronting import FrontingTarget
from reachwatch.config.targets.ikev2 import Ikev2Target
from reachwatch.config.targets.openvpn import OpenVpnTarget
from reachwatch.config.targets.openvpn_tunnel import OpenVpnTunnelTarget
from reachwatch.config.targets.stun import StunTarget
from reachwatch.config.targets.tcp import TcpTarget
from reachwatch.config.targets.wireguard import WireGuardTarget
from reachwatch.config.types import TargetBase

WG_KEY = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="

KINDS: list[tuple[type[TargetBase], dict[str, Any]]] = [
    (OpenVpnTarget, {"kind": "openvpn"}),
    (OpenVpnTunnelTarget, {"kind": "openvpn_tunnel", "config_file": "client.ovpn"}),
    (WireGuardTarget, {"kind": "wireguard", "public_key": WG_KEY, "private_key_file": "k"}),
    (Ikev2Target, {"kind": "ikev2"}),
    (StunTarget, {"kind": "stun"}),
]


@pytest.mark.parametrize("host", ["2001:db8::1", "[2001:db8::1]"])
def test_udp_and_fronting_kinds_spell_one_ipv6_endpoint_like_tcp(host: str) -> None:
    spellings = {
        model.model_validate({"name": "x", "host": host, "port": 443, **extra}).destination()
        for model, extra in KINDS
    }
    spellings.add(
        TcpTarget.model_validate({"name": "x", "kind": "tcp", "host": host, "port": 443}).destination()
    )
    fronting = {
        "name": "x",
        "kind": "fronting",
        "url": "https://real.test/",
        "front": "f.test",
        "address": host,
    }
    spellings.add(FrontingTarget.model_validate(fronting).destination())
    assert spellings == {"[2001:db8::1]:443"}


def test_names_and_ipv4_stay_unbracketed() -> None:
    assert StunTarget(name="x", kind="stun", host="192.0.2.1", port=3478).destination() == "192.0.2.1:3478"
    fronting = FrontingTarget(name="x", kind="fronting", url="https://real.test/", front="f.test")
    assert fronting.destination() == "f.test:443"
