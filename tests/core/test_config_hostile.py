"""Config values that passed although wrong (found by trying as an attacker and as an unlucky operator):
each is now one line naming the field, and a private value is never quoted in it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trustme

from reachwatch.config import yamlsafe
from reachwatch.config.load import load_config, parse_config
from reachwatch.config.webconfig import load_web_security
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


# --- the file itself --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "c.yaml: config is empty (start from config/example.yaml)"),
        ("# only a comment\n", "c.yaml: config is empty (start from config/example.yaml)"),
        ("a: 1\na: 2\n", "c.yaml:2:1: invalid YAML: duplicate key 'a' (first on line 1)"),
        (
            "targets:\n  - name: x\n    kind: tcp\n    host: h.example\n    port: 1\n    port: 2\n",
            "c.yaml:6:5: invalid YAML: duplicate key 'port' (first on line 5)",
        ),
        ("[" * 500 + "]" * 500, "c.yaml: invalid YAML: nested deeper than 64 levels"),
        ("a: " + "[" * 70 + "]" * 70, "c.yaml: invalid YAML: nested deeper than 64 levels"),
    ],
)
def test_files_that_configure_nothing_or_something_twice_are_refused(text: str, message: str) -> None:
    assert _error(text) == message


def test_a_yaml_merge_may_still_override_a_key() -> None:
    text = (
        "x-defaults: &d {kind: tcp, port: 1}\n"
        "targets: [{<<: *d, name: a, host: h.example, port: 2}]\n"
    )
    with pytest.raises(ConfigError, match="x-defaults: unknown key"):  # the merge itself is fine
        parse_config(text, "c.yaml", Path.cwd())


def test_an_alias_bomb_is_refused_before_validation_walks_it() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]  # 10^9 values
    expected = "c.yaml: invalid YAML: more than 2,000,000 values once aliases are expanded"
    assert _error("\n".join(lines)) == expected


def test_a_fifo_and_dev_zero_are_bounded_one_line_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(yamlsafe, "READ_TIMEOUT", 0.5)
    fifo = tmp_path / "c.yaml"
    os.mkfifo(fifo, 0o600)
    writer = os.open(fifo, os.O_RDWR)  # a writer that never writes: the slow stdin case
    try:
        with pytest.raises(ConfigError) as info:
            load_config(fifo)
    finally:
        os.close(writer)
    assert str(info.value) == f"{fifo}: cannot read config: no more data after 0 s (a pipe nobody writes?)"
    monkeypatch.setattr(yamlsafe, "MAX_CONFIG_BYTES", 1024 * 1024)
    with pytest.raises(ConfigError) as info:
        load_config("/dev/zero")
    assert str(info.value) == "/dev/zero: cannot read config: larger than 1 MiB (a wrong path?)"


# --- values ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("garbage", "must be host:port, [IPv6]:port or :port (e.g. 127.0.0.1:10491)"),
        ("127.0.0.1:http", "must be host:port, [IPv6]:port or :port (e.g. 127.0.0.1:10491)"),
        ("::1:80", "an IPv6 address needs brackets: [::1]:10491"),
        ("a b:80", "a host name cannot contain spaces or control characters"),
        ("127.0.0.1:70000", "must be host:port, [IPv6]:port or :port (e.g. 127.0.0.1:10491)"),
    ],
)
def test_a_garbage_listen_address_is_refused_at_load_not_at_listen(address: str, reason: str) -> None:
    assert _error(f"web: {{listen_address: '{address}'}}") == f"c.yaml: web.listen_address: {reason}"


@pytest.mark.parametrize("address", ["127.0.0.1:10491", "[::1]:0", ":10491", "localhost:80"])
def test_listen_addresses_that_work_still_pass(address: str) -> None:
    parse_config(f"web: {{listen_address: '{address}'}}", "c.yaml", Path.cwd())


def test_a_torrc_value_cannot_add_lines_of_its_own() -> None:
    message = _error('tor: {torrc: {Socks5Proxy: "127.0.0.1:9050\\nControlPort 9999"}}')
    assert message == "c.yaml: tor.torrc: Socks5Proxy: a value cannot contain a newline or control characters"
    message = _error('tor: {torrc: {DirAuthority: ["a", "b\\rc"]}}')
    assert message.endswith("DirAuthority: a value cannot contain a newline or control characters")
    assert _error("tor: {torrc: {'Bad Key': x}}") == "c.yaml: tor.torrc: 'Bad Key' is not a torrc option name"


def test_a_bridge_whose_transport_has_no_client_is_refused_naming_the_transport_only() -> None:
    line = "obfs5 203.0.113.7:443 0123456789ABCDEF0123456789ABCDEF01234567 cert=SECRET"
    message = _error(f"targets: [{{name: b, kind: tor_bridge, bridge: '{line}'}}]")
    assert message == (
        "c.yaml: targets[0] (name 'b'): no client for the 'obfs5' transport in tor.transports"
        " (configured: conjure, meek_lite, obfs3, obfs4, scramblesuit, snowflake, webtunnel)"
    )
    configured = "tor: {transports: {obfs5: /usr/local/bin/obfs5proxy}}\n"
    target = f"targets: [{{name: b, kind: tor_bridge, bridge: '{line}'}}]"
    parse_config(configured + target, "c.yaml", Path.cwd())


# --- the web config --------------------------------------------------------------------------------


@pytest.fixture
def tls_pair(tmp_path: Path) -> Path:
    cert = trustme.CA().issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "k.pem"))
    (tmp_path / "k.pem").chmod(0o600)
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "c.pem"))
    (tmp_path / "garbage.pem").write_text("not a certificate\n")
    return tmp_path


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        (
            "client_ca_file: missing.pem, client_auth_type: RequireAndVerifyClientCert",
            "tls_server_config.client_ca_file: cannot read {dir}/missing.pem: No such file or directory",
        ),
        (
            "client_ca_file: garbage.pem, client_auth_type: RequireAndVerifyClientCert",
            "tls_server_config.client_ca_file: {dir}/garbage.pem holds no PEM certificate",
        ),
        (
            "min_version: TLS13, max_version: TLS12",
            "tls_server_config: min_version TLS13 is above max_version TLS12: no handshake could succeed",
        ),
    ],
)
def test_a_web_config_that_cannot_serve_is_one_line(tls_pair: Path, tls: str, message: str) -> None:
    web = tls_pair / "web.yml"
    web.write_text(f"tls_server_config: {{cert_file: c.pem, key_file: k.pem, {tls}}}\n")
    with pytest.raises(ConfigError) as info:
        load_web_security(web)
    assert str(info.value).startswith(f"{web}: {message.format(dir=tls_pair)}")
    assert "\n" not in str(info.value)
