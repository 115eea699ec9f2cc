"""Bridge lines as users paste them: every shape Tor Browser and bridges.torproject.org hand out parses,
and malformed lines fail with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from reachwatch.config.bridgeline import BridgeLineError, parse_bridge_line
from reachwatch.config.load import load_config, parse_config
from reachwatch.config.schema import Config
from reachwatch.config.targets.tor_bootstrap import TorBootstrapTarget
from reachwatch.config.targets.tor_bridge import TorBridgeTarget

REPO = Path(__file__).resolve().parents[2]
FP = "2B280B23E1107BB62ABFC40DDCC8824814F80A72"
CERT = "ssH+9rP8dG2NLDN2XuFw63hIO/9MNNinLmxQDpVa+7kTOa9/m+tGWT1SmSYpQ9uTBGa6Hw"


def test_vanilla_line_with_and_without_bridge_keyword() -> None:
    for text in (
        f"192.0.2.1:443 {FP}",
        f"Bridge 192.0.2.1:443 {FP}",
        f"  bridge 192.0.2.1:443 ${FP.lower()} ",
    ):
        line = parse_bridge_line(text)
        assert (line.transport, line.host, line.port, line.fingerprint) == (None, "192.0.2.1", 443, FP)
        assert line.transport_name == "vanilla"
        assert line.torrc_value() == f"192.0.2.1:443 {FP}"


def test_obfs4_line_keeps_parameters_in_order() -> None:
    line = parse_bridge_line(f"obfs4 192.0.2.3:80 {FP} cert={CERT} iat-mode=0")
    assert line.transport == "obfs4"
    assert line.param("cert") == CERT and line.param("iat-mode") == "0"
    assert line.torrc_value() == f"obfs4 192.0.2.3:80 {FP} cert={CERT} iat-mode=0"


def test_snowflake_meek_webtunnel_and_ipv6() -> None:
    snow = parse_bridge_line(
        f"snowflake 192.0.2.3:80 {FP} fingerprint={FP} url=https://1098762253.rsc.cdn77.org/ "
        "fronts=www.cdn77.com,www.phpmyadmin.net ice=stun:stun.l.google.com:19302,stun:stun.antisip.com:3478 "
        "utls-imitate=hellorandomizedalpn"
    )
    assert snow.transport == "snowflake" and snow.param("fronts") == "www.cdn77.com,www.phpmyadmin.net"
    meek = parse_bridge_line(
        f"meek_lite 192.0.2.20:80 {FP} url=https://meek.azureedge.net/ front=ajax.aspnetcdn.com"
    )
    assert meek.param("front") == "ajax.aspnetcdn.com"
    web = parse_bridge_line(
        f"webtunnel [2001:db8:1::2]:443 {FP} url=https://example.org/secretpath ver=0.0.1"
    )
    assert web.host == "2001:db8:1::2" and web.address == "[2001:db8:1::2]:443"


def test_sensitive_values_cover_address_fingerprint_and_cert() -> None:
    line = parse_bridge_line(f"obfs4 192.0.2.3:80 {FP} cert={CERT} iat-mode=0")
    values = line.sensitive_values()
    assert "192.0.2.3" in values and "192.0.2.3:80" in values and FP in values and CERT in values
    assert "0" not in values  # iat-mode identifies nothing


def test_hashed_fingerprint_is_stable_and_reveals_nothing() -> None:
    a = parse_bridge_line(f"192.0.2.1:443 {FP}").hashed_fingerprint()
    b = parse_bridge_line(f"obfs4 198.51.100.7:9001 {FP} cert={CERT} iat-mode=0").hashed_fingerprint()
    assert a == b and len(a) == 16 and a not in FP


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty bridge line"),
        ("Bridge", "empty bridge line"),
        ("obfs4", "obfs4 bridge line has no IP:PORT"),
        ("192.0.2.1 " + FP, "must start with IP:PORT or a transport name"),
        ("obfs4 192.0.2.1:99999 " + FP + " cert=x", "port must be between 1 and 65535"),
        ("obfs4 bridge.example:443 " + FP + " cert=x", "address must be IPv4:PORT"),
        ("192.0.2.1:443 ABCDEF", "fingerprint must be 40 hexadecimal digits"),
        (f"obfs4 192.0.2.1:443 {FP} iat-mode=0", "needs cert="),
        (f"obfs4 192.0.2.1:443 cert={CERT}", "needs the bridge fingerprint"),
        (f"192.0.2.1:443 {FP} cert=x", "vanilla bridge line takes no key=value"),
        (f"meek_lite 192.0.2.1:443 {FP} front=a.example", "needs url="),
        (f"obfs4 192.0.2.1:443 {FP} cert={CERT} iat-mode", "parameter 2 after the fingerprint is not key="),
    ],
)
def test_malformed_lines_fail_with_one_line(text: str, message: str) -> None:
    with pytest.raises(BridgeLineError, match=message) as info:
        parse_bridge_line(text)
    assert "\n" not in str(info.value)


def test_config_rejects_a_truncated_bridge_line_on_the_target() -> None:
    with pytest.raises(ValidationError, match="needs cert="):
        Config.model_validate(
            {"targets": [{"name": "b1", "kind": "tor_bridge", "bridge": f"obfs4 192.0.2.1:443 {FP}"}]}
        )


def test_default_config_carries_tor_browser_builtin_bridges_as_public_targets() -> None:
    config = load_config(None).config
    bridges = [t for t in config.targets if isinstance(t, TorBridgeTarget)]
    assert len(bridges) >= 10 and not any(t.private for t in bridges)
    boots = [t for t in config.targets if isinstance(t, TorBootstrapTarget)]
    assert {t.lines()[0].transport for t in boots} == {"obfs4", "snowflake", "meek_lite"}


def test_private_bridges_example_validates_and_every_bridge_is_private() -> None:
    config = load_config(REPO / "config" / "examples" / "private-bridges.yaml").config
    tor_targets = [t for t in config.targets if isinstance(t, TorBridgeTarget | TorBootstrapTarget)]
    assert len(tor_targets) == 4 and all(t.private for t in tor_targets)
    # the lines live in 0600 files (tests/core/test_config_hostile.py loads the example with them)
    files = [t.bridge_file if isinstance(t, TorBridgeTarget) else t.bridges_file for t in tor_targets]
    assert all(files)


def test_bridge_targets_are_private_unless_marked_public() -> None:
    """Issue 3: a bridge's address never leaves reachwatch unless the operator marks it public."""
    line = "obfs4 192.0.2.44:8443 0123456789ABCDEF0123456789ABCDEF01234567 cert=AAAA iat-mode=0"
    text = (
        "targets:\n"
        f"  - {{name: b1, kind: tor_bridge, bridge: '{line}'}}\n"
        f"  - {{name: b2, kind: tor_bridge, bridge: '{line}', private: false}}\n"
        f"  - {{name: boot, kind: tor_bootstrap, bridges: ['{line}']}}\n"
    )
    targets = {t.name: t for t in parse_config(text, "c.yaml", Path(".")).config.targets}
    assert targets["b1"].private and targets["boot"].private
    assert not targets["b2"].private
