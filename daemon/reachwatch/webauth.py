"""Basic auth for the HTTP endpoint, with its cost bounded for a password guesser.

A bcrypt check (exporter-toolkit's ``basic_auth_users`` hashes) costs ~70 ms of CPU at cost 10, more on a
Raspberry Pi. Unbounded, 100 wrong passwords queue 7 s of bcrypt in front of the next real scrape. So:

- checks run in a worker thread, one at a time (never on the event loop, never on every core);
- a verified (user, hash, password) is cached: Prometheus's scrapes after the first cost a hash lookup;
- wrong attempts draw on a per-client budget (``FAILURE_BURST`` at once, refilled at
  ``FAILURES_PER_MINUTE``); a client without budget is answered 429 without bcrypt. A request with
  credentials already verified passes whatever its client's budget, so a guesser sharing the scraper's
  address (loopback) does not lock the scraper out;
- at most ``MAX_PENDING`` checks wait for the bcrypt worker; more get 429 at once (many clients).
Unknown users are checked against a fixed dummy hash so timing does not reveal which users exist.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import enum
import hashlib
import ipaddress
import time
from collections import OrderedDict

import bcrypt

# bcrypt of a random string nobody knows; compared against for unknown users (timing parity)
_DUMMY_HASH = b"$2b$10$afBebujPrSz/7EiDIEOaPOaTobcDFylN.wDoBQM7beAjXeT1cHmtS"
_CACHE_MAX = 1024
FAILURE_BURST = 10
FAILURES_PER_MINUTE = 10.0
MAX_PENDING = 8
_CLIENTS_MAX = 4096  # failure budgets remembered (oldest forgotten first): bounded memory


class AuthResult(enum.Enum):
    OK = "ok"
    DENIED = "denied"  # 401
    THROTTLED = "throttled"  # 429: too many failures from this client, or too many checks waiting


def client_key(peer: str | None) -> str:
    """Whom a failure budget belongs to: the IPv4 address, or the IPv6 /64 (one host's usual share)."""
    if not peer:
        return "?"
    try:
        addr = ipaddress.ip_address(peer)
    except ValueError:
        return peer
    if isinstance(addr, ipaddress.IPv6Address):
        if addr.ipv4_mapped is not None:
            return str(addr.ipv4_mapped)
        return str(ipaddress.ip_network(f"{addr}/64", strict=False))
    return str(addr)


class _FailureBudgets:
    """Token buckets of allowed failures, per client."""

    def __init__(self, burst: int, per_minute: float) -> None:
        self.burst = burst
        self.rate = per_minute / 60.0
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def _tokens(self, client: str, now: float) -> float:
        tokens, at = self._buckets.get(client, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate)

    def take(self, client: str, now: float) -> bool:
        """Spend one token if there is one (before the check: concurrent guesses count at once)."""
        tokens = self._tokens(client, now)
        if tokens < 1.0:
            return False
        self._buckets[client] = (tokens - 1.0, now)
        self._buckets.move_to_end(client)
        while len(self._buckets) > _CLIENTS_MAX:
            self._buckets.popitem(last=False)
        return True

    def refund(self, client: str, now: float) -> None:
        """Give the token back: the check succeeded."""
        self._buckets[client] = (min(float(self.burst), self._tokens(client, now) + 1.0), now)


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes; bounded cost per client and overall."""

    def __init__(
        self,
        *,
        burst: int = FAILURE_BURST,
        failures_per_minute: float = FAILURES_PER_MINUTE,
        max_pending: int = MAX_PENDING,
    ) -> None:
        self.users: dict[str, bytes] = {}
        self.throttled = 0  # answered 429 without bcrypt
        self._cache: dict[bytes, bool] = {}
        self._budgets = _FailureBudgets(burst, failures_per_minute)
        self._max_pending = max_pending
        self._pending = 0
        self._lock = asyncio.Lock()

    def set_users(self, users: dict[str, bytes]) -> None:
        self.users = dict(users)
        self._cache.clear()

    async def check(self, header: str | None, peer: str | None = None) -> AuthResult:
        credentials = _credentials(header)
        if credentials is None:
            return AuthResult.DENIED
        user, password = credentials
        hashed = self.users.get(user)
        known = hashed is not None
        hashed = hashed if hashed is not None else _DUMMY_HASH
        key = hashlib.sha256(b"\0".join([user.encode(), hashed, password.encode()])).digest()
        if self._cache.get(key):
            return AuthResult.OK
        client = client_key(peer)
        if self._pending >= self._max_pending or not self._budgets.take(client, time.monotonic()):
            self.throttled += 1
            return AuthResult.THROTTLED
        self._pending += 1
        try:
            async with self._lock:  # one bcrypt at a time, like exporter-toolkit's mutex
                ok = await asyncio.to_thread(_checkpw, password.encode(), hashed)
        finally:
            self._pending -= 1
        if ok and known:  # cache successes only: failures stay expensive for a guesser
            self._budgets.refund(client, time.monotonic())
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key] = True
            return AuthResult.OK
        return AuthResult.DENIED


def _credentials(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # bcrypt 5 refuses passwords over 72 bytes; a malformed hash
        return False
