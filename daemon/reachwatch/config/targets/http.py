"""The ``http`` and ``https`` targets: one URL to GET and how to judge the answer (probe:
``probes/http.py``)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from reachwatch.config.targets.tls import TlsOptions
from reachwatch.config.types import TargetBase, Url, host_port

DEFAULT_MAX_BYTES = 64 * 1024
PATTERN_FLAGS = re.IGNORECASE | re.UNICODE
"""How ``blockpage_patterns`` are compiled: matched against the decoded page (``formats.blockpage``)."""
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # RFC 9110 field-name


class _HttpFields(TargetBase):
    """Fields shared by ``http`` and ``https`` targets: a URL to GET and how to judge the answer."""

    url: str = Field(description="what to GET; its scheme must match the kind")
    address: str | None = Field(
        default=None,
        description=(
            "connect to this IP instead of resolving the URL's host (the Host header and SNI still carry "
            "the URL's host)"
        ),
    )
    expected_status: list[int] = Field(
        default_factory=list, description="accepted status codes; empty means any 2xx or 3xx"
    )
    blockpage_patterns: list[str] = Field(
        default_factory=list,
        description=(
            "regular expressions searched, case-insensitively, in the body decoded with its charset "
            "(header, `<meta>`, UTF-8 or detected: `заблокирован` matches UTF-8 and cp1251 pages alike) "
            "and in the `Location` header; the built-in block page set applies without them, and "
            "`reachwatch validate` warns about a pattern that cannot match as written"
        ),
    )
    max_bytes: int = Field(
        default=DEFAULT_MAX_BYTES,
        ge=1,
        le=16 * 1024 * 1024,
        description="read at most this much of the body, then stop (fact `truncated`)",
    )
    headers: dict[str, str] = Field(default_factory=dict, description="extra request headers")

    @field_validator("blockpage_patterns")
    @classmethod
    def _compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from None
        return patterns

    @field_validator("headers")
    @classmethod
    def _sendable(cls, headers: dict[str, str]) -> dict[str, str]:
        # what h11 would refuse when sending; refused here so it is a config error at load, not a
        # crash at every attempt whose log line quotes the value (often a token)
        for name, value in headers.items():
            if not _TOKEN.fullmatch(name):
                raise ValueError(f"header name {name!r} is not an HTTP token")
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name} has a line break or NUL in its value")
        return headers

    def parsed(self) -> Url:
        return Url.parse(self.url)

    def destination(self) -> str:
        url = self.parsed()
        host = self.address or url.host
        return host_port(host, url.port)

    def sensitive_values(self) -> list[str]:
        values = [self.url, self.parsed().host, self.address]
        return [v for v in values if v]


class HttpTarget(_HttpFields):
    """A plain-HTTP URL."""

    kind: Literal["http"]

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str) -> str:
        if Url.parse(url).scheme != "http":
            raise ValueError("an http target needs an http:// URL (use kind https for https://)")
        return url


class HttpsTarget(_HttpFields, TlsOptions):
    """An HTTPS URL, fetched over verified TLS."""

    kind: Literal["https"]
    server_name: str | None = Field(
        default=None, description="SNI and the name verified, instead of the URL's host"
    )

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str) -> str:
        if Url.parse(url).scheme != "https":
            raise ValueError("an https target needs an https:// URL")
        return url

    def sensitive_values(self) -> list[str]:
        values = [*super().sensitive_values(), self.server_name, *self.spki_sha256, *self.cert_sha256]
        return [v for v in values if v]


_BYTE_ESCAPE = re.compile(r"\\x[89a-fA-F][0-9a-fA-F]")


def pattern_problem(pattern: str) -> str | None:
    """Why an operator pattern cannot match a decoded page as written (``None``: it can).

    - it matches the empty string, so it matches every page;
    - it spells UTF-8 bytes read as latin-1 ("Ð·Ð°Ð±..." instead of "заб..."), a work-around for the old
      latin-1 matching that now never matches;
    - it escapes non-ASCII bytes (``\\xd0\\xb7``): patterns match characters, not bytes.
    """
    try:
        compiled = re.compile(pattern, PATTERN_FLAGS)
    except re.error as exc:
        return f"invalid regular expression: {exc}"
    if compiled.search("") is not None:
        return "matches the empty string, so every page would be a block page"
    if _BYTE_ESCAPE.search(pattern):
        return "escapes bytes (\\x80-\\xff): patterns match decoded characters, write the letters themselves"
    try:
        recoded = pattern.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None
    if recoded != pattern:
        return f"looks like UTF-8 read as latin-1: write {recoded!r} instead"
    return None
