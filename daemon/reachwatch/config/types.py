"""Building blocks shared by every part of the config schema: strict models, durations, host:port and
URL values, the target base.

Per-kind target models live in ``config/targets/<kind>.py`` and subclass ``TargetBase``; ``config.schema``
assembles them from the literal registry ``config.targets.TARGET_MODELS``, and each probe imports its model
from there. Nothing here imports a probe, the network layer or a runtime service.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator

_DURATION = re.compile(r"^(?P<num>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> Any:
    """Accept ``90``, ``1.5``, ``"250ms"``, ``"30s"``, ``"5m"``, ``"2h"``, ``"30d"``; return seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 2h")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match:
            return float(match["num"]) * _UNITS[match["unit"]]
        raise ValueError(f"invalid duration {value!r}: use a number with ms, s, m, h or d (e.g. 30s, 5m)")
    return value


MAX_DURATION = 10 * 365 * 86400.0
"""Ten years: longer than any interval, timeout or retention means something else was meant."""


def _finite_duration(value: float) -> float:
    # .inf (YAML), 1e300 or 9999999999999d silently disabled a target: its first attempt never came
    if not math.isfinite(value) or value > MAX_DURATION:
        raise ValueError("a duration must be finite and at most 10 years (3650d)")
    return value


Duration = Annotated[float, BeforeValidator(parse_duration), Field(gt=0), AfterValidator(_finite_duration)]
"""Seconds, written in YAML as ``30s``/``5m``/``2h`` or a bare number; finite, at most ten years."""

_BYTES = re.compile(r"^(?P<num>\d+)\s*(?P<unit>B|KiB|MiB|KB|MB)?$")
_BYTE_UNITS = {None: 1, "B": 1, "KiB": 1024, "MiB": 1024 * 1024, "KB": 1000, "MB": 1000 * 1000}


def parse_byte_count(value: Any) -> Any:
    """Accept ``65536``, ``"64KiB"``, ``"2MiB"``, ``"500KB"``; return bytes (an int)."""
    if isinstance(value, bool):
        raise ValueError("expected a byte count such as 65536, 64KiB or 1MiB")
    if isinstance(value, str):
        match = _BYTES.match(value.strip())
        if not match:
            raise ValueError(f"invalid byte count {value!r}: use a number with B, KiB, MiB, KB or MB")
        return int(match["num"]) * _BYTE_UNITS[match["unit"]]
    return value


NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# labels the daemon sets itself; a user label with one of these names would silently shadow it
RESERVED_LABELS = frozenset(
    {
        "target",
        "kind",
        "group",
        "stage",
        "failure",
        "technique",
        "verdict",
        "state",
        "phase",
        "job",
        "instance",
    }
)


