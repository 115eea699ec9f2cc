"""Importers on real-world-shaped files: entries that the config loader accepts, secrets kept in files,
and one-line errors naming file and line for malformed input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from reachwatch.config.load import parse_config
from reachwatch.errors import ConfigError
from reachwatch.importers import import_files

DATA = Path(__file__).parent / "testdata"
CANARY = "canary.example.org:7007"


def private_copy(tmp_path: Path, *names: str) -> list[Path]:
    """Copies with mode 0600 (git checks files out 0644; a secret file must be private)."""
    out = []
    for name in names:
        dest = tmp_path / name
        shutil.copy(DATA / name, dest)
        dest.chmod(0o600)
        out.append(dest)
    return out


def load(text: str, tmp_path: Path) -> list[Any]:
    """The generated YAML must validate against the real schema (all target models)."""
    return list(parse_config(text, "imported.yaml", tmp_path).config.targets)


def entries(text: str) -> list[dict[str, Any]]:
    data = yaml.safe_load(text)
    assert isinstance(data["targets"], list)
    return data["targets"]


def test_ovpn_inline_tls_auth_references_the_ovpn_and_validates(tmp_path: Path) -> None:
    (ovpn,) = private_copy(tmp_path, "provider-inline-tls-auth.ovpn")
    text = import_files([str(ovpn)])
    got = entries(text)
    assert [(e["host"], e["port"], e["proto"]) for e in got] == [
        ("vpn1.example.net", 1194, "udp"),
        ("vpn2.example.net", 443, "tcp"),
    ]
    for e in got:
        assert e["kind"] == "openvpn"
        assert e["tls_auth_file"] == str(ovpn.resolve())
        assert e["key_direction"] == 1
        assert e["auth"] == "SHA256"
    assert "BEGIN OpenVPN Static key" not in text
    targets = load(text, tmp_path)
    assert targets[0].mode() == "tls-auth"


def test_ovpn_inline_key_in_world_readable_file_is_refused(tmp_path: Path) -> None:
    ovpn = tmp_path / "x.ovpn"
    shutil.copy(DATA / "provider-inline-tls-auth.ovpn", ovpn)
    ovpn.chmod(0o644)
    with pytest.raises(ConfigError, match=r"x\.ovpn: holds a secret and is readable by group or others"):
        import_files([str(ovpn)])


def test_ovpn_inline_key_goes_to_a_0600_file_with_output_dir(tmp_path: Path) -> None:
    out = tmp_path / "keys"
    text = import_files([str(DATA / "provider-inline-tls-auth.ovpn")], output_dir=str(out))
    key = Path(entries(text)[0]["tls_auth_file"])
    assert key.parent == out.resolve()
    assert (key.stat().st_mode & 0o777) == 0o600
    assert "BEGIN OpenVPN Static key V1" in key.read_text()
    load(text, tmp_path)


def test_ovpn_external_key_path_resolved_against_the_ovpn_directory() -> None:
    (e,) = entries(import_files([str(DATA / "tls-crypt-external.ovpn")]))
    assert e == {
        "name": "tls-crypt-external",
        "kind": "openvpn",
        "private": True,
        "host": "198.51.100.7",
        "port": 8443,
        "proto": "tcp",
        "tls_crypt_file": str((DATA / "ta.key").resolve()),
    }


def test_ovpn_connection_blocks_and_inline_tls_crypt_v2(tmp_path: Path) -> None:
    (ovpn,) = private_copy(tmp_path, "connections-tls-crypt-v2.ovpn")
    text = import_files([str(ovpn)])
    got = entries(text)
    assert [(e["port"], e["proto"]) for e in got] == [(1194, "udp"), (443, "tcp")]
    assert all(e["tls_crypt_v2_file"] == str(ovpn.resolve()) for e in got)
    assert len({e["name"] for e in got}) == 2
    load(text, tmp_path)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("malformed-unclosed-block.ovpn", r"malformed-unclosed-block\.ovpn:5: <tls-auth> is not closed$"),
        ("malformed-no-remote.ovpn", r"malformed-no-remote\.ovpn: no 'remote' line"),
        ("malformed-bad-port.ovpn", r"malformed-bad-port\.ovpn:2: invalid port '99999'$"),
        ("malformed-garbage-key.ovpn", r"malformed-garbage-key\.ovpn:3: inline <tls-auth>: not an OpenVPN"),
        ("malformed-wg-endpoint.conf", r"malformed-wg-endpoint\.conf:6: Endpoint 'wg\.example\.net' is not"),
        ("malformed-wg-key.conf", r"malformed-wg-key\.conf:2: PrivateKey is not base64$"),
        ("links-bad.txt", r"links-bad\.txt:2: not a recognised line"),
        ("links-plugin.txt", r"links-plugin\.txt:1: ss:// plugin 'obfs-local' is not supported"),
        ("links-bad-cipher.txt", r"links-bad-cipher\.txt:1: cipher 'rc4-md5' is not supported"),
        ("malformed-vpngate.csv", r"malformed-vpngate\.csv:4: OpenVPN_ConfigData_Base64 is not base64"),
        ("malformed-eip-no-ip.json", r"malformed-eip-no-ip\.json: gateways\[0\]: gateway without ip_address"),
        ("malformed-eip-json.json", r"malformed-eip-json\.json:3: invalid JSON"),
    ],
)
def test_malformed_files_give_one_line_errors_naming_file_and_line(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        import_files([str(DATA / name)], output_dir="/nonexistent-never-written", canary=CANARY)
    assert "\n" not in str(info.value)


def test_missing_and_empty_files_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.ovpn: cannot read"):
        import_files([str(tmp_path / "nope.ovpn")])
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(ConfigError, match=r"empty\.txt: file is empty"):
        import_files([str(tmp_path / "empty.txt")])


def test_wgquick_writes_keys_to_output_dir_and_validates(tmp_path: Path) -> None:
    out = tmp_path / "keys"
    text = import_files([str(DATA / "wg-probe-peer.conf")], output_dir=str(out))
    (e,) = entries(text)  # the peer without Endpoint is skipped
    assert (e["kind"], e["host"], e["port"]) == ("wireguard", "wg.example.net", 51820)
    conf = (DATA / "wg-probe-peer.conf").read_text()
    private = Path(e["private_key_file"]).read_text().strip()
    assert f"PrivateKey = {private}" in conf
    assert private not in text
    assert (Path(e["preshared_key_file"]).stat().st_mode & 0o777) == 0o600
    # the data stage: our address inside the tunnel, and the VPN's resolver inside it to echo with
    assert (e["tunnel_address"], e["ping_address"]) == ("10.66.0.2", "10.66.0.1")
    load(text, tmp_path)


def test_wgquick_without_output_dir_says_why() -> None:
    with pytest.raises(ConfigError, match="import with an output directory"):
        import_files([str(DATA / "wg-probe-peer.conf")])


def test_links_file_gives_shadowsocks_and_proxy_entries_referencing_the_file(tmp_path: Path) -> None:
    (links,) = private_copy(tmp_path, "links.txt")
    text = import_files([str(links)], canary=CANARY)
    got = entries(text)
    assert [(e["kind"], e["host"], e["port"]) for e in got] == [
        ("shadowsocks", "ss1.example.net", 8388),
        ("shadowsocks", "198.51.100.20", 443),
        ("shadowsocks", "203.0.113.5", 8389),
        ("socks5", "proxy.example.net", 1080),
        ("socks5", "203.0.113.9", 1081),
        ("http_proxy", "2001:db8::8", 3128),
    ]
    assert [e.get("method") for e in got[:3]] == ["chacha20-ietf-poly1305", "aes-256-gcm", "aes-128-gcm"]
    assert got[0]["name"] == "Tokyo-1"
    assert [e.get("uri_line") for e in got[:3]] == [2, 3, 4]
    assert got[3]["url_line"] == 6 and "username" not in got[4]
    for secret in ("s3cr3t", "p@ss", "0ldpw9", "pa$$", "hpw77"):
        assert secret not in text
    load(text, tmp_path)


def test_proxy_url_passwords_go_to_output_dir(tmp_path: Path) -> None:
    text = import_files([str(DATA / "links.txt")], output_dir=str(tmp_path / "o"), canary=CANARY)
    got = entries(text)
    assert Path(got[0]["password_file"]).read_text() == "s3cr3t pass"
    assert Path(got[1]["password_file"]).read_text() == "p@ss:word"
    assert Path(got[3]["password_file"]).read_text() == "pa$$" and got[3]["username"] == "probe"
    load(text, tmp_path)


def test_shadowsocks_link_without_canary_is_refused(tmp_path: Path) -> None:
    (links,) = private_copy(tmp_path, "links.txt")
    with pytest.raises(ConfigError, match=r"links\.txt:2: a shadowsocks entry needs a canary"):
        import_files([str(links)])


def test_vpngate_csv_rows_become_openvpn_entries_with_country(tmp_path: Path) -> None:
    text = import_files([str(DATA / "vpngate.csv")])
    got = entries(text)
    assert [(e["name"], e["host"], e["port"], e["proto"], e["labels"]) for e in got] == [
        ("vpngate-public-vpn-10", "219.100.37.10", 443, "tcp", {"country": "JP"}),
        ("vpngate-vpn578", "121.5.6.7", 1195, "udp", {"country": "KR"}),
    ]
    load(text, tmp_path)


def test_riseup_eip_service_v3_and_legacy_gateways(tmp_path: Path) -> None:
    text = import_files([str(DATA / "eip-service.json")])
    got = entries(text)
    assert len(got) == 2 * 3 + 1  # paris: tcp+udp x 3 ports (obfs4 skipped); seattle: udp 443
    assert got[0]["host"] == "198.51.100.41" and got[0]["labels"] == {
        "location": "paris",
        "gateway": "vpn01-par.riseup.net",
    }
    assert (got[-1]["host"], got[-1]["port"], got[-1]["proto"]) == ("198.51.100.42", 443, "udp")
    load(text, tmp_path)


def test_entries_from_the_users_own_files_are_private_and_public_lists_stay_public(tmp_path: Path) -> None:
    """A personal endpoint published in metrics, the API or the journal is handed to the censor."""
    links, ovpn = private_copy(tmp_path, "links.txt", "provider-inline-tls-auth.ovpn")
    own = import_files(
        [str(links), str(ovpn), str(DATA / "wg-probe-peer.conf")],
        output_dir=str(tmp_path / "k"),
        canary=CANARY,
    )
    kinds = {e["kind"]: e["private"] for e in entries(own)}
    assert kinds == {
        "shadowsocks": True,
        "socks5": True,
        "http_proxy": True,
        "openvpn": True,
        "wireguard": True,
    }
    assert all(t.private for t in load(own, tmp_path))
    public = import_files([str(DATA / "vpngate.csv"), str(DATA / "eip-service.json")])
    assert all("private" not in e for e in entries(public))
    assert not any(t.private for t in load(public, tmp_path))


def test_names_stay_unique_across_files(tmp_path: Path) -> None:
    text = import_files([str(DATA / "vpngate.csv"), str(DATA / "vpngate.csv")])
    names = [e["name"] for e in entries(text)]
    assert len(names) == len(set(names)) == 4
    load(text, tmp_path)


def test_generated_names_never_carry_the_endpoint_address(tmp_path: Path) -> None:
    """A target name is published everywhere (metric labels, API, journal) even for ``private: true``
    targets, so a name derived from the host would leak the very address ``private`` hides."""
    links, ovpn = private_copy(tmp_path, "links.txt", "provider-inline-tls-auth.ovpn")
    got = entries(import_files([str(links), str(ovpn)], canary=CANARY))
    hosts = {str(e["host"]) for e in got}
    assert len(got) == 8
    for e in got:
        for host in hosts:
            for piece in {host, host.replace(":", "-"), host.replace(".", "-")}:
                assert piece not in e["name"], (e["name"], host)
    assert len({e["name"] for e in got}) == len(got)


@pytest.mark.parametrize(
    "line",
    [
        "socks5://user:hunter2/x@proxy.example.net:1080",
        "http://user:hunter2?x@proxy.example.net:3128",
        # (an unencoded "/" in an ss:// key is parsed right: everything up to the last "@" is userinfo)
        "ss://aes-128-gcm:hunter2?x@ss.example.net:8388",
    ],
)
def test_unparsable_link_error_does_not_quote_the_password(tmp_path: Path, line: str) -> None:
    """An unencoded ``/`` or ``?`` in a password makes the URL parser read it as the port; the error
    (shown by the CLI, and logged by the daemon when a probe reads the link at run time) must not
    repeat it."""
    links = tmp_path / "links.txt"
    links.write_text(line + "\n")
    links.chmod(0o600)
    with pytest.raises(ConfigError) as info:
        import_files([str(links)], canary=CANARY)
    assert "links.txt:1" in str(info.value)
    assert "hunter2" not in str(info.value)


# --- hostile input: one line each, nothing written that should not be ---------------------------------


@pytest.mark.parametrize(
    ("caps", "message"),
    [
        (
            {"transport": [{"type": "openvpn", "protocols": None, "ports": ["443"]}]},
            "gateways[0].capabilities.transport: 'protocols' must be a list, not NoneType",
        ),
        ({"transport": 5}, "gateways[0].capabilities: 'transport' must be a list, not int"),
        (
            {"transport": ["openvpn"], "protocols": "tcp", "ports": [443]},
            "gateways[0].capabilities: 'protocols' must be a list, not str",
        ),
        (
            {"transport": [{"type": "openvpn", "protocols": ["tcp"], "ports": [True]}]},
            "gateways[0]: invalid port True",
        ),
    ],
)
def test_riseup_fields_of_the_wrong_type_are_one_line(tmp_path: Path, caps: Any, message: str) -> None:
    path = tmp_path / "eip.json"
    path.write_text(json.dumps({"gateways": [{"ip_address": "192.0.2.1", "capabilities": caps}]}))
    with pytest.raises(ConfigError) as err:
        import_files([str(path)])
    assert str(err.value) == f"{path}: {message}"


def test_vpngate_field_over_the_csv_limit_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "vpngate.csv"
    path.write_text(f"*vpn_servers\n#HostName,IP,OpenVPN_ConfigData_Base64\nx,192.0.2.1,{'A' * 200_000}\n*\n")
    with pytest.raises(ConfigError) as err:
        import_files([str(path)])
    assert str(err.value) == f"{path}:3: not a CSV row: field larger than field limit (131072)"


def test_output_dir_that_is_a_file_is_one_line_before_any_work(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError) as err:
        import_files([str(DATA / "wg-probe-peer.conf")], output_dir=str(blocker))
    assert str(err.value) == f"--output-dir: {blocker} is not a directory"
    with pytest.raises(ConfigError) as err:
        import_files([str(DATA / "wg-probe-peer.conf")], output_dir=str(blocker / "sub"))
    assert str(err.value) == f"--output-dir: cannot write secrets to {blocker / 'sub'}: Not a directory"


def test_a_symlink_planted_in_the_output_dir_is_replaced_not_followed(tmp_path: Path) -> None:
    out = tmp_path / "keys"
    out.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    (out / "wg-probe-peer.wg-private.key").symlink_to(victim)
    text = import_files([str(DATA / "wg-probe-peer.conf")], output_dir=str(out))
    assert victim.read_text() == "precious\n" and (victim.stat().st_mode & 0o777) == 0o644
    key = out / "wg-probe-peer.wg-private.key"
    assert not key.is_symlink() and (key.stat().st_mode & 0o777) == 0o600
    assert entries(text)[0]["private_key_file"] == str(key)


def test_a_later_file_that_fails_leaves_no_secrets_of_earlier_files(tmp_path: Path) -> None:
    out = tmp_path / "keys"
    files = [str(DATA / n) for n in ("wg-probe-peer.conf", "malformed-wg-key.conf")]
    with pytest.raises(ConfigError):
        import_files(files, output_dir=str(out))
    assert list(out.iterdir()) == []
