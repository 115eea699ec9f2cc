"""What ``reachwatch check THING ...`` can test without a config: each THING -> target entries.

A THING is, in this order of recognition:

- an existing file: whatever ``reachwatch import`` reads (``.ovpn``, wg-quick ``.conf``, a file of links or
  bridge lines, the distributor's e-mail, Tor Browser's bridge JSON);
- a URL: ``ss://`` (needs ``--canary``), ``socks5://`` / ``socks5h://`` / ``http://`` proxies, or
  ``tcp://host:port`` / ``tls://host:port``;
- a bridge line: a transport name or the ``Bridge`` keyword before the address, or words after it
  (``obfs4 192.0.2.1:443 FINGERPRINT cert=... iat-mode=0``; quote it, it has spaces);
- ``host:port`` (``[v6]:port``): a ``tcp`` target, or ``tls`` with ``--kind tls``.

A bare ``IP:PORT`` is read as ``host:port``, not as a vanilla bridge without fingerprint: with
``Bridge IP:PORT`` it is a bridge. Entries are private (a one-off check is often of the user's own
endpoint) and named ``check-N-<kind>`` after their position, never after their address.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from reachwatch.config.proxyurl import SCHEMES
from reachwatch.config.types import split_host_port
from reachwatch.errors import ConfigError
from reachwatch.importers import import_file
from reachwatch.importers.bridges import bridge_entry, parse_line
from reachwatch.importers.common import Output
from reachwatch.importers.proxyurl import import_proxy_url
from reachwatch.importers.ssuri import import_ss_uri

PlainKind = Literal["tcp", "tls"]
MAX_THING_CHARS = 8192


def _is_bridge_line(thing: str) -> bool:
    """A bridge line says so: the ``Bridge`` keyword, a transport before the address, or words after it."""
    words = thing.split()
    if not words:
        return False
    if words[0].lower() == "bridge":
        return True
    return len(words) >= 2 and (":" in words[1] or ":" in words[0])


def _plain(where: str, value: str, kind: str, index: int) -> dict[str, Any]:
    try:
        host, port = split_host_port(value)
    except ValueError:
        raise ConfigError(where, "expected host:port (or [IPv6]:port)") from None
    entry: dict[str, Any] = {"name": f"check-{index}-{kind}", "kind": kind, "private": True, "host": host}
    entry["port"] = port
    return entry


def entries_for(things: Sequence[str], out: Output, *, kind: PlainKind = "tcp") -> list[dict[str, Any]]:
    """Target entries for the command line's THINGs; ``ConfigError`` names the argument that is wrong."""
    entries: list[dict[str, Any]] = []
    for index, raw in enumerate(things, 1):
        thing = raw.strip()
        where = f"argument {index}"
        if not thing:
            raise ConfigError(where, "is empty")
        if len(thing) > MAX_THING_CHARS:
            raise ConfigError(where, f"is longer than {MAX_THING_CHARS} characters")
        if "\n" not in thing and os.path.lexists(thing):
            entries += import_file(Path(thing), out)
            continue
        scheme = thing.split("://", 1)[0].lower() if "://" in thing else ""
        arg = Path(where)  # the importers name "<path>:<line>"; here that reads "argument N:1"
        if scheme == "ss":
            entry = import_ss_uri(arg, 1, thing, out)
            entries.append({**entry, "name": f"check-{index}-{entry['kind']}"})
        elif scheme in SCHEMES:
            entry = import_proxy_url(arg, 1, thing, out)
            entries.append({**entry, "name": f"check-{index}-{entry['kind']}"})
        elif scheme in ("tcp", "tls"):
            entries.append(_plain(where, thing.split("://", 1)[1].rstrip("/"), scheme, index))
        elif scheme:
            raise ConfigError(
                where, f"unknown scheme {scheme[:12]!r}://: use ss, socks5, socks5h, http, tcp or tls"
            )
        elif _is_bridge_line(thing):
            bridge = bridge_entry(parse_line(where, thing), out)
            if bridge is not None:
                entries.append({**bridge, "name": f"check-{index}-{bridge['name']}"})
        elif os.sep in thing or thing.endswith((".ovpn", ".conf", ".txt", ".json")):
            raise ConfigError(where, f"no such file: {thing[:200]}")
        else:
            entries.append(_plain(where, thing, kind, index))
    if not entries:
        raise ConfigError("check", "nothing to check")
    return entries