def host_port(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets: one spelling per endpoint, so per-destination
    limits see the same endpoint as one whichever kind probes it."""
    host = host.strip("[]")  # hosts may be configured bracketed: "[2001:db8::1]"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(value: str) -> tuple[str, int]:
    """The inverse of ``host_port``: ``host:port`` or ``[v6]:port`` -> (host without brackets, port).

    Raises ``ValueError`` (without quoting ``value``: callers name the field and decide what to show).
    """
    host, sep, port = value.strip().rpartition(":")
    if not sep or not host.strip("[]") or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("not host:port")
    return host.strip("[]"), int(port)


def split_listen_address(value: str) -> tuple[str, int]:
    """``127.0.0.1:10491``, ``[::1]:10491``, ``localhost:10491`` or ``:10491`` (every interface) ->
    (host, port); port 0 picks a free one. Raises ``ValueError`` for anything else (it was accepted
    and failed only when the daemon tried to listen)."""
    host, sep, port = value.strip().rpartition(":")
    if not sep or not port.isascii() or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be host:port, [IPv6]:port or :port (e.g. 127.0.0.1:10491)")
    if host.startswith("[") != host.endswith("]") or (":" in host and not host.startswith("[")):
        raise ValueError("an IPv6 address needs brackets: [::1]:10491")
    host = host[1:-1] if host.startswith("[") else host
    if host:
        check_host(host)
    return host or "0.0.0.0", int(port)  # ":port" means every interface, by convention


_IPV4_TEXT = frozenset("0123456789.")


def is_ip_literal(host: str) -> bool:
    """True when ``host`` is already an address (nothing to resolve), as ``ipaddress.ip_address`` decides.

    Every attempt asks (``net.dial.resolve``), so the two common cases skip ``ipaddress`` and its
    exceptions (4-6 us a call, bench/sweep.py): text without ``:`` can only be a dotted quad, checked
    with ``ipaddress``'s own octet rules (1-3 ASCII digits, no leading zero, at most 255); a name is
    refused on its first letter. IPv6 (scope ids and embedded IPv4 included) still goes to ``ipaddress``.
    A fuzz test holds the two to the same answers.
    """
    value = host.strip("[]")
    if ":" not in value:
        if not _IPV4_TEXT.issuperset(value):
            return False
        octets = value.split(".")
        return len(octets) == 4 and all(
            0 < len(o) <= 3 and (o == "0" or o[0] != "0") and int(o) <= 255 for o in octets
        )
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


_HOST_FORBIDDEN = frozenset("/\\?#@,;:[]<>\"'`|{}^%")


def check_host(value: str) -> str:
    """A target's ``host``: a DNS name (IDN letters allowed) or an IP address, IPv6 optionally bracketed.

    Refused: spaces, a URL (``https://x/``) and a ``host:port`` (the port has its own field): they
    passed before and failed at every attempt as a resolver error. The value is never quoted in the
    message: the host of a private target is itself a secret.
    """
    if is_ip_literal(value):
        return value
    if not value:
        raise ValueError("a host name or IP address is required")
    if "://" in value:
        raise ValueError("is a URL: give only the host name (the port and path have their own fields)")
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError("a host name cannot contain spaces or control characters")
    if ":" in value:
        raise ValueError("is not a host name or IP address (a port goes in the port field)")
    if any(ch in _HOST_FORBIDDEN for ch in value) or len(value) > 253:
        raise ValueError("is not a host name or IP address")
    labels = value.removesuffix(".").split(".")
    if any(not label or len(label) > 63 or label.startswith("-") for label in labels):
        raise ValueError("is not a host name or IP address (an empty, overlong or '-'-led label)")
    return value


Host = Annotated[str, AfterValidator(check_host)]


def check_inside_ipv4(value: str) -> str:
    """An address inside a tunnel (a ``ping_address``): IPv4 only, what the data stage's echoes speak."""
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError("must be an IPv4 address (IPv6 inside tunnels is not probed yet)") from None
    return value


InsideIPv4 = Annotated[str, AfterValidator(check_inside_ipv4)]
"""A host name or IP address (see ``check_host``)."""


@dataclass(frozen=True)
class Url:
    """The parts of an http(s) URL a single request needs (parsed at config load and again per request)."""

    scheme: str
    host: str
    port: int
    target: str  # path + query, what goes on the request line (``host:port`` for CONNECT)
    host_header: str

    @classmethod
    def parse(cls, url: str) -> Url:
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"not an http(s) URL with a host: {url!r}")
        default = 443 if parts.scheme == "https" else 80
        port = parts.port or default
        host = parts.hostname
        bracketed = f"[{host}]" if ":" in host else host
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(
            scheme=parts.scheme,
            host=host,
            port=port,
            target=target,
            host_header=bracketed if port == default else f"{bracketed}:{port}",
        )


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo in a config must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class TargetBase(StrictModel):
    """Fields every target has, whatever its kind.

    ``private: true`` means the target's address, fingerprint or any other identifying value must never
    leave the process: metrics, logs, API and dashboards know it by ``name`` only.
    """

    name: str = Field(
        pattern=NAME_PATTERN,
        description="unique among targets and controls; the only way a private target is ever named",
    )
    kind: str = Field(
        description="selects the probe and with it the fields below: one of the [kinds](#kinds)"
    )
    group: str = Field(
        default="default", pattern=NAME_PATTERN, description="a dashboard grouping (e.g. tor-bridges)"
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description=(
            "free labels, exported on reachwatch_target_info (names reachwatch sets itself are refused)"
        ),
    )
    interval: Duration | None = Field(
        default=None, description="time between two attempts; defaults.interval when unset"
    )
    timeout: Duration | None = Field(
        default=None, description="hard deadline of one attempt; defaults.timeout when unset"
    )
    private: bool = Field(
        default=False,
        description=(
            "true: the target's address, fingerprint or any other identifying value never leaves the "
            "process; metrics, logs, API and dashboards know it by name only"
        ),
    )

    @field_validator("labels")
    @classmethod
    def _check_labels(cls, labels: dict[str, str]) -> dict[str, str]:
        for key in labels:
            if not LABEL_NAME.match(key):
                raise ValueError(f"label name {key!r} is not a valid Prometheus label name")
            if key in RESERVED_LABELS:
                raise ValueError(f"label name {key!r} is reserved by reachwatch")
        return labels

    def destination(self) -> str:
        """The endpoint this target loads (``host_port``), for per-destination limits and redaction."""
        raise NotImplementedError

    def vantage_intervals(self) -> Mapping[str, float]:
        """Intervals that replace ``interval`` while the vantage is in a given state (state -> seconds).

        Empty for most kinds; ``port_survey`` surveys more often during an ``international_shutdown``,
        the hours whose ports matter. The scheduler reads it (``Scheduler.interval_for``)."""
        return {}

    def with_secrets(self, base_dir: Path, where: str) -> TargetBase:
        """This target with the values it keeps in secret files or variables read in (``bridge_file``).

        The loader calls it once per load, after the permission checks; most kinds read their secrets at
        attempt time and return ``self``. Raises ``ConfigError`` naming ``where`` (file and field).
        """
        return self

    def sensitive_values(self) -> list[str]:
        """Strings that identify a private target and must be redacted from every output."""
        host = self.destination().rsplit(":", 1)[0].strip("[]")
        return [host] if host else []
