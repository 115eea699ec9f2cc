"""A pydantic validation error as one line an operator can act on: ``targets[2] (name 'x').port: ...``.

Shared by the config loader and the web config loader (``config.webconfig``), so both files report their
mistakes the same way.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import ValidationError


def _path(loc: tuple[int | str, ...], data: Any) -> str:
    """``('targets', 2, 'tcp', 'port')`` -> ``targets[2] (name 'x').port``; drops pydantic's union tags."""
    out = ""
    node: Any = data
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            node = node[part] if isinstance(node, list) and part < len(node) else None
            if isinstance(node, dict) and isinstance(node.get("name"), str):
                out += f" (name {_shown(node['name'])})"
            continue
        if isinstance(node, dict) and part in node:
            out += f".{_key(part)}" if out else _key(part)
            node = node[part]
        elif isinstance(node, dict) and "kind" in node and part == node.get("kind"):
            continue  # the discriminator tag pydantic inserts for unions
        else:
            out += f".{_key(str(part))}" if out else _key(str(part))
            node = None
    return out or "(top level)"


_PLAIN_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _key(part: str) -> str:
    """A key as written when it is a plain word, else quoted: a key with a newline or a dot in it must
    not split the message or read as a path."""
    return part if _PLAIN_KEY.match(part) else _shown(part)


def _shown(value: str) -> str:
    text = repr(value)
    return text if len(text) <= 42 else text[:39] + "..."


def format_validation_error(exc: ValidationError, data: Any) -> str:
    """The first error, in words an operator can act on; the count of others if any."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    where = _path(tuple(first["loc"]), data)
    kind = first["type"]
    if kind == "extra_forbidden":
        msg = "unknown key"
    elif kind == "missing":
        msg = "required field is missing"
    elif kind == "union_tag_invalid":
        msg = f"unknown kind {first['ctx']['tag']!r}; known kinds: {first['ctx']['expected_tags']}"
    elif kind == "union_tag_not_found":
        msg = "missing 'kind'"
    else:
        msg = first["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
    more = f" (and {len(errors) - 1} more errors)" if len(errors) > 1 else ""
    if not first["loc"] and msg.startswith("targets["):
        return f"{msg}{more}"  # a whole-config rule that names the field itself
    return f"{where}: {msg}{more}"
