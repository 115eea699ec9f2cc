"""Shadowsocks ``ss://`` URIs (SIP002, and the legacy all-base64 form), one per line.

Forms accepted::

    ss://BASE64URL(method:password)@host:port/?plugin=...#tag      SIP002
    ss://method:percent-encoded-password@host:port#tag            SIP002 plain userinfo (used by 2022 keys)
    ss://2022-blake3-aes-256-gcm:BASE64PSK@host:port#tag         the same, 2022 key not percent-encoded
    ss://BASE64(method:password@host:port)#tag                     legacy

Parsing only. Used by the importer (``importers/ssuri.py``) and, at run time, by the ``shadowsocks`` probe
when a target takes its key from the user's URI file (``uri_file``/``uri_line``) so the password never
enters the YAML.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from reachwatch.config.proxyurl import PORT_HINT, url_from_file
from reachwatch.errors import ConfigError


@dataclass(frozen=True)
class SsUri:
    method: str
    password: str
    host: str
    port: int
    tag: str
    plugin: str | None


def _b64decode(text: str) -> str:
    padded = text + "=" * (-len(text) % 4)
    try:
        return base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_")).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("userinfo is neither base64 nor method:password") from None


def parse_ss_uri(uri: str) -> SsUri:
    """Parse one ``ss://`` URI; ``ValueError`` with a short reason otherwise."""
    uri = uri.strip()
    if not uri.lower().startswith("ss://"):
        raise ValueError("not an ss:// URI")
    rest, _, fragment = uri[5:].partition("#")
    if "@" not in rest.split("/?")[0].split("?")[0]:
        # legacy: everything before the tag is base64(method:password@host:port)
        rest = _b64decode(rest.split("/?")[0].split("?")[0])
    userinfo, _, hostpart = rest.rpartition("@")
    # only what follows the last "@" is host, port and query: a 2022 base64 key pasted without
    # percent-encoding may hold a "/", which would otherwise end the authority early
    parts = urlsplit("ss://" + hostpart)
    userinfo = unquote(userinfo)
    if ":" not in userinfo:
        userinfo = _b64decode(userinfo)
    method, sep, password = userinfo.partition(":")
    if not sep or not method:
        raise ValueError("userinfo must be method:password")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(PORT_HINT) from None  # urlsplit's own message may quote part of the password
    if not parts.hostname or port is None:
        raise ValueError("ss:// URI needs host:port")
    plugin = parse_qs(parts.query).get("plugin", [None])[0]
    return SsUri(
        method=method.lower(),
        password=password,
        host=parts.hostname,
        port=port,
        tag=unquote(fragment),
        plugin=plugin,
    )


def key_from_uri_file(path: str, line: int, base_dir: Path) -> tuple[str, str]:
    """(method, password) from line ``line`` of a private file of ``ss://`` URIs."""
    try:
        uri = parse_ss_uri(url_from_file(path, line, base_dir, "uri_file"))
    except ValueError as exc:
        raise ConfigError(f"{path}:{line}", str(exc)) from None
    return uri.method, uri.password
