"""Config values that passed although wrong (found by trying as an attacker and as an unlucky operator):
each is now one line naming the field, and a private value is never quoted in it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import structlog
import trustme

from reachwatch import logging as rwlog
from reachwatch.config import yamlsafe
from reachwatch.config.load import load_config, load_full_config, parse_config
from reachwatch.config.targets.tor_bootstrap import TorBootstrapTarget
from reachwatch.config.targets.tor_bridge import TorBridgeTarget
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
        ("a: " + "[" * 2500 + "]" * 2500, "c.yaml: invalid YAML: nested deeper than 64 levels"),
        ("a: &a [1, *a]\n", "c.yaml: invalid YAML: a value contains itself (an alias inside its own anchor)"),
        ('vantage: {"\\n": 0}\n', "c.yaml: vantage.'\\n': unknown key"),  # found by fuzzing: split the line
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


# --- bridge lines from files ---------------------------------------------------------------------------

OBFS4 = "obfs4 192.0.2.44:8443 0123456789ABCDEF0123456789ABCDEF01234567 cert=SECRETCERTSECRETCERT iat-mode=0"


def _bridge_config(tmp_path: Path, target: str, content: str | None = None, mode: int = 0o600) -> Path:
    if content is not None:
        (tmp_path / "b.txt").write_text(content)
        (tmp_path / "b.txt").chmod(mode)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"targets: [{target}]\n")
    cfg.chmod(0o600)
    return cfg


def test_a_bridge_file_is_read_at_load_and_redacted_like_an_inline_line(tmp_path: Path) -> None:
    cfg = _bridge_config(tmp_path, "{name: b, kind: tor_bridge, bridge_file: b.txt}", f"# mine\n\n{OBFS4}\n")
    loaded = load_full_config(cfg)
    (target,) = loaded.config.targets
    assert isinstance(target, TorBridgeTarget)
    assert target.line().address == "192.0.2.44:8443" and target.destination() == "192.0.2.44:8443"
    assert {"192.0.2.44", "SECRETCERTSECRETCERT"} <= set(rwlog.sensitive_values(loaded))
    boot = _bridge_config(tmp_path, "{name: x, kind: tor_bootstrap, bridges_file: b.txt}", f"{OBFS4}\n" * 2)
    (target,) = load_full_config(boot).config.targets
    assert isinstance(target, TorBootstrapTarget) and len(target.lines()) == 2


def test_a_bridge_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRIEND_BRIDGE", OBFS4)
    cfg = _bridge_config(tmp_path, "{name: b, kind: tor_bridge, bridge_env: FRIEND_BRIDGE}")
    (target,) = load_full_config(cfg).config.targets
    assert isinstance(target, TorBridgeTarget)
    assert target.line().fingerprint == "0123456789ABCDEF0123456789ABCDEF01234567"


@pytest.mark.parametrize(
    ("target", "content", "message"),
    [
        (
            "{name: b, kind: tor_bridge, bridge_file: b.txt}",
            "# a comment\nobfs4 192.0.2.44:8443 0123456789ABCDEF0123456789ABCDEF0123456Z cert=SECRETCERT\n",
            "targets[0] (name 'b').bridge_file: line 2: fingerprint must be 40 hexadecimal digits",
        ),
        ("{name: b, kind: tor_bridge, bridge_file: b.txt}", "# none\n", "bridge_file: holds no bridge line"),
        (
            "{name: b, kind: tor_bridge, bridge_file: b.txt}",
            f"{OBFS4}\n{OBFS4}\n",
            "bridge_file: holds 2 bridge lines; at most 1",
        ),
        (
            "{name: b, kind: tor_bridge, bridge_file: b.txt}",
            OBFS4.replace("obfs4", "obfs5"),
            "targets[0] (name 'b'): no client for the 'obfs5' transport",
        ),
        (
            f"{{name: b, kind: tor_bridge, bridge_file: b.txt, bridge: '{OBFS4}'}}",
            OBFS4,
            "targets[0] (name 'b'): give the bridge line once: bridge, bridge_file or bridge_env",
        ),
    ],
)
def test_a_bad_bridge_file_is_one_line_without_its_content(
    tmp_path: Path, target: str, content: str, message: str
) -> None:
    cfg = _bridge_config(tmp_path, target, content)
    with pytest.raises(ConfigError) as info:
        load_full_config(cfg)
    text = str(info.value)
    assert message in text and "\n" not in text
    for secret in ("192.0.2.44", "SECRETCERT", "0123456789ABCDEF"):
        assert secret not in text


def test_a_group_readable_bridge_file_is_refused(tmp_path: Path) -> None:
    cfg = _bridge_config(tmp_path, "{name: b, kind: tor_bridge, bridge_file: b.txt}", OBFS4, mode=0o640)
    with pytest.raises(ConfigError, match=r"readable by group or others \(mode 640\); chmod 600 it"):
        load_full_config(cfg)


def test_an_inline_private_bridge_loads_with_one_warning(tmp_path: Path) -> None:
    cfg = _bridge_config(tmp_path, f"{{name: b, kind: tor_bridge, bridge: '{OBFS4}'}}")
    with structlog.testing.capture_logs() as logs:
        load_full_config(cfg)
    warnings = [e for e in logs if e["event"] == "private_bridges_inline"]
    assert len(warnings) == 1 and warnings[0]["count"] == 1


def test_the_private_bridges_example_loads_with_its_files(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "examples" / "private-bridges.yaml"
    (tmp_path / "bridges").mkdir()
    lines = {
        "friend-obfs4.txt": OBFS4,
        "friend-vanilla.txt": "198.51.100.7:9001 89ABCDEF0123456789ABCDEF0123456789ABCDEF",
        "friend-webtunnel.txt": "webtunnel [2001:db8::5]:443 FEDCBA9876543210FEDCBA9876543210FEDCBA98"
        " url=https://example.com/7a3c9f0e2b ver=0.0.1",
    }
    for name, line in lines.items():
        (tmp_path / "bridges" / name).write_text(line + "\n")
        (tmp_path / "bridges" / name).chmod(0o600)
    cfg = tmp_path / "private-bridges.yaml"
    cfg.write_text(example.read_text())
    cfg.chmod(0o600)
    with structlog.testing.capture_logs() as logs:
        loaded = load_full_config(cfg)
    assert not [e for e in logs if e["event"] == "private_bridges_inline"]
    yaml_lines = [ln for ln in example.read_text().splitlines() if not ln.lstrip().startswith("#")]
    assert not [ln for ln in yaml_lines if "bridge:" in ln or "cert=" in ln]  # no bridge line in the YAML
    assert {t.destination() for t in loaded.config.targets} >= {"192.0.2.44:8443", "198.51.100.7:9001"}


def test_a_secret_that_is_not_utf8_is_refused_at_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It loaded, then failed at every attempt as internal_error."""
    (tmp_path / "pw").write_bytes(b"\xff\xfepass")
    (tmp_path / "pw").chmod(0o600)
    target = "{name: s, kind: socks5, host: h.example, port: 1080, username: u, password_file: pw}"
    with pytest.raises(ConfigError) as info:
        load_full_config(_bridge_config(tmp_path, target))
    assert str(info.value).endswith(f"password_file: secret file {tmp_path / 'pw'} is not UTF-8 text")
    monkeypatch.setitem(os.environb, b"RW_TEST_PW", b"\xffpass")
    target = "{name: s, kind: socks5, host: h.example, port: 1080, username: u, password_env: RW_TEST_PW}"
    with pytest.raises(ConfigError) as info:
        load_full_config(_bridge_config(tmp_path, target))
    assert str(info.value).endswith("password_env: environment variable RW_TEST_PW is not UTF-8 text")
