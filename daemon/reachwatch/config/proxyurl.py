"""Proxy URLs as users keep them: ``socks5://user:pass@host:port`` and ``http://user:pass@host:port``.

Parsing only (no network). Used twice: by the importer (a file of URLs -> ``socks5``/``http_proxy``
target entries, ``importers/proxyurl.py``) and by those probes at run time, when a target takes its
credentials from the URL file itself (``url_file``/``url_line``) so the password never has to be copied
into the YAML.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from reachwatch.config.secrets import read_secret, read_secret_file
from reachwatch.errors import ConfigError

SCHEMES = {"socks5": "socks5", "socks5h": "socks5", "http": "http_proxy"}
DEFAULT_PORTS = {"socks5": 1080, "socks5h": 1080, "http": 8080}
PORT_HINT = "the port is not a number from 1 to 65535 (percent-encode / ? # @ in a password)"


@dataclass(frozen=True)
class ProxyUrl:
    kind: str  # target kind: socks5 or http_proxy
    host: str
    port: int
    username: str | None
    password: str | None
    fragment: str


def parse_proxy_url(url: str) -> ProxyUrl:
    """Parse one proxy URL; ``ValueError`` with a short reason when it is not one we can probe."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        # urlsplit's message quotes the "port", which is part of the password when the password holds
        # an unencoded / ? or #: say what is wrong without repeating any of it
        raise ValueError(PORT_HINT) from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"unsupported proxy scheme {scheme!r} (use socks5://, socks5h:// or http://)")
    if not parts.hostname:
        raise ValueError("proxy URL has no host")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError("proxy URL must not have a path or query")
    return ProxyUrl(
        kind=SCHEMES[scheme],
        host=parts.hostname,
        port=port or DEFAULT_PORTS[scheme],
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
        fragment=unquote(parts.fragment),
    )


def url_from_file(path: str, line: int, base_dir: Path, field: str) -> str:
    """Line ``line`` (1-based) of a secret URL file; the file must not be readable by others."""
    lines = read_secret_file(path, base_dir, field).decode("utf-8", "replace").splitlines()
    if not 1 <= line <= len(lines):
        raise ConfigError(field, f"{path} has no line {line}")
    return lines[line - 1].strip()


def proxy_credentials(
    *,
    username: str | None,
    password_file: str | None,
    password_env: str | None,
    url_file: str | None,
    url_line: int,
    base_dir: Path,
) -> tuple[str | None, str | None]:
    """The (username, password) a proxy target uses, from the URL file or the ``password_*`` fields."""
    if url_file:
        try:
            url = parse_proxy_url(url_from_file(url_file, url_line, base_dir, "url_file"))
        except ValueError as exc:
            raise ConfigError(f"{url_file}:{url_line}", str(exc)) from None
        return url.username, url.password
    password = read_secret(password_file, password_env, base_dir, "password_file")
    if username is None:
        return None, None
    return username, password or ""
