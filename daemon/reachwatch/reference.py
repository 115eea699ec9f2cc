"""Reference vantages: another reachwatch outside the country, read through its ``/api/v1/status``.

A local timeout or reset proves nothing on its own (servers die); the same target reached from abroad
at about the same time does. ``ReferenceClient`` fetches one reference's status (bounded in bytes and
time, optional basic auth and private CA) and caches, per target name, the reference's latest attempt
as an ``Observation``: when, success, failure and stage, and the comparable facts it recorded
(``last.facts``: bytes moved, throughput, certificate issuer, HTTP status...) so the verdict engine can
compare more than "reached or not". ``ReferenceSet`` combines all configured references (the majority
of their fresh observations, ``verdict.reference_consensus``).

A fetch that fails (unreachable, bad status, oversized or malformed body) is logged and leaves no
observation: "no reference" (``None``), never "the reference failed too".
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from reachwatch import refproto
from reachwatch.config.schema import ReferenceVantage
from reachwatch.config.secrets import read_secret, resolve_path
from reachwatch.errors import ConfigError
from reachwatch.failures import scrub
from reachwatch.model import Observation
from reachwatch.refproto import parse_status
from reachwatch.verdict import reference_consensus

log = structlog.get_logger(__name__)

# a status page lists every target (~0.5 KB each): 16 MiB covers tens of thousands and bounds memory
MAX_STATUS_BYTES = 16 * 1024 * 1024


class ReferenceFetchError(Exception):
    """A reference's status could not be fetched or understood (message is safe to log)."""


class ReferenceRejected(ReferenceFetchError):
    """An answer the pinned key does not vouch for (forged, unsigned, replayed): never used, logged."""


