"""Proxy URLs: ``socks5://user:pass@host:port`` and ``http://user:pass@host:port``, one per line, to
``socks5``/``http_proxy`` target entries (the URL format itself is ``config.proxyurl``, which the probes
also read at run time for ``url_file``/``url_line``).

Imported entries are ``private: true``: the proxies are the user's own, and publishing them (metrics,
API, journal) would hand them to the censor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reachwatch.config.proxyurl import parse_proxy_url
from reachwatch.errors import ConfigError
from reachwatch.importers.common import Output, entry_name


def import_proxy_url(path: Path, line_no: int, text: str, out: Output) -> dict[str, Any]:
    """One ``socks5``/``http_proxy`` target entry from the URL on ``line_no`` of ``path``."""
    try:
        url = parse_proxy_url(text)
    except ValueError as exc:
        raise ConfigError(f"{path}:{line_no}", str(exc)) from None
    name = out.unique_name(entry_name(url.fragment or f"{url.kind}-{path.stem}-{line_no}"))
    # the user's own proxy: private, so metrics, API and journal never publish its address
    entry: dict[str, Any] = {
        "name": name,
        "kind": url.kind,
        "private": True,
        "host": url.host,
        "port": url.port,
    }
    if url.password is not None:
        if out.output_dir is not None:
            entry["username"] = url.username or ""
            entry["password_file"] = str(out.write_secret(f"{name}.password", url.password.encode()))
        else:
            out.require_private(path)
            entry["url_file"] = str(path.resolve())
            entry["url_line"] = line_no
    elif url.username is not None:
        entry["username"] = url.username
    canary = out.canary()
    if canary is not None:
        entry["canary"] = canary
    return entry
