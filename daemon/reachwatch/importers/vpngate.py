"""The VPN Gate server list (``http://www.vpngate.net/api/iphone/``, CSV) -> ``openvpn`` target entries.

Layout: a first line ``*vpn_servers``, a header line starting with ``#`` (``#HostName,IP,Score,...,
OpenVPN_ConfigData_Base64``), one row per server, and a closing ``*`` line. The last column is a whole
``.ovpn`` in base64, parsed by ``importers.ovpn``; the rows' country goes into a ``country`` label.
A row that cannot be read is an error naming its line: silently dropping servers would make a
country's list look smaller than it is.

The list is public, so its entries stay public (unlike a user's own ``.ovpn``).
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
from pathlib import Path
from typing import Any

from reachwatch.errors import ConfigError
from reachwatch.importers.common import Output, entry_name
from reachwatch.importers.ovpn import entries_from_ovpn, parse_ovpn

CONFIG_COLUMN = "OpenVPN_ConfigData_Base64"


def looks_like_vpngate(text: str) -> bool:
    """Whether ``text`` starts like the VPN Gate CSV list (``*vpn_servers`` or its ``#HostName`` header)."""
    head = text.lstrip()[:200]
    return head.startswith("*vpn_servers") or head.startswith("#HostName,")


def import_vpngate(path: Path, text: str, out: Output) -> list[dict[str, Any]]:
    """``openvpn`` entries from each row's embedded .ovpn, labelled with the row's country."""
    source = str(path)
    header: list[str] | None = None
    entries: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        where = f"{source}:{number}"
        if not line.strip() or line.startswith("*"):
            continue
        try:
            row = next(csv.reader(io.StringIO(line)))
        except csv.Error as exc:  # e.g. a field over the csv module's 128 KiB limit
            raise ConfigError(where, f"not a CSV row: {exc}") from None
        if line.startswith("#"):
            header = [c.strip() for c in row]
            header[0] = header[0].lstrip("#")
            if CONFIG_COLUMN not in header or "HostName" not in header:
                raise ConfigError(where, f"header has no HostName or {CONFIG_COLUMN} column")
            continue
        if header is None:
            raise ConfigError(where, "data before the '#HostName,...' header line")
        if len(row) != len(header):
            raise ConfigError(where, f"row has {len(row)} columns, header has {len(header)}")
        fields = dict(zip(header, row, strict=True))
        try:
            ovpn = base64.b64decode(fields[CONFIG_COLUMN], validate=True).decode("utf-8")
        except (binascii.Error, ValueError, UnicodeDecodeError):
            raise ConfigError(where, f"{CONFIG_COLUMN} is not base64 of a text config") from None
        cfg = parse_ovpn(ovpn, f"{where} ({CONFIG_COLUMN})")
        stem = entry_name(f"vpngate-{fields['HostName']}")
        for entry in entries_from_ovpn(cfg, path, stem, out, private=False, inline_in_file=False):
            country = fields.get("CountryShort", "").strip()
            entry["group"] = "vpngate"
            if country:
                entry["labels"] = {"country": country}
            entries.append(entry)
    if not entries:
        raise ConfigError(source, "no servers in the VPN Gate list")
    return entries
