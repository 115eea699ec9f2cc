"""Config values that passed although wrong (found by trying as an attacker and as an unlucky operator):
each is now one line naming the field, and a private value is never quoted in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from reachwatch.config.load import parse_config
from reachwatch.errors import ConfigError


def _error(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(text, "c.yaml", Path.cwd())
    message = str(info.value)
    assert "\n" not in message
    return message


OWN_FIELDS = "the port and path have their own fields"
FINITE = "a duration must be finite and at most 10 years (3650d)"


@pytest.mark.parametrize("value", [".inf", "99999999999999999999d", "3651d"])
def test_durations_that_would_silently_disable_a_target_are_refused(value: str) -> None:
    message = _error(f"targets: [{{name: a, kind: tcp, host: h.example, port: 1, interval: {value}}}]")
    assert message == f"c.yaml: targets[0] (name 'a').interval: {FINITE}"


def test_nan_duration_is_refused() -> None:
    assert "defaults.timeout" in _error("defaults: {timeout: .nan}")


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("'secret host.example'", "a host name cannot contain spaces or control characters"),
        ("https://secret.example/p", f"is a URL: give only the host name ({OWN_FIELDS})"),
        ("secret.example:443", "is not a host name or IP address (a port goes in the port field)"),
        ("secret..example", "is not a host name or IP address (an empty, overlong or '-'-led label)"),
        ("'secret.example/x'", "is not a host name or IP address"),
    ],
)
def test_hosts_with_spaces_urls_or_ports_are_refused_without_quoting_them(host: str, reason: str) -> None:
    message = _error(f"targets: [{{name: a, kind: tcp, host: {host}, port: 443, private: true}}]")
    assert message == f"c.yaml: targets[0] (name 'a').host: {reason}"
    assert "secret" not in message


@pytest.mark.parametrize(
    "host", ["vpn.example.net", "198.51.100.7", "2001:db8::1", "[2001:db8::1]", "пример.рф", "a_b"]
)
def test_real_hosts_still_pass(host: str) -> None:
    parse_config(f"targets: [{{name: a, kind: tcp, host: '{host}', port: 443}}]", "c.yaml", Path.cwd())


@pytest.mark.parametrize(
    "line",
    [
        "obfs4 203.0.113.77:4433 0123456789ABCDEF0123456789ABCDEF01234567 cert=SECRETCERT SECRET2 iat-mode=0",
        "mybridge.secret.example:443 0123456789ABCDEF0123456789ABCDEF01234567",
        "obfs4 203.0.113.77:44x3 0123456789ABCDEF0123456789ABCDEF01234567 cert=SECRETCERTVALUE",
    ],
)
def test_a_private_bridge_line_with_a_typo_is_refused_without_its_address_or_cert(line: str) -> None:
    message = _error(f"targets: [{{name: b, kind: tor_bridge, bridge: '{line}'}}]")
    assert message.startswith("c.yaml: targets[0] (name 'b').bridge: ")
    for secret in ("203.0.113.77", "SECRET", "0123456789ABCDEF", "mybridge"):
        assert secret not in message, message