class ReferenceClient:
    """One reference vantage: fetch its observations, answer "what did it see of target X recently?".

    Protocol v2 (``refproto``) first: observations with destinations, signed when the reference has a
    key. With ``public_key`` pinned only a v2 answer signed by that key over our fresh nonce is used;
    anything else is rejected and logged once per streak. Without a pinned key a reference that does
    not serve v2 (404) is read through v1 ``/api/v1/status`` from then on (until a reload).
    """

    def __init__(
        self,
        config: ReferenceVantage,
        base_dir: Path,
        *,
        max_bytes: int = MAX_STATUS_BYTES,
        refresh_interval: float | None = None,
    ) -> None:
        """Reads the password secret now: a bad secret is a ``ConfigError`` at load, not a log line later."""
        self.config = config
        self.name = config.name
        self.max_bytes = max_bytes
        self.refresh_interval = config.refresh if refresh_interval is None else refresh_interval
        self._headers: dict[str, str] = {}
        if config.username is not None:
            password = read_secret(
                config.password_file,
                config.password_env,
                base_dir,
                f"reference_vantages[{config.name}].password",
            )
            token = base64.b64encode(f"{config.username}:{password or ''}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._ssl: ssl.SSLContext | bool = True
        if config.ca_file:
            ca_path = resolve_path(config.ca_file, base_dir)
            try:
                self._ssl = ssl.create_default_context(cafile=str(ca_path))
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(
                    f"reference_vantages[{config.name}].ca_file", f"cannot load CA file {ca_path}: {exc}"
                ) from None
        self._pinned = refproto.parse_public_key(config.public_key) if config.public_key else None
        self.version = refproto.VERSION  # falls back to 1 for an unpinned reference without v2
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()
        # the reference's latest attempts, by target name and by destination probed (v2)
        self._last: dict[str, Observation] = {}
        self._by_destination: dict[str, list[Observation]] = {}
        self.fetched_at: float | None = None  # wall time of the last fetch attempt (success or not)
        self.ok: bool = False  # whether the last fetch succeeded
        self.fetches = 0  # fetch attempts since start (reachwatch_reference_fetches_total)
        self.fetch_failures = 0
        self.rejected: int = 0  # answers rejected by the pinned key (counted; logged once per streak)
        self._rejecting = False

    @property
    def status_url(self) -> str:
        return self.config.url.rstrip("/") + "/api/v1/status"

    @property
    def observations_url(self) -> str:
        return self.config.url.rstrip("/") + refproto.PATH

    async def fetch(self) -> refproto.Answer:
        """GET the reference's observations (v2, or v1 for an unpinned reference without v2).

        Raises ``ReferenceRejected`` for an answer the pinned key does not vouch for and
        ``ReferenceFetchError`` for anything else that went wrong.
        """
        if self.version == refproto.VERSION:
            nonce = refproto.new_nonce()
            status, body = await self._get(self.observations_url, {"nonce": nonce})
            if status == 404 and self._pinned is None:
                log.info("reference_protocol_v1", reference=self.name)
                self.version = 1
            elif status != 200:
                raise ReferenceFetchError(f"HTTP status {status}")
            else:
                # up to 16 MiB of JSON is seconds of CPU on a Pi: parsed in a thread, probes keep their timing
                return await asyncio.to_thread(self._open_v2, body, nonce)
        status, body = await self._get(self.status_url, {})
        if status != 200:
            raise ReferenceFetchError(f"HTTP status {status}")
        latest = await asyncio.to_thread(_parse_body, body, self.name)
        return refproto.Answer(latest, {}, signed=False)

    def _open_v2(self, body: bytes, nonce: str) -> refproto.Answer:
        try:
            return refproto.open_envelope(body, reference=self.name, pinned=self._pinned, nonce=nonce)
        except refproto.SignatureRejected as exc:
            raise ReferenceRejected(str(exc)) from None
        except refproto.ProtocolError as exc:
            if self._pinned is not None:  # with a key pinned, garbage is as good as a forgery
                raise ReferenceRejected(str(exc)) from None
            raise ReferenceFetchError(str(exc)) from None

    async def _get(self, url: str, params: dict[str, str]) -> tuple[int, bytes]:
        """One bounded GET: status and body (an error status's body is not read)."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout),
                # a reference is a fixed URL: no proxies from the environment, no cookies
                trust_env=False,
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        too_large = f"status larger than {self.max_bytes} bytes"
        try:
            # the session timeout covers the request; this one also bounds a body trickled slowly
            async with (
                asyncio.timeout(self.config.timeout),
                self._session.get(
                    url, params=params, headers=self._headers, ssl=self._ssl, allow_redirects=False
                ) as resp,
            ):
                if resp.status != 200:
                    return resp.status, b""
                if resp.content_length is not None and resp.content_length > self.max_bytes:
                    raise ReferenceFetchError(too_large)
                body = bytearray()
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise ReferenceFetchError(too_large)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise ReferenceFetchError(scrub(f"{type(exc).__name__}: {exc}")) from exc
        return 200, bytes(body)

    async def refresh(self, now: float | None = None) -> bool:
        """Fetch now and replace the cache; on failure log and forget the cache. True on success."""
        now = time.time() if now is None else now
        self.fetches += 1
        try:
            answer = await self.fetch()
        except ReferenceRejected as exc:
            # a forgery is an attack on the verdicts: an error, but once per streak, not every 30 s
            self.fetch_failures += 1
            self.rejected += 1
            if not self._rejecting:
                log.error("reference_answer_rejected", reference=self.name, reason=str(exc))
            self._rejecting = True
            self._forget()
        except ReferenceFetchError as exc:
            self.fetch_failures += 1
            # warn on the transition only: a reference down for hours must not fill the log every 30 s
            emit = log.warning if self.ok or self.fetched_at is None else log.debug
            emit("reference_unavailable", reference=self.name, error=str(exc))
            self._rejecting = False
            self._forget()
        else:
            if not self.ok and self.fetched_at is not None:
                log.info("reference_available", reference=self.name)
            self._last, self._by_destination, self.ok = answer.by_name, answer.by_destination, True
            self._rejecting = False
        self.fetched_at = now
        return self.ok

    def _forget(self) -> None:
        self._last, self._by_destination, self.ok = {}, {}, False

    async def refresh_if_stale(self, now: float | None = None) -> None:
        """Fetch when the cache is older than ``refresh_interval``; concurrent callers share one fetch."""
        now = time.time() if now is None else now
        async with self._lock:
            if self.fetched_at is None or now - self.fetched_at >= self.refresh_interval:
                await self.refresh(now)

    def observation_for(
        self,
        target_name: str,
        now: float,
        *,
        destination: str | None = None,
        kind: str | None = None,
    ) -> Observation | None:
        """This reference's latest attempt at our target if made within ``max_age`` of ``now``.

        Matched by ``destination`` when the reference published destinations (v2): the same name
        probed there first, then the same kind, then the freshest. Otherwise by name, unless the
        reference says it probed a different destination under that name (another server of the same
        name proves nothing about ours). ``None`` when nothing matches, the attempt is too old (or too
        far in the future: clocks differ), or the reference could not be read.
        """
        seen = self._match(target_name, destination, kind)
        if seen is None or abs(now - seen.observed_at) > self.config.max_age:
            return None
        return seen

    def _match(self, name: str, destination: str | None, kind: str | None) -> Observation | None:
        if destination is not None:
            there = self._by_destination.get(destination, [])
            if there:
                return max(there, key=lambda o: (o.target == name, o.kind == kind, o.observed_at))
        seen = self._last.get(name)
        if seen is not None and destination is not None and seen.destination not in (None, destination):
            return None
        return seen

    def success_for(self, target_name: str, now: float, *, destination: str | None = None) -> bool | None:
        """Did this reference's fresh attempt at the target succeed (``None``: no fresh attempt)?"""
        seen = self.observation_for(target_name, now, destination=destination)
        return None if seen is None else seen.success

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _parse_body(body: bytes, reference: str) -> dict[str, Observation]:
    try:
        return parse_status(json.loads(body), reference)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly nested JSON
        raise ReferenceFetchError(f"malformed status: {type(exc).__name__}") from exc


class ReferenceSet:
    """All configured reference vantages, asked as one."""

    def __init__(self, configs: list[ReferenceVantage], base_dir: Path, **client_options: Any) -> None:
        """Builds one client per reference; raises ``ConfigError`` for an unreadable password secret."""
        self.clients = [ReferenceClient(c, base_dir, **client_options) for c in configs]

    def __bool__(self) -> bool:
        return bool(self.clients)

    def observation_for(
        self, target_name: str, now: float, *, destination: str | None = None, kind: str | None = None
    ) -> Observation | None:
        """The references' fresh observations combined by ``verdict.reference_consensus`` (the majority)."""
        return reference_consensus(
            [c.observation_for(target_name, now, destination=destination, kind=kind) for c in self.clients]
        )

    def success_for(self, target_name: str, now: float, *, destination: str | None = None) -> bool | None:
        """Whether the references' consensus reached the target recently (``None``: no consensus)."""
        seen = self.observation_for(target_name, now, destination=destination)
        return None if seen is None else seen.success

    async def observe(
        self,
        target_name: str,
        now: float | None = None,
        *,
        destination: str | None = None,
        kind: str | None = None,
    ) -> Observation | None:
        """Refresh stale caches (bounded by each reference's timeout), then ``observation_for``."""
        now = time.time() if now is None else now
        if not self.clients:
            return None
        await asyncio.gather(*(c.refresh_if_stale(now) for c in self.clients))
        return self.observation_for(target_name, now, destination=destination, kind=kind)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
