"""OpenVPN client configs (``.ovpn``) -> ``openvpn`` target entries, one per ``remote``.

Read: ``remote host [port] [proto]`` (also inside ``<connection>`` blocks), ``proto``, ``port``/``rport``,
``tls-auth FILE [dir]``, ``tls-crypt FILE``, ``tls-crypt-v2 FILE``, ``key-direction``, ``auth``, and the
inline ``<tls-auth>``, ``<tls-crypt>``, ``<tls-crypt-v2>`` blocks. Everything else (certificates, routes,
``auth-user-pass``) is not needed for the hard-reset probe and is ignored.

Keys stay where they are: an inline key is referenced by the ``.ovpn`` path itself (the probe reads the
block out of it, so the file must be private), an external key file by its path resolved against the
``.ovpn``'s directory; with an output directory the key block is written to its own 0600 file instead.

Entries from a user's own ``.ovpn`` are ``private: true``: a personal endpoint published in metrics, the
API and the journal is handed to the censor. (The public VPN Gate list reuses ``entries_from_ovpn`` with
``private=False``.)
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reachwatch.errors import ConfigError
from reachwatch.formats.openvpn_packets import KeyFormatError, parse_static_key, parse_tls_crypt_v2_client_key
from reachwatch.importers.common import Output, entry_name

KEY_BLOCKS = ("tls-auth", "tls-crypt", "tls-crypt-v2")
_BLOCK_OPEN = re.compile(r"^<([a-z0-9-]+)>$")
_PROTOS = {
    "udp": "udp",
    "udp4": "udp",
    "udp6": "udp",
    "tcp": "tcp",
    "tcp-client": "tcp",
    "tcp4": "tcp",
    "tcp6": "tcp",
    "tcp4-client": "tcp",
    "tcp6-client": "tcp",
}


@dataclass
class OvpnConfig:
    """What the probe needs from one .ovpn."""

    remotes: list[tuple[str, int | None, str | None, int]] = field(
        default_factory=list
    )  # host, port, proto, line
    proto: str = "udp"
    port: int = 1194
    key_mode: str | None = None  # tls-auth / tls-crypt / tls-crypt-v2
    key_file: str | None = None  # external key path as written
    inline_key: str | None = None  # the inline block's text
    key_direction: int | None = None
    auth: str | None = None


def _port(value: str, where: str) -> int:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        raise ConfigError(where, f"invalid port {value!r}")
    return int(value)


def _proto(value: str, where: str) -> str:
    if value.lower() not in _PROTOS:
        raise ConfigError(where, f"unknown proto {value!r} (udp or tcp expected)")
    return _PROTOS[value.lower()]


def _set_key(cfg: OvpnConfig, mode: str, where: str) -> None:
    if cfg.key_mode is not None and cfg.key_mode != mode:
        raise ConfigError(where, f"both {cfg.key_mode} and {mode} are set; a server uses one")
    cfg.key_mode = mode


def parse_ovpn(text: str, source: str) -> OvpnConfig:
    """Parse the directives we need; ``ConfigError`` naming ``source:line`` otherwise."""
    cfg = OvpnConfig()
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line_no = i + 1
        where = f"{source}:{line_no}"
        line = lines[i].strip()
        i += 1
        if not line or line[0] in "#;":
            continue
        block = _BLOCK_OPEN.match(line)
        if block:
            tag = block.group(1)
            if tag == "connection":
                continue  # its remote/proto lines are read like top-level ones
            end = f"</{tag}>"
            body: list[str] = []
            while i < len(lines) and lines[i].strip() != end:
                body.append(lines[i])
                i += 1
            if i >= len(lines):
                raise ConfigError(where, f"<{tag}> is not closed")
            i += 1
            if tag in KEY_BLOCKS:
                _set_key(cfg, tag, where)
                cfg.inline_key = "\n".join(body) + "\n"
                try:
                    if tag == "tls-crypt-v2":
                        parse_tls_crypt_v2_client_key(cfg.inline_key)
                    else:
                        parse_static_key(cfg.inline_key)
                except KeyFormatError as exc:
                    raise ConfigError(where, f"inline <{tag}>: {exc}") from None
            continue
        if line.startswith("</"):
            continue
        try:
            words = shlex.split(line, comments=False)
        except ValueError as exc:
            raise ConfigError(where, f"cannot parse line ({exc})") from None
        name, args = words[0].lower(), words[1:]
        if name == "remote":
            if not args:
                raise ConfigError(where, "remote needs a host")
            port = _port(args[1], where) if len(args) > 1 else None
            proto = _proto(args[2], where) if len(args) > 2 else None
            cfg.remotes.append((args[0], port, proto, line_no))
        elif name == "proto" and args:
            cfg.proto = _proto(args[0], where)
        elif name in ("port", "rport") and args:
            cfg.port = _port(args[0], where)
        elif name in KEY_BLOCKS and args:
            _set_key(cfg, name, where)
            if args[0] != "[inline]":
                cfg.key_file = args[0]
            if name == "tls-auth" and len(args) > 1:
                cfg.key_direction = _direction(args[1], where)
        elif name == "key-direction" and args:
            cfg.key_direction = _direction(args[0], where)
        elif name == "auth" and args:
            cfg.auth = args[0].upper()
    if not cfg.remotes:
        raise ConfigError(source, "no 'remote' line: not an OpenVPN client config")
    if cfg.key_mode is not None and cfg.key_file is None and cfg.inline_key is None:
        raise ConfigError(source, f"{cfg.key_mode} is set but its key is neither a file nor inline")
    return cfg


def _direction(value: str, where: str) -> int:
    if value not in ("0", "1"):
        raise ConfigError(where, f"key direction must be 0 or 1, got {value!r}")
    return int(value)


def entries_from_ovpn(
    cfg: OvpnConfig, path: Path, stem: str, out: Output, *, private: bool, inline_in_file: bool = True
) -> list[dict[str, Any]]:
    """Target entries for every remote. ``inline_in_file`` is False when the text did not come from
    ``path`` verbatim (VPN Gate's base64 column), so an inline key cannot be referenced there.
    ``private``: the endpoints are the user's own (not from a public list)."""
    key_ref: str | None = None
    if cfg.key_mode is not None:
        if out.output_dir is not None and cfg.inline_key is not None:
            key_ref = str(out.write_secret(f"{entry_name(stem)}.{cfg.key_mode}.key", cfg.inline_key.encode()))
        elif cfg.inline_key is not None:
            if not inline_in_file:
                raise ConfigError(str(path), f"inline {cfg.key_mode} key: import with an output directory")
            out.require_private(path)
            key_ref = str(path.resolve())
        else:
            assert cfg.key_file is not None
            key_path = Path(cfg.key_file).expanduser()
            key_ref = str(key_path if key_path.is_absolute() else (path.resolve().parent / key_path))
    entries: list[dict[str, Any]] = []
    for number, (host, remote_port, remote_proto, _line) in enumerate(cfg.remotes, 1):
        proto = remote_proto or cfg.proto
        port = remote_port or cfg.port
        base = stem if len(cfg.remotes) == 1 else f"{stem}-{number}-{proto}{port}"
        entry: dict[str, Any] = {
            "name": out.unique_name(entry_name(base)),
            "kind": "openvpn",
            **({"private": True} if private else {}),
            "host": host,
            "port": port,
            "proto": proto,
        }
        if cfg.key_mode is not None:
            entry[cfg.key_mode.replace("-", "_") + "_file"] = key_ref
        if cfg.key_mode == "tls-auth":
            if cfg.key_direction is not None:
                entry["key_direction"] = cfg.key_direction
            if cfg.auth:
                entry["auth"] = cfg.auth
        entries.append(entry)
    return entries


def import_ovpn(path: Path, text: str, out: Output) -> list[dict[str, Any]]:
    """One ``private: true`` ``openvpn`` entry per ``remote`` of the user's own OpenVPN client config."""
    return entries_from_ovpn(parse_ovpn(text, str(path)), path, path.stem, out, private=True)
