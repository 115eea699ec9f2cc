"""Relay sets: many ``tor_relay`` targets from a consensus file or an Onionoo document.

Config (inside the ``tor:`` section)::

    tor:
      relay_sets:
        - name: guards                       # targets are named guards:<first 10 hex of the fingerprint>
          source: cached-microdesc-consensus  # or cached-consensus, or an Onionoo details .json
          flags: [Guard, Stable]             # a relay must carry all of them
          sample: 500                        # optional: a deterministic sample (seeded)
          seed: 0
          per_relay_metrics: false           # aggregate metrics only (metrics/relaysets.py)
          interval: 6h

Sources are recognised by content: a JSON object with ``relays`` (Onionoo ``details``: ``fingerprint``,
``or_addresses``, ``flags``, ``running``), ``network-status-version 3 microdesc`` (tor's
``cached-microdesc-consensus``) or ``network-status-version 3`` (``cached-consensus``), both parsed with
stem (imported when a consensus is parsed, so a config without relay sets never loads it). Not stem's
strict mode, which rejects documents tor itself writes; instead every router entry must carry a valid
fingerprint, IP address and ORPort. Signatures are not checked: the file is the
operator's choice, and the probe verifies each relay's identity on the wire anyway. A file that cannot
be parsed is a one-line ``ConfigError`` naming the file.

Rate budget: the scheduler is unchanged. Each target starts at a uniformly random moment within its
first interval, then repeats every interval +/- ``defaults.jitter`` (20 %), so 7,000 relays on a 6 h
interval mean ~0.32 probe starts per second on average (one every ~3 s), each a TCP+TLS+link handshake of
~10 KB lasting about 4 RTTs: roughly one probe in flight, far below ``max_concurrency``. Distinct relays
are distinct destinations, so ``min_destination_spacing`` does not slow a set down; relays sharing an
address:port (rare) are spaced by it. The sample is seeded, so a reload keeps the same relays.
"""

from __future__ import annotations

import ipaddress
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from reachwatch.config.secrets import PublicFile
from reachwatch.config.targets.tor_relay import TorRelayTarget
from reachwatch.config.tor_identity import normalize_fingerprint
from reachwatch.config.types import Duration, StrictModel, split_host_port
from reachwatch.errors import ConfigError

# dir-spec "known-flags"; a bounded label set for the aggregate metrics
KNOWN_FLAGS = frozenset(
    {
        "Authority", "BadExit", "Exit", "Fast", "Guard", "HSDir", "MiddleOnly", "NoEdConsensus",
        "Running", "Stable", "StaleDesc", "Sybil", "V2Dir", "Valid",
    }
)  # fmt: skip
MAX_SOURCE_BYTES = 64 * 1024 * 1024  # a full Onionoo details document is ~30 MB; a consensus ~3 MB
SHORT_FP = 10  # 40 bits: no collision among ~7,000 relays in practice (checked anyway)


