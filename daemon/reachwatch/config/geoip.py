"""Where a relay is: country and autonomous system of an IPv4 address, from local files only.

Two formats, both plain text an operator can copy onto an offline Pi (no network look-ups, ever: asking
a service where each relay is would tell it what we measure):

- **tor's GeoIP file** (Debian ``tor-geoipdb``: ``/usr/share/tor/geoip``): ``INTLOW,INTHIGH,CC`` lines,
  addresses as 32-bit integers, country codes as two letters. Country only.
- **ip2asn** (``ip2asn-v4.tsv``, optionally gzipped, from iptoasn.com, public domain data):
  ``range_start<TAB>range_end<TAB>AS_number<TAB>country_code<TAB>AS_description``, dotted addresses.
  AS and country. Why this one for AS: tor-geoipdb has no AS data, and the other local AS databases
  (MaxMind's, DB-IP's) are binary MMDB files that need a reader library and, for MaxMind, an account;
  ip2asn is one tab-separated file, regenerated hourly from BGP tables, with AS 0 for unrouted space.

Relays whose Onionoo entry names country and AS keep Onionoo's values (``config.relaysets``); these
files fill in relays from a consensus. Ranges are held as two ``array('I')`` plus an index into a small
table of values, so the ~500,000 ranges of ip2asn cost ~6 MB rather than ~100 MB of tuples, and a
look-up is one ``bisect``.
"""

from __future__ import annotations

import gzip
import ipaddress
from array import array
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from reachwatch.errors import ConfigError

MAX_GEOIP_BYTES = 256 * 1024 * 1024  # ip2asn-v4.tsv is ~25 MB, tor's geoip ~9 MB
UNKNOWN = "unknown"


@dataclass
class RangeTable:
    """Sorted, non-overlapping IPv4 ranges, each mapped to one of a few distinct values."""

    starts: array[int] = field(default_factory=lambda: array("I"))
    ends: array[int] = field(default_factory=lambda: array("I"))
    which: array[int] = field(default_factory=lambda: array("I"))
    values: list[str] = field(default_factory=list)

    @classmethod
    def build(cls, ranges: Iterable[tuple[int, int, str]]) -> RangeTable:
        table = cls()
        index: dict[str, int] = {}
        for start, end, value in sorted(ranges):
            if end < start or (table.ends and start <= table.ends[-1]):
                continue  # reversed or overlapping the previous range: the first one wins
            slot = index.get(value)
            if slot is None:
                slot = index[value] = len(table.values)
                table.values.append(value)
            table.starts.append(start)
            table.ends.append(end)
            table.which.append(slot)
        return table

    def __len__(self) -> int:
        return len(self.starts)

    def get(self, address: int) -> str | None:
        i = bisect_right(self.starts, address) - 1
        if i < 0 or address > self.ends[i]:
            return None
        return self.values[self.which[i]]


@dataclass
class GeoIP:
    """Country (lower-case ISO code) and AS (``AS<number>``) of IPv4 addresses; empty tables know nothing."""

    countries: RangeTable = field(default_factory=RangeTable)
    ases: RangeTable = field(default_factory=RangeTable)

    def lookup(self, address: str) -> tuple[str | None, str | None]:
        """``(country, as)`` of ``address``; ``None`` where the files do not say (or for IPv6)."""
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            return None, None
        return self.countries.get(int(ip)), self.ases.get(int(ip))


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    try:
        if path.stat().st_size > MAX_GEOIP_BYTES:
            raise ConfigError(str(path), f"larger than {MAX_GEOIP_BYTES // (1024 * 1024)} MB")
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8", errors="replace") as fh:
            yield from enumerate(fh, start=1)
    except OSError as exc:  # gzip.BadGzipFile is an OSError too
        raise ConfigError(str(path), f"cannot read GeoIP file: {exc.strerror or exc}") from None


def _country(code: str) -> str | None:
    code = code.strip().lower()
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        return None  # tor writes "??" for unknown space, ip2asn "None"
    return code


def parse_tor_geoip(path: Path) -> RangeTable:
    """tor's ``geoip`` file: ``INTLOW,INTHIGH,CC`` per line, ``#`` comments."""
    ranges: list[tuple[int, int, str]] = []
    for number, raw in _lines(path):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            low, high, code = line.split(",")
            start, end = int(low), int(high)
        except ValueError:
            raise ConfigError(f"{path}:{number}", "not a tor GeoIP line (INTLOW,INTHIGH,CC)") from None
        if not 0 <= start <= end <= 0xFFFFFFFF:
            raise ConfigError(f"{path}:{number}", "address out of the IPv4 range")
        country = _country(code)
        if country is not None:
            ranges.append((start, end, country))
    if not ranges:
        raise ConfigError(str(path), "no ranges in this GeoIP file")
    return RangeTable.build(ranges)


def parse_ip2asn(path: Path) -> tuple[RangeTable, RangeTable]:
    """ip2asn's ``ip2asn-v4.tsv``: ``(countries, ases)``; AS 0 (not routed) is left out."""
    countries: list[tuple[int, int, str]] = []
    ases: list[tuple[int, int, str]] = []
    for number, line in _lines(path):
        if not line.strip():
            continue
        parts = line.rstrip("\n").split("\t")
        try:
            start = int(ipaddress.IPv4Address(parts[0]))
            end = int(ipaddress.IPv4Address(parts[1]))
            asn = int(parts[2])
        except (IndexError, ValueError):
            raise ConfigError(
                f"{path}:{number}", "not an ip2asn line (range_start, range_end, AS_number, country, name)"
            ) from None
        if asn:
            ases.append((start, end, f"AS{asn}"))
        country = _country(parts[3]) if len(parts) > 3 else None
        if country is not None:
            countries.append((start, end, country))
    if not ases and not countries:
        raise ConfigError(str(path), "no ranges in this ip2asn file")
    return RangeTable.build(countries), RangeTable.build(ases)


def load_geoip(country_file: Path | None, asn_file: Path | None) -> GeoIP:
    """The tables of the configured files; tor's file wins for countries when both are given."""
    geo = GeoIP()
    if asn_file is not None:
        geo.countries, geo.ases = parse_ip2asn(asn_file)
    if country_file is not None:
        geo.countries = parse_tor_geoip(country_file)
    return geo
