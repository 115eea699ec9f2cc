"""How much ``reachwatch canary`` answers: token buckets per source address and in total.

Why. The canary answers only keyed requests, but a keyed request can be captured and replayed with a
spoofed source address: without limits the canary would send a victim as many replies as the attacker
sends requests. Replies are never larger than requests (``formats.canary``), and these buckets cap how
many replies any one source (an IPv6 /64 counts as one: a host there owns the whole prefix) and all
sources together get. The bucket table is bounded: when full, the sources idle longest are forgotten
first (a forgotten source starts again with a full bucket, which is what an idle one has anyway).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict
from dataclasses import dataclass

MAX_SOURCES = 4096


def source_key(address: str) -> str:
    """The rate-limit identity of a peer: the IPv4 address, or the /64 of an IPv6 one."""
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        if mapped is not None:
            return str(mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)


@dataclass
class Bucket:
    """A token bucket: ``rate`` tokens a second up to ``burst``."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.stamp) * self.rate)
        self.stamp = max(self.stamp, now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class ReplyLimiter:
    """``allow(source)``: may the canary answer this source now? Takes a token from its bucket and from the
    global one (the global one only when the source's allowed it)."""

    def __init__(
        self,
        per_source_rate: float,
        per_source_burst: int,
        global_rate: float,
        max_sources: int = MAX_SOURCES,
    ) -> None:
        self.per_source_rate = per_source_rate
        self.per_source_burst = float(per_source_burst)
        self.max_sources = max_sources
        now = time.monotonic()
        # a second's worth of the global rate may go out at once
        self.global_bucket = Bucket(global_rate, max(1.0, global_rate), max(1.0, global_rate), now)
        self._sources: OrderedDict[str, Bucket] = OrderedDict()

    def allow(self, source: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        key = source_key(source)
        bucket = self._sources.get(key)
        if bucket is None:
            bucket = Bucket(self.per_source_rate, self.per_source_burst, self.per_source_burst, now)
            self._sources[key] = bucket
            if len(self._sources) > self.max_sources:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(key)
        return bucket.take(now) and self.global_bucket.take(now)

    @property
    def sources(self) -> int:
        return len(self._sources)
