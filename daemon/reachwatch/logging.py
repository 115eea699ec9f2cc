"""Logging: structlog set-up (console or JSON) and the redaction step every log line passes through.

Redaction is a processor, not a convention: whatever a module logs (an event field, an exception text,
a traceback, a stdlib logger's message), the values that identify a private target
(``TargetBase.sensitive_values()``: its host, fingerprint, keys...) and every configured secret are
replaced with ``[redacted]`` before the line is rendered. The set is rebuilt on every config reload.

Levels: verdict and vantage changes at ``info``, each probe at ``debug``.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import Any, TextIO

import structlog
from pydantic import BaseModel

from reachwatch.config.load import LoadedConfig
from reachwatch.config.secrets import MAX_SECRET_BYTES, FileKind, file_fields, resolve_path

REDACTED = "[redacted]"
LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
# shorter strings would redact ordinary words; a real host, key or password is longer than this
MIN_SECRET_LEN = 3
MIN_LINE_LEN = 16


class Redactor:
    """Replaces sensitive substrings in every string of an event, recursively."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: tuple[str, ...] = ()

    def update(self, values: Iterable[str]) -> None:
        # longest first, so "10.0.0.1" inside "10.0.0.10" never leaves a stray "0"
        clean = {v.strip() for v in values if v and len(v.strip()) >= MIN_SECRET_LEN}
        with self._lock:
            self._values = tuple(sorted(clean, key=len, reverse=True))

    @property
    def values(self) -> tuple[str, ...]:
        return self._values

    def redact(self, obj: Any) -> Any:
        values = self._values
        if not values:
            return obj
        return self._walk(obj, values)

    def _walk(self, obj: Any, values: tuple[str, ...]) -> Any:
        if isinstance(obj, str):
            for v in values:
                if v in obj:
                    obj = obj.replace(v, REDACTED)
            return obj
        if isinstance(obj, dict):
            return {self._walk(k, values): self._walk(v, values) for k, v in obj.items()}
        if isinstance(obj, list | tuple | set | frozenset):
            return [self._walk(v, values) for v in obj]
        if isinstance(obj, int | float | bool) or obj is None:
            return obj
        # anything else (exceptions, paths, objects) is rendered as text: redact that text
        return self._walk(str(obj), values)

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        return {k: self.redact(v) for k, v in event_dict.items()}


REDACTOR = Redactor()


def _secret_values(config: BaseModel, base_dir: Path) -> list[str]:
    """Values of every secret the config names (``SecretEnv``/``SecretFile`` fields; best effort: the
    loader reports unreadable ones)."""
    out: list[str] = []
    for item in file_fields(config):
        if item.kind is FileKind.SECRET_ENV:
            secret = os.environ.get(item.value)
            if secret:
                out.append(secret)
        elif item.kind is FileKind.SECRET_FILE:
            out += _file_secret(item.value, base_dir)
    return out


def _file_secret(value: str, base_dir: Path) -> list[str]:
    try:
        with resolve_path(value, base_dir).open("rb") as fh:
            # as much as a probe may read (config.secrets), so no part of a secret escapes redaction
            text = fh.read(MAX_SECRET_BYTES).decode("utf-8", "replace")
    except OSError:
        return []
    # a multi-line secret (a key, a bridge list) is redacted as a whole and by its longer lines; short
    # lines of a config-like file ("dev tun") are ordinary words, not secrets
    return [text.strip(), *(ln.strip() for ln in text.splitlines() if len(ln.strip()) >= MIN_LINE_LEN)]


def sensitive_values(loaded: LoadedConfig) -> list[str]:
    """Everything that must never reach a log line under this config."""
    values: list[str] = []
    for target in loaded.config.all_targets():
        if target.private:
            try:
                values += target.sensitive_values()
            except NotImplementedError:
                continue
    values += _secret_values(loaded.config, loaded.base_dir)
    values += loaded.config.tor.relay_list.sensitive_values()  # the directory tor's bridges
    return values


def configure(level: str = "info", fmt: str = "console", stream: TextIO | None = None) -> None:
    """Set up structlog (and stdlib logging, for aiohttp/asyncio) to write redacted lines to ``stream``."""
    out = stream or sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        REDACTOR,  # last before rendering: sees the final text of every field, tracebacks included
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer(sort_keys=False)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_log_level, *shared[2:]],
        )
    )
    # Library debug chatter is not ours to show. The level goes on the handler too: a library logger
    # with its own level (stem sets "stem" to TRACE) propagates records past the root's level, and
    # stem's DEBUG lines quote SETCONF commands with whole bridge lines.
    library_level = max(LEVELS[level], logging.INFO)
    handler.setLevel(library_level)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(library_level)
    logging.getLogger("stem").setLevel(logging.WARNING)
    logging.getLogger("aiohttp.access").disabled = True  # scraper addresses are not worth a line each


def update_redaction(loaded: LoadedConfig) -> None:
    """Rebuild the redaction set for a (re)loaded config."""
    REDACTOR.update(sensitive_values(loaded))
