"""`reachwatch init`: a starter config per country under the operator's identity, never a sample's."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reachwatch.config.load import parse_config
from reachwatch.errors import ConfigError
from reachwatch.starter import Identity, countries, render


def rw(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reachwatch", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
        cwd=cwd,
    )


@pytest.mark.parametrize("code", sorted(countries()))
def test_every_country_starter_loads_with_domestic_and_international_controls(
    code: str, tmp_path: Path
) -> None:
    text = render(Identity(name="v-1", country=code))
    config = parse_config(text, "starter.yaml", tmp_path).config
    assert len(config.controls.domestic) >= 3 and len(config.controls.international) >= 2
    assert config.vantage.name == "v-1" and config.vantage.country == code
    assert config.vantage.timezone == countries()[code].timezone
    # the country's own targets come on top of the default set (Tor, circumvention sites, DNS)
    names = {t.name for t in config.targets}
    assert {"torproject-www", "tb-bootstrap-obfs4"} <= names
    assert {t["name"] for t in countries()[code].targets} <= names
    assert config.tor.directory_authorities


def test_the_identity_is_the_operators_and_nothing_else(tmp_path: Path) -> None:
    text = render(Identity(name="almaty-home-1", country="KZ"))
    vantage = yaml.safe_load(text)["vantage"]
    assert vantage == {"name": "almaty-home-1", "country": "KZ", "timezone": "Asia/Almaty"}
    for sample in ("AS9198", "Kazakhtelecom", "kz-vantage-1", "example.net", "example.org"):
        assert sample not in text


def test_any_country_with_its_own_domestic_controls(tmp_path: Path) -> None:
    text = render(Identity(name="v", country="UZ", asn="AS8193"), ["my.gov.uz", "kapitalbank.uz:8443"])
    config = parse_config(text, "s.yaml", tmp_path).config
    assert [(t.name, t.host, t.port) for t in config.controls.domestic] == [  # type: ignore[attr-defined]
        ("domestic-my-gov-uz", "my.gov.uz", 443),
        ("domestic-kapitalbank-uz", "kapitalbank.uz", 8443),
    ]
    assert config.vantage.asn == "AS8193" and config.vantage.timezone == "UTC"
    with pytest.raises(ConfigError) as exc:
        render(Identity(name="v", country="UZ"))
    assert str(exc.value).startswith("--country: no starter set for UZ (have: BY, IR, KZ, RU); name your own")


@pytest.mark.parametrize(
    ("identity", "message"),
    [
        (Identity(name="my vantage", country="KZ"), "--name: 'my vantage' is not a name"),
        (Identity(name="v", country="Kazakhstan"), "--country: give the ISO 3166 two-letter code"),
        (Identity(name="v", country="KZ", asn="9198"), "--asn: give the network's AS number as AS<digits>"),
        (Identity(name="v", country="KZ", city="x" * 65), "--city: at most 64 printable characters"),
    ],
)
def test_a_wrong_identity_is_one_line_naming_the_flag(identity: Identity, message: str) -> None:
    with pytest.raises(ConfigError) as exc:
        render(identity)
    assert str(exc.value).startswith(message)


def test_cli_init_writes_a_private_file_once_and_asks_for_what_it_lacks(tmp_path: Path) -> None:
    out = tmp_path / "config.yaml"
    proc = rw("init", "--country", "kz", "--name", "almaty-home-1", "--city", "Almaty", "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert rw("validate", str(out)).returncode == 0
    again = rw("init", "--country", "KZ", "--name", "x", "--output", str(out))
    assert (again.returncode, again.stderr) == (
        2,
        f"reachwatch: init: {out} exists (keep it, or give --force to replace it)\n",
    )
    assert "almaty-home-1" in out.read_text()
    # no terminal to ask in and no --name: exit 2, nothing filled in
    missing = rw("init", "--country", "KZ")
    assert missing.returncode == 2 and missing.stdout == ""
    assert (
        missing.stderr
        == "reachwatch: init: --name is required (this vantage's name; no sample name is filled in)\n"
    )
    stdout = rw("init", "--country", "RU", "--name", "msk-1")
    assert stdout.returncode == 0 and yaml.safe_load(stdout.stdout)["vantage"]["timezone"] == "Europe/Moscow"


def test_cli_init_prompts_in_a_terminal(tmp_path: Path) -> None:
    """Answers typed at the prompts (a pty: stdin must be a terminal for init to ask)."""
    import pty  # noqa: PLC0415

    out = tmp_path / "c.yaml"
    pid, fd = pty.fork()
    if pid == 0:  # the child: reachwatch init on the pty
        os.execv(sys.executable, [sys.executable, "-m", "reachwatch", "init", "--output", str(out)])
    answers = iter(["BY", "minsk-home-1", "AS6697", "Beltelecom", "Minsk"])
    seen = b""
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if seen.rstrip().endswith(b":"):
            os.write(fd, (next(answers) + "\n").encode())
            seen = b""
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    vantage = yaml.safe_load(out.read_text())["vantage"]
    assert vantage == {
        "name": "minsk-home-1",
        "country": "BY",
        "asn": "AS6697",
        "isp": "Beltelecom",
        "city": "Minsk",
        "timezone": "Europe/Minsk",
    }