class RelaySetConfig(StrictModel):
    """One set of relays to probe, from one file."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$",
        description=(
            "the set's name: its targets are named `<name>:<first 10 hex of the fingerprint>` in group "
            "`<name>`"
        ),
    )
    source: PublicFile = Field(
        min_length=1,
        description="a consensus (cached-consensus, cached-microdesc-consensus) or an Onionoo details .json",
    )
    flags: list[str] = Field(
        default_factory=list, description="consensus flags a relay must all carry to be in the set"
    )
    sample: int | None = Field(
        default=None, ge=1, description="probe a deterministic sample of this many relays instead of all"
    )
    seed: int = Field(default=0, description="the seed of the sample: the same seed picks the same relays")
    per_relay_metrics: bool = Field(
        default=False, description="false: aggregate metrics per set and flag only, no per-relay series"
    )
    interval: Duration = Field(
        default=6 * 3600.0,
        description="time between two attempts per relay (6h: ~0.3 probe starts/s for 7,000 relays)",
    )
    timeout: Duration | None = Field(
        default=None, description="deadline of one attempt; defaults.timeout when unset"
    )

    @field_validator("flags")
    @classmethod
    def _known_flags(cls, flags: list[str]) -> list[str]:
        for flag in flags:
            if flag not in KNOWN_FLAGS:
                raise ValueError(f"unknown relay flag {flag!r}; known: {', '.join(sorted(KNOWN_FLAGS))}")
        return flags


@dataclass(frozen=True)
class Relay:
    fingerprint: str
    nickname: str
    address: str
    or_port: int
    flags: frozenset[str]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _split_addr(value: str) -> tuple[str, int]:
    try:
        return split_host_port(value)
    except ValueError:
        raise ValueError(f"bad OR address {value!r}") from None


def _onionoo(data: Any) -> list[Relay]:
    if not isinstance(data, dict) or not isinstance(data.get("relays"), list):
        raise ValueError("not an Onionoo details document (no 'relays' list)")
    relays = []
    for i, entry in enumerate(data["relays"]):
        try:
            if entry.get("running") is False:
                continue  # Onionoo keeps relays seen in the last week; stopped ones are not targets
            addrs = [str(a) for a in entry["or_addresses"]]
            # the first IPv4 address: tor clients reach relays over IPv4 unless configured otherwise
            primary = next((a for a in addrs if not a.startswith("[")), addrs[0])
            host, port = _split_addr(primary)
            relays.append(
                Relay(
                    fingerprint=normalize_fingerprint(str(entry["fingerprint"])),
                    nickname=str(entry.get("nickname", "")),
                    address=host,
                    or_port=port,
                    flags=frozenset(str(f) for f in entry.get("flags", [])),
                )
            )
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"relays[{i}]: {_first_line(exc) if str(exc) else 'missing field'}") from None
    return relays


def _consensus(raw: bytes) -> list[Relay]:
    # stem's descriptor parser is a pure format; imported here so that loading a config without relay
    # sets (validate, --help, the daemon on most configs) never imports stem
    from stem.descriptor.networkstatus import NetworkStatusDocumentV3  # noqa: PLC0415

    # validate=False: stem 1.8's strict mode rejects documents tor itself writes (an empty
    # "client-versions" line, fields newer than stem). We check what we use, per entry, instead.
    document = NetworkStatusDocumentV3(raw, validate=False)
    relays = []
    for i, entry in enumerate(document.routers.values()):
        try:
            address = str(ipaddress.ip_address(entry.address or ""))
            if not isinstance(entry.or_port, int) or not 0 < entry.or_port < 65536:
                raise ValueError("bad ORPort")
            fingerprint = normalize_fingerprint(entry.fingerprint or "")
        except ValueError as exc:
            raise ValueError(f"router entry {i} ({entry.nickname or '?'}): {_first_line(exc)}") from None
        relays.append(
            Relay(
                fingerprint=fingerprint,
                nickname=entry.nickname or "",
                address=address,
                or_port=entry.or_port,
                flags=frozenset(entry.flags or ()),
            )
        )
    return relays


def load_relays(path: Path) -> list[Relay]:
    """Every relay in ``path`` (consensus, microdesc consensus or Onionoo details), or ConfigError."""
    source = str(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_SOURCE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(source, f"cannot read relay list: {exc.strerror or exc}") from None
    if len(raw) > MAX_SOURCE_BYTES:
        raise ConfigError(source, f"relay list larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MB")
    head = raw.lstrip()[:64]
    try:
        if head.startswith(b"{"):
            relays = _onionoo(json.loads(raw))
        elif head.startswith(b"network-status-version 3"):
            relays = _consensus(raw)
        else:
            raise ValueError("not a consensus, microdesc consensus or Onionoo details document")
    except json.JSONDecodeError as exc:
        raise ConfigError(source, f"invalid JSON: {exc.msg} at line {exc.lineno}") from None
    except Exception as exc:  # stem raises ValueError, but also IndexError/TypeError on odd input
        raise ConfigError(source, _first_line(exc)) from None
    if not relays:
        raise ConfigError(source, "no relays in this document")
    return relays


def select(relays: list[Relay], spec: RelaySetConfig) -> list[Relay]:
    """Relays carrying every flag of the set, then a seeded sample (stable across reloads)."""
    wanted = set(spec.flags)
    unique = {r.fingerprint: r for r in reversed(relays)}  # one target per relay: the first entry wins
    chosen = sorted((r for r in unique.values() if wanted <= r.flags), key=lambda r: r.fingerprint)
    if spec.sample is not None and spec.sample < len(chosen):
        chosen = sorted(random.Random(spec.seed).sample(chosen, spec.sample), key=lambda r: r.fingerprint)
    return chosen


def relay_set_targets(spec: RelaySetConfig, base_dir: Path) -> list[TorRelayTarget]:
    """The ``tor_relay`` targets of one set, named ``<set>:<short fingerprint>`` in group ``<set>``."""
    path = Path(spec.source)
    if not path.is_absolute():
        path = base_dir / path
    targets: list[TorRelayTarget] = []
    seen: set[str] = set()
    for relay in select(load_relays(path), spec):
        short = relay.fingerprint[:SHORT_FP]
        name = f"{spec.name}:{short if short not in seen else relay.fingerprint}"
        seen.add(short)
        targets.append(
            TorRelayTarget(
                name=name,
                kind="tor_relay",
                group=spec.name,
                host=relay.address,
                port=relay.or_port,
                fingerprint=relay.fingerprint,
                interval=spec.interval,
                timeout=spec.timeout,
                relay_set=spec.name,
                relay_flags=tuple(sorted(relay.flags & KNOWN_FLAGS)),
                per_target_metrics=spec.per_relay_metrics,
            )
        )
    return targets
