"""Tor bridges as people get them -> ``tor_bridge`` target entries.

Three sources, each in the shape it really has:

- **Bridge lines**, one per line, as Tor Browser's "Provide a bridge" box, a torrc and
  bridges.torproject.org show them: ``[Bridge] [transport] IP:PORT [FINGERPRINT] [k=v ...]``, every
  transport (obfs4, webtunnel, snowflake, meek_lite, conjure ...), IPv4 or ``[IPv6]``, fingerprints in
  either case. Other torrc directives that come with them (``UseBridges 1``, ``ClientTransportPlugin
  ...``) are skipped; anything else is an error naming the file and line.
- **The bridge distributor's text**: the e-mail from bridges@torproject.org, a Telegram bot's answer or
  the web page copied whole: the bridge lines sit among sentences ("Here are your bridges:"). When a
  file carries the distributor's words, lines that are not bridge lines are skipped; a line that *is* a
  bridge line and is broken (a cut-off ``cert=``) is still an error.
- **Tor Browser's built-in bridges** as JSON: ``pt_config.json`` from tor-browser-build (``"bridges":
  {"obfs4": [...]}``), the moat ``circumvention/builtin`` map (``{"obfs4": [...]}``), and the moat
  ``circumvention/settings`` answer (``"settings": [{"bridges": {"type", "source", "bridge_strings"}}]``).

Entries are ``private: true`` (a bridge someone was given must stay unknown to the censor) except the
built-in ones, which every Tor Browser ships. Names come from the transport and the bridge's hashed
fingerprint (``BridgeLine.hashed_fingerprint``), never from its address; importing the same bridges again
gives the same names, and a bridge listed twice becomes one entry.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from reachwatch.config.bridgeline import BridgeLine, BridgeLineError, parse_bridge_line
from reachwatch.errors import ConfigError
from reachwatch.importers.common import Output, entry_name

# a line that means to be a bridge line: optional keyword, optional transport, then an address
_ATTEMPT = re.compile(
    r"^(?:bridge\s+)?(?:[A-Za-z_][A-Za-z0-9_]*\s+)?(?:\[[0-9A-Fa-f:.]*\]|\d{1,3}(?:\.\d{1,3}){3}):\d",
    re.IGNORECASE,
)
# torrc directives that travel with bridge lines and say nothing about a bridge
TORRC_DIRECTIVES = frozenset({"usebridges", "clienttransportplugin", "updatebridgesfromauthority"})
# words only the bridge distributor's answers carry (e-mail, Telegram, the web page)
DISTRIBUTOR_MARKERS = (
    "here are your bridges",
    "here is your bridge",
    "this is an automated message",
    "bridges.torproject.org",
    "getbridgesbot",
)
# tor_bridge targets wait for their batch (tor.batch_timeout, 60 s by default): the attempt's bound must
# exceed it; and a bridge is a scarce endpoint, probed gently
BRIDGE_TIMEOUT = "90s"
BRIDGE_INTERVAL = "30m"
MAX_JSON_BRIDGES = 1000


def looks_like_bridge_line(line: str) -> bool:
    """Whether ``line`` means to be a bridge line (it may still be a broken one)."""
    return bool(_ATTEMPT.match(line.strip()))


def is_torrc_directive(line: str) -> bool:
    return line.split(maxsplit=1)[0].lower() in TORRC_DIRECTIVES if line.strip() else False


def looks_like_distributor_text(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in DISTRIBUTOR_MARKERS)


def bridge_entry(
    line: BridgeLine, out: Output, *, public: bool = False, prefix: str = "", group: str = "bridges"
) -> dict[str, Any] | None:
    """One ``tor_bridge`` entry, or ``None`` when this run already has the same bridge.

    With an output directory a private bridge's line goes to its own 0600 file (``bridge_file``): the
    generated YAML then holds no bridge line. Without one it is written inline (the loader warns).
    """
    value = line.torrc_value()
    if value in out.seen:
        return None
    out.seen.add(value)
    base = entry_name(f"{prefix}{line.transport_name}-{line.hashed_fingerprint()[:8].lower()}")
    name = out.unique_name(base)
    entry: dict[str, Any] = {
        "name": name,
        "kind": "tor_bridge",
        "private": not public,
        "group": group,
        "interval": BRIDGE_INTERVAL,
        "timeout": BRIDGE_TIMEOUT,
    }
    if not public and out.output_dir is not None:
        entry["bridge_file"] = str(out.write_secret(f"{name}.bridge", f"{value}\n".encode()))
    else:
        entry["bridge"] = value
    return entry


def parse_line(where: str, text: str) -> BridgeLine:
    try:
        return parse_bridge_line(text)
    except BridgeLineError as exc:
        raise ConfigError(where, f"bad bridge line: {exc}") from None


# --- Tor Browser's built-in bridges (JSON) --------------------------------------------------------------


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def _builtin_map(data: Any) -> dict[str, list[Any]] | None:
    """``transport -> [lines]`` from pt_config.json (``bridges``) or moat's builtin map, else None."""
    if isinstance(data, dict) and isinstance(data.get("bridges"), dict) and "pluggableTransports" in data:
        data = data["bridges"]
    if isinstance(data, dict) and data and all(isinstance(v, list) for v in data.values()):
        return data
    return None


def _settings(data: Any) -> list[dict[str, Any]] | None:
    """The ``bridges`` objects of a moat ``circumvention/settings`` answer, else None."""
    if not isinstance(data, dict) or not isinstance(data.get("settings"), list):
        return None
    settings = [s for s in data["settings"] if isinstance(s, dict)]
    return [s["bridges"] for s in settings if isinstance(s.get("bridges"), dict)]


def looks_like_tor_browser_json(text: str) -> bool:
    if not text.lstrip().startswith("{"):
        return False
    data = _json(text)
    return _builtin_map(data) is not None or _settings(data) is not None


def import_tor_browser_json(path: Path, text: str, out: Output) -> list[dict[str, Any]]:
    """Entries for every bridge in a built-in-bridges JSON file (public when the source is built in)."""
    data = _json(text)
    groups: list[tuple[str, list[Any], bool]] = []  # (label for errors, lines, public)
    builtin = _builtin_map(data)
    if builtin is not None:
        groups = [(f"bridges.{name}", lines, True) for name, lines in builtin.items()]
    else:
        for i, bridges in enumerate(_settings(data) or []):
            lines = bridges.get("bridge_strings")
            if not isinstance(lines, list):
                raise ConfigError(f"{path}: settings[{i}].bridges", "bridge_strings is not a list")
            groups.append((f"settings[{i}].bridges", lines, bridges.get("source") == "builtin"))
    entries: list[dict[str, Any]] = []
    for label, lines, public in groups:
        for j, raw in enumerate(lines):
            where = f"{path}: {label}[{j}]"
            if not isinstance(raw, str):
                raise ConfigError(where, "not a bridge line (expected a string)")
            if len(entries) >= MAX_JSON_BRIDGES:
                raise ConfigError(str(path), f"more than {MAX_JSON_BRIDGES} bridges")
            entry = bridge_entry(
                parse_line(where, raw),
                out,
                public=public,
                prefix="builtin-" if public else "",
                group="tor-browser-builtin" if public else "bridges",
            )
            if entry is not None:
                entries.append(entry)
    if not entries:
        raise ConfigError(str(path), "no bridges in this JSON file")
    return entries
