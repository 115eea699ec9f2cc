"""Config text and YAML with bounds: what a file an attacker (or a wrong path) hands ``validate`` costs.

Found by trying: ``validate`` on a FIFO or a silent ``/dev/stdin`` hung, ``/dev/zero`` ended in
``MemoryError``, 500 nested brackets in a ``RecursionError`` traceback, and a key written twice was
silently the last one (a target's ``host`` edited in one place and not the other). Here:

- ``read_text``: at most ``MAX_CONFIG_BYTES``; a pipe, FIFO or device is read without blocking, for at
  most ``READ_TIMEOUT`` seconds (a FIFO nobody writes is empty);
- ``load``: YAML through libyaml when available (as before: 10,000 targets in 1 s instead of 5.5 s), a
  key twice in one mapping is an error naming the line, nesting deeper than ``MAX_DEPTH`` is an error,
  and so is a document whose aliases expand to more than ``MAX_VALUES`` values (a "billion laughs"
  document is a few lines that validation would walk for hours).
Every failure is a ``YamlLimitError`` or ``yaml.YAMLError`` with a one-line message.
"""

from __future__ import annotations

import os
import select
import stat
import time
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node

MAX_CONFIG_BYTES = 32 * 1024 * 1024  # 10,000 targets are ~2 MB
READ_TIMEOUT = 10.0
MAX_DEPTH = 64
MAX_VALUES = 2_000_000


class YamlLimitError(ValueError):
    """The text is beyond a bound (size, time, nesting, expansion); ``str()`` is one line."""


def read_text(path: Path) -> str:
    """The file's text, bounded in size and, for anything but a regular file, in time.

    Raises ``OSError`` (cannot open or read), ``UnicodeDecodeError`` or ``YamlLimitError``.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
        if regular:
            os.set_blocking(fd, True)
        data = _read_bounded(fd, waiting=not regular)
    finally:
        os.close(fd)
    return data.decode("utf-8")


def _read_bounded(fd: int, *, waiting: bool) -> bytes:
    chunks: list[bytes] = []
    size = 0
    deadline = time.monotonic() + READ_TIMEOUT
    poller = select.poll()  # not select(): the daemon's descriptors go past FD_SETSIZE
    poller.register(fd, select.POLLIN)
    while True:
        if waiting:
            remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
            if not poller.poll(remaining_ms):
                raise YamlLimitError(f"no more data after {READ_TIMEOUT:.0f} s (a pipe nobody writes?)")
        try:
            chunk = os.read(fd, 1024 * 1024)
        except BlockingIOError:
            continue
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_CONFIG_BYTES:
            raise YamlLimitError(f"larger than {MAX_CONFIG_BYTES // (1024 * 1024)} MiB (a wrong path?)")
        chunks.append(chunk)


def _check_duplicates(loader: yaml.SafeLoader, node: MappingNode) -> None:
    seen: dict[Any, Node] = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # "<<: *defaults" then an own value for a key is how YAML overrides: fine
        key = loader.construct_object(key_node, deep=True)
        try:
            first = seen.setdefault(key, key_node)
        except TypeError:  # an unhashable key: the constructor reports it
            continue
        if first is not key_node:
            shown = repr(key) if len(repr(key)) <= 40 else repr(key)[:37] + "..."
            raise ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"duplicate key {shown} (first on line {first.start_mark.line + 1})",
                key_node.start_mark,
            )


def _strict(base: type[Any]) -> type[yaml.SafeLoader]:
    class Strict(base):  # type: ignore[misc]
        """``base`` refusing a key written twice in one mapping."""

        def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
            if isinstance(node, MappingNode):
                _check_duplicates(self, node)
            return super().construct_mapping(node, deep=deep)  # type: ignore[no-any-return]

    return Strict


_SAFE = _strict(yaml.SafeLoader)
# libyaml's parser when PyYAML was built with it (the wheels are); the constructor is the same Python one
_FAST = _strict(yaml.CSafeLoader) if hasattr(yaml, "CSafeLoader") else None


def load(text: str) -> Any:
    """The YAML document in ``text``, within the bounds above; raises ``yaml.YAMLError``/``YamlLimitError``.

    On an error the pure-Python parser reads the text again: it has the last word on what is valid, and
    its messages (line, column, problem) are the ones the error fixtures pin.
    """
    try:
        data = _load_with(_FAST, text) if _FAST is not None else _load_python(text)
    except (yaml.YAMLError, YamlLimitError) as exc:
        if _FAST is None:
            raise
        if "maximum nesting depth" in str(exc):  # libyaml stops at 1,000 levels, at once
            raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels") from None
        data = _load_python(text)
    _check_size(data)
    return data


def _load_python(text: str) -> Any:
    # the pure-Python composer recurses per level: 2,500 nested brackets took seconds to reach its
    # RecursionError (found by fuzzing), so count flow brackets first (a bound, not a parser)
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(0, depth - 1)
    if deepest > 4 * MAX_DEPTH:  # brackets inside quoted strings count too: a generous margin
        raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels")
    return _load_with(_SAFE, text)


def _load_with(loader: type[yaml.SafeLoader], text: str) -> Any:
    try:
        return yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels") from None


def _check_size(data: Any) -> None:
    """Bound the document as validation will see it, aliases expanded, without expanding them: the size
    and depth of each shared value are counted once (a doubling alias chain of 40 steps took 3 s to
    walk value by value). A value that contains itself (an alias inside its own anchor) is refused."""
    sizes: dict[int, tuple[int, int]] = {}  # id -> (values, depth), for containers done
    visiting: set[int] = set()
    stack: list[tuple[Any, bool]] = [(data, False)]
    while stack:
        node, done = stack.pop()
        if not isinstance(node, dict | list):
            continue
        key = id(node)
        kids = [*node.keys(), *node.values()] if isinstance(node, dict) else node
        if done:
            values, depth = 1, 0
            for kid in kids:
                kid_values, kid_depth = sizes.get(id(kid), (1, 0)) if isinstance(kid, dict | list) else (1, 0)
                values, depth = values + kid_values, max(depth, kid_depth)
            depth += 1
            if values > MAX_VALUES:
                raise YamlLimitError(f"more than {MAX_VALUES:,} values once aliases are expanded")
            if depth > MAX_DEPTH:
                raise YamlLimitError(f"nested deeper than {MAX_DEPTH} levels")
            sizes[key] = (values, depth)
            visiting.discard(key)
        elif key in visiting:  # still open below us on the stack: we are inside it
            raise YamlLimitError("a value contains itself (an alias inside its own anchor)")
        elif key not in sizes:
            visiting.add(key)
            stack.append((node, True))
            stack.extend((kid, False) for kid in kids)
