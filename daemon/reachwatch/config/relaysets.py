"""Relay sets: many ``tor_relay`` targets from a file, from reachwatch's own tor, or from Onionoo.

Config (inside the ``tor:`` section)::

    tor:
      relay_sets:
        - name: guards                       # targets are named guards:<first 10 hex of the fingerprint>
          live: tor                          # the consensus reachwatch's directory tor holds (or: onionoo)
          # source: cached-microdesc-consensus  # or a file: consensus, microdesc consensus, Onionoo .json
          flags: [Guard, Stable]             # a relay must carry all of them
          sample: 500                        # optional: a deterministic sample (seeded)
          seed: 0
          per_relay_metrics: false           # aggregate metrics only (metrics/relaysets.py)
          interval: 1d                       # one sweep through the whole set
      relay_list: {bridges: [...], refresh: 1h}   # the directory tor (tor/directory.py), for live sets
      geoip: {country_file: /usr/share/tor/geoip, asn_file: ip2asn-v4.tsv, top: 10}

Members are not part of the loaded config: ``relaywatch.RelaySetWatcher`` reads each set's document at
start and on the consensus schedule and hands the targets to the scheduler (``Scheduler.set_generated``),
so the list follows the network without a reload. This module is the pure part: parsing documents
(``parse_relay_document``), choosing members (``select``) and building targets (``relay_targets``).

Documents are recognised by content: a JSON object with ``relays`` (Onionoo ``details``: ``fingerprint``,
``or_addresses``, ``flags``, ``running``, and ``country``/``as`` when present), ``network-status-version 3
microdesc`` (tor's ``cached-microdesc-consensus``, or ``GETINFO dir/status-vote/current/consensus-microdesc``)
or ``network-status-version 3`` (``cached-consensus``), both parsed with stem (imported when a consensus is
parsed, so a config without relay sets never loads it). Not stem's strict mode, which rejects documents
tor itself writes; instead every router entry must carry a valid fingerprint, IP address and ORPort.
Signatures are not checked: the probe verifies each relay's identity on the wire anyway. A file that
cannot be parsed is a one-line ``ConfigError`` naming the file.

Rate budget: a set is swept as a rotation (``scheduler.Rotation``): one relay after another, ``interval /
members`` apart (+/- ``defaults.jitter``), in an order shuffled per daemon, so 7,000 relays on the default
day mean one probe start every ~12 s: no relay sees a burst, and no on-path observer sees a scan. The
sample is seeded, so a reload keeps the same relays.
"""

from __future__ import annotations

import ipaddress
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from reachwatch.config.bridgeline import parse_bridge_line
from reachwatch.config.geoip import GeoIP
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
# Onionoo's details of running relays, only the fields a relay set uses (~2 MB instead of ~30 MB)
DEFAULT_ONIONOO_URL = (
    "https://onionoo.torproject.org/details?type=relay&running=true"
    "&fields=nickname,fingerprint,or_addresses,flags,running,country,as"
)
_AS = re.compile(r"^(?:AS)?(\d{1,10})$", re.IGNORECASE)


