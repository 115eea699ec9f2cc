"""`reachwatch import` on the bridge files people really have: torrc lines of every transport (IPv6, with or
without the Bridge keyword, lowercase fingerprints), the bridge distributor's e-mail, Tor Browser's built-in
bridge JSON; junk and cut-off lines are one error naming file and line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from reachwatch.config.bridgeline import parse_bridge_line
from reachwatch.config.load import load_full_config, parse_config
from reachwatch.errors import ConfigError
from reachwatch.importers import import_files

DATA = Path(__file__).parent / "testdata"


def targets(text: str, tmp_path: Path) -> list[dict[str, Any]]:
    """The entries, after checking the YAML validates against the real schema."""
    parse_config(text, "imported.yaml", tmp_path)
    entries = yaml.safe_load(text)["targets"]
    assert isinstance(entries, list)
    return entries


def test_torrc_lines_of_every_transport_become_private_bridge_targets(tmp_path: Path) -> None:
    got = targets(import_files([DATA / "bridges-torrc.txt"]), tmp_path)
    transports = [parse_bridge_line(e["bridge"]).transport_name for e in got]
    assert transports == [
        "obfs4",
        "webtunnel",
        "vanilla",
        "obfs4",
        "snowflake",
        "meek_lite",
        "conjure",
        "vanilla",
    ]
    assert all(e["kind"] == "tor_bridge" and e["private"] is True for e in got)
    # IPv6 kept in brackets, the Bridge keyword and a "$" dropped, fingerprints upper-case
    webtunnel = parse_bridge_line(got[1]["bridge"])
    assert (webtunnel.host, webtunnel.port) == ("2001:db8::5", 443)
    assert webtunnel.fingerprint == "FEDCBA9876543210FEDCBA9876543210FEDCBA98"
    assert got[2]["bridge"] == "198.51.100.7:9001 89ABCDEF0123456789ABCDEF0123456789ABCDEF"
    assert got[3]["bridge"].startswith(
        "obfs4 [2001:db8:1::7]:9443 AAAABBBBCCCCDDDDEEEEFFFF0000111122223333 cert="
    )
    assert got[7]["bridge"] == "203.0.113.9:443"
    # names: transport + hashed fingerprint, never the address; a bridge listed twice is one entry
    for e in got:
        line = parse_bridge_line(e["bridge"])
        assert e["name"] == f"{line.transport_name}-{line.hashed_fingerprint()[:8].lower()}"
        assert line.host not in e["name"]
    # a bridge waits for its batch: the attempt's bound exceeds tor.batch_timeout
    assert {e["timeout"] for e in got} == {"90s"}


def test_the_same_bridges_imported_again_get_the_same_names(tmp_path: Path) -> None:
    first = yaml.safe_load(import_files([DATA / "bridges-torrc.txt"]))["targets"]
    again = yaml.safe_load(import_files([DATA / "bridges-torrc.txt"]))["targets"]
    assert [e["name"] for e in first] == [e["name"] for e in again]


def test_the_distributors_email_gives_its_bridge_lines_and_skips_its_sentences(tmp_path: Path) -> None:
    got = targets(import_files([DATA / "bridges-email.txt"]), tmp_path)
    assert [e["bridge"].split()[1] for e in got] == ["203.0.113.50:443", "198.51.100.61:8080"]
    assert all(e["private"] for e in got)


def test_tor_browser_pt_config_gives_public_builtin_bridges(tmp_path: Path) -> None:
    got = targets(import_files([DATA / "pt_config.json"]), tmp_path)
    by_transport: dict[str, int] = {}
    for e in got:
        by_transport[parse_bridge_line(e["bridge"]).transport_name] = (
            by_transport.get(parse_bridge_line(e["bridge"]).transport_name, 0) + 1
        )
        assert e["private"] is False and e["group"] == "tor-browser-builtin"
        assert e["name"].startswith("builtin-")
    assert by_transport == {"meek_lite": 1, "obfs4": 11, "snowflake": 2}


def test_moat_settings_keep_builtin_public_and_distributed_private(tmp_path: Path) -> None:
    got = targets(import_files([DATA / "moat-settings.json"]), tmp_path)
    assert [(parse_bridge_line(e["bridge"]).transport_name, e["private"]) for e in got] == [
        ("snowflake", False),
        ("obfs4", True),
    ]


def test_moat_builtin_map_is_read_too(tmp_path: Path) -> None:
    path = tmp_path / "builtin.json"
    path.write_text(
        '{"obfs4": ["obfs4 203.0.113.50:443 5EDAC3B810E12B01F6FD8050D2FD3E277B289A08 cert=AAAA iat-mode=0"],'
        ' "webtunnel": ["webtunnel [2001:db8::9]:443 0123456789ABCDEF0123456789ABCDEF01234567'
        ' url=https://example.org/x ver=0.0.1"]}'
    )
    got = targets(import_files([path]), tmp_path)
    assert [parse_bridge_line(e["bridge"]).transport_name for e in got] == ["obfs4", "webtunnel"]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        (
            "bridges-junk.txt",
            "bridges-junk.txt:2: not a recognised line (expected a bridge"
            " line such as 'obfs4 IP:PORT FINGERPRINT cert=... iat-mode=0', or an ss://, socks5:// or"
            " http:// link)",
        ),
        (
            "bridges-email-cut.txt",
            "bridges-email-cut.txt:6: bad bridge line: obfs4 bridge line needs cert=..."
            " (was the line cut off?)",
        ),
        (
            "bridges-bad-fingerprint.txt",
            "bridges-bad-fingerprint.txt:1: bad bridge line: fingerprint must be 40 hexadecimal digits",
        ),
    ],
)
def test_junk_and_cut_off_lines_are_one_error_naming_file_and_line(name: str, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        import_files([DATA / name])
    assert str(exc.value) == f"{DATA / name}:{message.split(':', 1)[1]}"


def test_a_json_bridge_entry_that_is_not_a_string_is_named(tmp_path: Path) -> None:
    path = tmp_path / "pt.json"
    path.write_text('{"pluggableTransports": {}, "bridges": {"obfs4": ["obfs4 203.0.113.50:443", 7]}}')
    with pytest.raises(ConfigError) as exc:
        import_files([path])
    assert str(exc.value).startswith(f"{path}: bridges.obfs4[0]: bad bridge line: obfs4 bridge line needs")


def test_cli_import_of_bridges_is_yaml_on_stdout_and_errors_are_one_line(tmp_path: Path) -> None:
    shutil.copy(DATA / "bridges-junk.txt", tmp_path / "b.txt")
    ok = subprocess.run(
        [sys.executable, "-m", "reachwatch", "import", str(DATA / "bridges-email.txt")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert len(yaml.safe_load(ok.stdout)["targets"]) == 2
    bad = subprocess.run(
        [sys.executable, "-m", "reachwatch", "import", str(tmp_path / "b.txt")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and bad.stdout == ""
    assert (
        bad.stderr.startswith(f"reachwatch: {tmp_path / 'b.txt'}:2: not a recognised line")
        and bad.stderr.count("\n") == 1
    )


LINE_PARTS = st.sampled_from(
    [
        "Bridge",
        "obfs4",
        "webtunnel",
        "192.0.2.1:443",
        "[2001:db8::1]:80",
        "0123456789abcdef0123456789abcdef01234567",
        "cert=AAAA",
        "iat-mode=0",
        "url=https://x/",
        "=",
        "$",
        ":",
        "[",
        "]",
        "UseBridges",
        "Here are your bridges",
    ]
)


@settings(deadline=None)
@given(st.lists(st.lists(LINE_PARTS | st.text(max_size=12), max_size=8).map(" ".join), max_size=6))
def test_any_text_is_entries_or_one_config_error(
    tmp_path_factory: pytest.TempPathFactory, lines: list[str]
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "bridges.txt"
    path.write_text("\n".join(lines), encoding="utf-8")
    try:
        text = import_files([path])
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    parse_config(text, "imported.yaml", path.parent)  # whatever was accepted validates


def test_with_an_output_dir_private_bridge_lines_go_to_0600_files_not_the_yaml(tmp_path: Path) -> None:
    out = tmp_path / "secrets"
    text = import_files([DATA / "bridges-torrc.txt"], output_dir=str(out))
    entries = targets(text, tmp_path)
    assert entries and all("bridge" not in e and e["bridge_file"] for e in entries)
    for entry in entries:
        path = Path(entry["bridge_file"])
        assert path.parent == out.absolute() and (path.stat().st_mode & 0o777) == 0o600
        assert parse_bridge_line(path.read_text().strip()).address not in text
    cfg = tmp_path / "imported.yaml"
    cfg.write_text(text)
    cfg.chmod(0o600)
    loaded = load_full_config(cfg)  # the loader reads the lines back
    assert all(t.destination() != "tor-bridge:0" for t in loaded.config.targets)
