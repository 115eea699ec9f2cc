"""Importers: the files users already have -> reachwatch target entries (YAML), without probing anything.

One module per format: ``ovpn`` (OpenVPN client configs), ``wgquick`` (wg-quick ``.conf``), ``ssuri``
(``ss://`` links), ``proxyurl`` (``socks5://``/``http://`` links), ``bridges`` (Tor bridge lines, the bridge
distributor's text, Tor Browser's built-in bridge JSON), ``vpngate`` (the VPN Gate CSV list), ``riseup``
(RiseupVPN ``eip-service.json``). ``import_files`` detects the format of each file, gathers
the entries and prints them as a ``targets:`` YAML document that ``reachwatch`` loads as is.

Errors are one-line ``ConfigError``s naming the file (and line where there is one); the CLI exits 2.
Secrets never appear in the output: see ``importers.common``. Entries from the user's own files
(``.ovpn``, wg-quick, ``ss://`` and proxy links) are ``private: true``, since publishing a personal endpoint
hands it to the censor; entries from the public lists (VPN Gate, RiseupVPN) stay public.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from reachwatch.config.proxyurl import SCHEMES
from reachwatch.config.types import split_host_port
from reachwatch.errors import ConfigError
from reachwatch.importers.bridges import (
    bridge_entry,
    import_tor_browser_json,
    is_torrc_directive,
    looks_like_bridge_line,
    looks_like_distributor_text,
    looks_like_tor_browser_json,
    parse_line,
)
from reachwatch.importers.common import Output
from reachwatch.importers.ovpn import import_ovpn
from reachwatch.importers.proxyurl import import_proxy_url
from reachwatch.importers.riseup import import_riseup, looks_like_riseup
from reachwatch.importers.ssuri import import_ss_uri
from reachwatch.importers.vpngate import import_vpngate, looks_like_vpngate
from reachwatch.importers.wgquick import import_wgquick

MAX_FILE_BYTES = 8 * 1024 * 1024  # the VPN Gate list is ~1-2 MB


def parse_canary(canary: str | None) -> tuple[str | None, int | None]:
    if canary is None:
        return None, None
    try:
        return split_host_port(canary)
    except ValueError:
        raise ConfigError("canary", f"{canary!r} is not host:port") from None


def _links(path: Path, text: str, out: Output) -> list[dict[str, Any]]:
    """A file of lines: ``ss://`` URIs, proxy URLs and Tor bridge lines, ``#`` comments.

    The bridge distributor's answers (e-mail, Telegram, the web page) carry sentences around their
    bridge lines: in such a text only bridge lines count (``importers.bridges``).
    """
    distributor = looks_like_distributor_text(text)
    entries: list[dict[str, Any]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        entry = _line_entry(path, number, line, out, distributor=distributor)
        if entry is not None:
            entries.append(entry)
    if not entries:
        raise ConfigError(str(path), "no bridge lines, ss:// or proxy links in this file")
    return entries


def _line_entry(
    path: Path, number: int, line: str, out: Output, *, distributor: bool
) -> dict[str, Any] | None:
    """The entry for one line, or None for a line to skip (a torrc directive, a duplicate, prose)."""
    if looks_like_bridge_line(line):
        return bridge_entry(parse_line(f"{path}:{number}", line), out)
    if distributor or is_torrc_directive(line):
        return None
    scheme = line.split("://", 1)[0].lower() if "://" in line else ""
    if scheme == "ss":
        return import_ss_uri(path, number, line, out)
    if scheme in SCHEMES:
        return import_proxy_url(path, number, line, out)
    raise ConfigError(
        f"{path}:{number}",
        # nothing of the line is quoted: in a file of bridges, a mistyped one carries an address and a cert
        "not a recognised line (expected a bridge line such as 'obfs4 IP:PORT FINGERPRINT"
        " cert=... iat-mode=0', or an ss://, socks5:// or http:// link)",
    )



def import_file(path: Path, out: Output) -> list[dict[str, Any]]:
    """Entries from one file, format detected from its name and content."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(str(path), f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConfigError(str(path), f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), "not UTF-8 text") from None
    if not text.strip():
        raise ConfigError(str(path), "file is empty")
    suffix = path.suffix.lower()
    if looks_like_riseup(text):
        return import_riseup(path, text, out)
    if looks_like_vpngate(text):
        return import_vpngate(path, text, out)
    if looks_like_tor_browser_json(text):
        return import_tor_browser_json(path, text, out)
    if "[Interface]" in text:
        return import_wgquick(path, text, out)
    if suffix == ".ovpn" or (suffix == ".conf" and "\nremote " in "\n" + text):
        return import_ovpn(path, text, out)
    return _links(path, text, out)


def import_files(
    paths: Sequence[str | Path], *, output_dir: str | None = None, canary: str | None = None
) -> str:
    """YAML (``targets:`` list) for all ``paths``. ``output_dir``: write secrets there (0600) instead of
    referencing the original files. ``canary``: ``host:port`` of the echo canary for proxy and
    Shadowsocks entries (required for Shadowsocks)."""
    host, port = parse_canary(canary)
    out = Output(output_dir=Path(output_dir) if output_dir else None, canary_host=host, canary_port=port)
    out.check_output_dir()
    entries: list[dict[str, Any]] = []
    for raw in paths:
        entries.extend(import_file(Path(raw), out))
    document = yaml.safe_dump({"targets": entries}, sort_keys=False, allow_unicode=True)
    out.commit()  # secrets only once every file was read: a failure above leaves none behind
    return document