class RelaySetConfig(StrictModel):
    """One set of relays to probe: from a file, or live from reachwatch's directory tor."""

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$",
        description=(
            "the set's name: its targets are named `<name>:<first 10 hex of the fingerprint>` in group "
            "`<name>`"
        ),
    )
    source: PublicFile | None = Field(
        default=None,
        min_length=1,
        description=(
            "a file: a consensus (cached-consensus, cached-microdesc-consensus) or an Onionoo details "
            ".json; read again at every refresh, so a new file needs no reload"
        ),
    )
    live: Literal["tor", "onionoo"] | None = Field(
        default=None,
        description=(
            "instead of a file: `tor`, the consensus reachwatch's directory tor holds (tor.relay_list), or "
            "`onionoo`, tor.relay_list.onionoo_url fetched through that tor (country and AS included)"
        ),
    )
    flags: list[str] = Field(
        default_factory=list, description="consensus flags a relay must all carry to be in the set"
    )
    sample: int | None = Field(
        default=None, ge=1, description="probe a deterministic sample of this many relays instead of all"
    )
    seed: int = Field(default=0, description="the seed of the sample: the same seed picks the same relays")
    per_relay_metrics: bool = Field(
        default=False,
        description="false: aggregate metrics per set, flag, country and AS; no per-relay series",
    )
    interval: Duration = Field(
        default=86400.0,
        description=(
            "one sweep through the whole set: relays are probed one after another, interval/members apart "
            "(7,000 relays a day: one every ~12 s)"
        ),
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

    @model_validator(mode="after")
    def _one_source(self) -> RelaySetConfig:
        if (self.source is None) == (self.live is None):
            raise ValueError(
                f"relay set {self.name!r}: set exactly one of source (a file) or live (tor, onionoo)"
            )
        return self


class RelayListConfig(StrictModel):
    """The directory tor: a client tor reachwatch keeps bootstrapped for the live relay sets."""

    bridges: list[str] = Field(
        default_factory=list,
        max_length=16,
        description=(
            "bridge lines to bootstrap it through when relays are blocked here (all of one transport); "
            "none: tor's own authorities and fallbacks. Never in metrics or logs"
        ),
    )
    onionoo_url: str = Field(
        default=DEFAULT_ONIONOO_URL,
        pattern=r"^https?://[^\s]+$",
        description="the Onionoo details document `live: onionoo` sets fetch (through the directory tor)",
    )
    refresh: Duration = Field(
        default=3600.0,
        description=(
            "how often live sets are refreshed: tor fetches a new consensus about hourly; a failed refresh "
            "keeps the last list and is retried after a tenth of this"
        ),
    )
    data_dir: str | None = Field(
        default=None,
        description=(
            "the directory tor's DataDirectory (kept: a restart starts from its cached consensus); unset: a "
            "fresh temporary one"
        ),
    )

    @field_validator("bridges")
    @classmethod
    def _valid_lines(cls, value: list[str]) -> list[str]:
        for line in value:
            parse_bridge_line(line)
        return value

    def sensitive_values(self) -> list[str]:
        return [v for line in self.bridges for v in parse_bridge_line(line).sensitive_values()]


class GeoIPConfig(StrictModel):
    """Local files that place relays in a country and an AS (``config.geoip``; never a network look-up)."""

    country_file: PublicFile | None = Field(
        default=None,
        description="tor's GeoIP file (Debian tor-geoipdb: /usr/share/tor/geoip): country of each relay",
    )
    asn_file: PublicFile | None = Field(
        default=None,
        description="an ip2asn-v4.tsv (or .tsv.gz) from iptoasn.com: AS (and country) of each relay",
    )
    top: int = Field(
        default=10,
        ge=1,
        le=50,
        description=(
            "countries and ASes with most relays shown by name per set; the rest are summed as `other`"
        ),
    )


@dataclass(frozen=True)
class Relay:
    fingerprint: str
    nickname: str
    address: str
    or_port: int
    flags: frozenset[str]
    country: str | None = None  # lower-case ISO code, from Onionoo
    as_number: str | None = None  # "AS1234", from Onionoo


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def _split_addr(value: str) -> tuple[str, int]:
    try:
        return split_host_port(value)
    except ValueError:
        raise ValueError(f"bad OR address {value!r}") from None


def _onionoo_country(value: Any) -> str | None:
    code = str(value).lower() if isinstance(value, str) else ""
    return code if len(code) == 2 and code.isascii() and code.isalpha() else None


def _onionoo_as(value: Any) -> str | None:
    match = _AS.match(value) if isinstance(value, str) else None
    return f"AS{int(match[1])}" if match else None


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
                    country=_onionoo_country(entry.get("country")),
                    as_number=_onionoo_as(entry.get("as")),
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


def parse_relay_document(raw: bytes, where: str) -> list[Relay]:
    """Every relay in a consensus, microdesc consensus or Onionoo details document, or ``ConfigError``
    naming ``where`` (a file, or the live source)."""
    if len(raw) > MAX_SOURCE_BYTES:
        raise ConfigError(where, f"relay list larger than {MAX_SOURCE_BYTES // (1024 * 1024)} MB")
    head = raw.lstrip()[:64]
    try:
        if head.startswith(b"{"):
            relays = _onionoo(json.loads(raw))
        elif head.startswith(b"network-status-version 3"):
            relays = _consensus(raw)
        else:
            raise ValueError("not a consensus, microdesc consensus or Onionoo details document")
    except json.JSONDecodeError as exc:
        raise ConfigError(where, f"invalid JSON: {exc.msg} at line {exc.lineno}") from None
    except Exception as exc:  # stem raises ValueError, but also IndexError/TypeError on odd input
        raise ConfigError(where, _first_line(exc)) from None
    if not relays:
        raise ConfigError(where, "no relays in this document")
    return relays


def load_relays(path: Path) -> list[Relay]:
    """Every relay in ``path`` (consensus, microdesc consensus or Onionoo details), or ConfigError."""
    source = str(path)
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_SOURCE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(source, f"cannot read relay list: {exc.strerror or exc}") from None
    return parse_relay_document(raw, source)


def select(relays: list[Relay], spec: RelaySetConfig) -> list[Relay]:
    """Relays carrying every flag of the set, then a seeded sample (stable across reloads)."""
    wanted = set(spec.flags)
    unique = {r.fingerprint: r for r in reversed(relays)}  # one target per relay: the first entry wins
    chosen = sorted((r for r in unique.values() if wanted <= r.flags), key=lambda r: r.fingerprint)
    if spec.sample is not None and spec.sample < len(chosen):
        chosen = sorted(random.Random(spec.seed).sample(chosen, spec.sample), key=lambda r: r.fingerprint)
    return chosen


def relay_targets(
    spec: RelaySetConfig, relays: list[Relay], geo: GeoIP | None = None
) -> list[TorRelayTarget]:
    """The ``tor_relay`` targets of one set, named ``<set>:<short fingerprint>`` in group ``<set>``.

    Country and AS come from the document when it says (Onionoo), else from ``geo``; ``None`` when
    neither knows (the aggregates count those as ``unknown``).
    """
    targets: list[TorRelayTarget] = []
    seen: set[str] = set()
    for relay in select(relays, spec):
        short = relay.fingerprint[:SHORT_FP]
        name = f"{spec.name}:{short if short not in seen else relay.fingerprint}"
        seen.add(short)
        country, as_number = relay.country, relay.as_number
        if geo is not None and (country is None or as_number is None):
            found_country, found_as = geo.lookup(relay.address)
            country, as_number = country or found_country, as_number or found_as
        targets.append(
            TorRelayTarget(
                name=name,
                kind="tor_relay",
                group=spec.name,
                host=relay.address,
                port=relay.or_port,
                fingerprint=relay.fingerprint,
                interval=spec.interval,  # the rotation's period: each member comes round once per interval
                timeout=spec.timeout,
                relay_set=spec.name,
                relay_flags=tuple(sorted(relay.flags & KNOWN_FLAGS)),
                relay_country=country,
                relay_as=as_number,
                per_target_metrics=spec.per_relay_metrics,
            )
        )
    return targets


def relay_set_targets(spec: RelaySetConfig, base_dir: Path, geo: GeoIP | None = None) -> list[TorRelayTarget]:
    """The targets of a file-sourced set (``source``), read now."""
    if spec.source is None:
        raise ValueError(f"relay set {spec.name!r} is live: its members come from the directory tor")
    path = Path(spec.source)
    if not path.is_absolute():
        path = base_dir / path
    return relay_targets(spec, load_relays(path), geo)
