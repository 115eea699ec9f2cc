"""`reachwatch check THING`: how each THING becomes a target, and the controls it is judged by."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reachwatch.checkconfig import one_off_config
from reachwatch.config.bridgeline import parse_bridge_line
from reachwatch.config.load import embedded_default_text, parse_config
from reachwatch.errors import ConfigError
from reachwatch.importers.common import Output
from reachwatch.importers.oneoff import entries_for

DATA = Path(__file__).resolve().parents[1] / "importers" / "testdata"
OBFS4 = (
    "obfs4 192.0.2.44:8443 0123456789ABCDEF0123456789ABCDEF01234567"
    " cert=ssH+9rP8dG2NLDN2XuFw63hIO/9MNNinLmxQDpVa+7kTOa9/m+tGWT1SmSYpQ9uTBGa6Hw iat-mode=0"
)


def kinds(*things: str, kind: str = "tcp", tmp_path: Path | None = None) -> list[tuple[str, str]]:
    out = Output(output_dir=tmp_path, canary_host="127.0.0.1", canary_port=7)
    return [(e["name"], e["kind"]) for e in entries_for(things, out, kind=kind)]  # type: ignore[arg-type]


def _hashed(line: str) -> str:
    return parse_bridge_line(line).hashed_fingerprint()[:8].lower()


def test_each_thing_is_recognised_by_its_shape(tmp_path: Path) -> None:
    assert kinds(
        "example.org:443",
        "[2001:db8::1]:443",
        "tls://example.org:443",
        "192.0.2.1:443",  # a bare IP:PORT is host:port...
        "Bridge 192.0.2.1:443",  # ...a bridge only when it says so
        OBFS4,
        "socks5://127.0.0.1:1080",
        "http://user@127.0.0.1:3128",
        tmp_path=tmp_path,
    ) == [
        ("check-1-tcp", "tcp"),
        ("check-2-tcp", "tcp"),
        ("check-3-tls", "tls"),
        ("check-4-tcp", "tcp"),
        (f"check-5-vanilla-{_hashed('192.0.2.1:443')}", "tor_bridge"),
        (f"check-6-obfs4-{_hashed(OBFS4)}", "tor_bridge"),
        ("check-7-socks5", "socks5"),
        ("check-8-http_proxy", "http_proxy"),
    ]
    assert kinds("example.org:443", kind="tls") == [("check-1-tls", "tls")]


def test_files_are_read_as_reachwatch_import_reads_them(tmp_path: Path) -> None:
    ovpn = tmp_path / "downloaded.ovpn"
    shutil.copy(DATA / "provider-inline-tls-auth.ovpn", ovpn)
    ovpn.chmod(0o644)  # as a browser saves it: the check copies its key to a private file of its own
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    out = Output(output_dir=secrets)
    got = entries_for([str(ovpn), str(DATA / "bridges-email.txt"), str(DATA / "wg-probe-peer.conf")], out)
    out.commit()
    assert [e["kind"] for e in got] == ["openvpn", "openvpn", "tor_bridge", "tor_bridge", "wireguard"]
    assert all(Path(e["tls_auth_file"]).parent == secrets.absolute() for e in got[:2])
    assert all((p.stat().st_mode & 0o077) == 0 for p in secrets.iterdir())


@pytest.mark.parametrize(
    ("thing", "message"),
    [
        (
            "ftp://example.org:21",
            "argument 1: unknown scheme 'ftp'://: use ss, socks5, socks5h, http, tcp or tls",
        ),
        ("example.org", "argument 1: expected host:port (or [IPv6]:port)"),
        ("example.org:99999", "argument 1: expected host:port (or [IPv6]:port)"),
        ("./nosuch.ovpn", "argument 1: no such file: ./nosuch.ovpn"),
        (
            "obfs4 192.0.2.1:443 0123456789ABCDEF0123456789ABCDEF01234567",
            "argument 1: bad bridge line: obfs4 bridge line needs cert=... (was the line cut off?)",
        ),
        ("   ", "argument 1: is empty"),
    ],
)
def test_a_thing_that_is_wrong_is_one_line_naming_it(thing: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        entries_for([thing], Output())
    assert str(exc.value) == message


def test_ss_without_canary_says_to_give_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        entries_for(["ss://YWVzLTI1Ni1nY206c2VjcmV0@127.0.0.1:8388"], Output(output_dir=tmp_path))
    assert "needs a canary" in str(exc.value)


def test_without_a_config_the_embedded_controls_judge_and_nothing_else_runs(tmp_path: Path) -> None:
    loaded = one_off_config(["127.0.0.1:9"], config_path=None, kind="tcp", canary=None, secrets_dir=tmp_path)
    default = parse_config(embedded_default_text(), "default", tmp_path).config
    config = loaded.config
    assert [t.name for t in config.controls.international] == [t.name for t in default.controls.international]
    assert [t.name for t in config.targets] == ["check-1-tcp"]
    assert config.tor.directory_authorities is False and config.tor.relay_sets == []
    assert config.journal.enabled is False


def test_with_a_config_its_controls_and_settings_judge_and_its_targets_stay_out(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "vantage: {name: home, country: KZ}\n"
        "scheduler: {min_destination_spacing: 1ms}\n"
        "controls: {domestic: [{name: egov, kind: tcp, host: 127.0.0.1, port: 1}]}\n"
        "targets: [{name: mine, kind: tcp, host: 127.0.0.1, port: 2}]\n"
    )
    loaded = one_off_config(["127.0.0.1:9"], config_path=cfg, kind="tls", canary=None, secrets_dir=tmp_path)
    assert loaded.config.vantage.name == "home"
    assert [t.name for t in loaded.config.all_targets()] == ["egov", "check-1-tls"]
    assert loaded.config.scheduler.min_destination_spacing == 0.001
    cfg.write_text("targets: [{name: x, kind: tcp}]\n")
    with pytest.raises(ConfigError) as exc:
        one_off_config(["127.0.0.1:9"], config_path=cfg, kind="tcp", canary=None, secrets_dir=tmp_path)
    assert str(exc.value).startswith(f"{cfg}: targets[0]")
