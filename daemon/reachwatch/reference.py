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
import math
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp
import structlog

from reachwatch.config.schema import ReferenceVantage
from reachwatch.config.secrets import read_secret, resolve_path
from reachwatch.errors import ConfigError
from reachwatch.failures import Failure, Stage, scrub
from reachwatch.model import Observation, bounded_facts
from reachwatch.verdict import reference_consensus

log = structlog.get_logger(__name__)

# a status page lists every target (~0.5 KB each): 16 MiB covers tens of thousands and bounds memory
MAX_STATUS_BYTES = 16 * 1024 * 1024
# how long one fetched status answers questions before a new fetch is tried
DEFAULT_REFRESH = 30.0


class ReferenceFetchError(Exception):
    """A reference's status could not be fetched or understood (message is safe to log)."""


class ReferenceClient:
    """One reference vantage: fetch its status, answer "did it reach target X recently?"."""

    def __init__(
        self,
        config: ReferenceVantage,
        base_dir: Path,
        *,
        max_bytes: int = MAX_STATUS_BYTES,
        refresh_interval: float = DEFAULT_REFRESH,
    ) -> None:
        """Reads the password secret now: a bad secret is a ``ConfigError`` at load, not a log line later."""
        self.config = config
        self.name = config.name
        self.max_bytes = max_bytes
        self.refresh_interval = refresh_interval
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
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()
        # target name -> the reference's latest attempt
        self._last: dict[str, Observation] = {}
        self.fetched_at: float | None = None  # wall time of the last fetch attempt (success or not)
        self.ok: bool = False  # whether the last fetch succeeded
        self.fetches = 0  # fetch attempts since start (reachwatch_reference_fetches_total)
        self.fetch_failures = 0

    @property
    def status_url(self) -> str:
        return self.config.url.rstrip("/") + "/api/v1/status"

    async def fetch(self) -> dict[str, Observation]:
        """GET the reference's status; raises ``ReferenceFetchError``."""
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
                    self.status_url, headers=self._headers, ssl=self._ssl, allow_redirects=False
                ) as resp,
            ):
                if resp.status != 200:
                    raise ReferenceFetchError(f"HTTP status {resp.status}")
                if resp.content_length is not None and resp.content_length > self.max_bytes:
                    raise ReferenceFetchError(too_large)
                body = bytearray()
                async for chunk in resp.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise ReferenceFetchError(too_large)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as exc:
            raise ReferenceFetchError(scrub(f"{type(exc).__name__}: {exc}")) from exc
        # up to 16 MiB of JSON is seconds of CPU on a Pi: parsed in a thread, the probes keep their timing
        return await asyncio.to_thread(_parse_body, bytes(body), self.name)

    async def refresh(self, now: float | None = None) -> bool:
        """Fetch now and replace the cache; on failure log and forget the cache. True on success."""
        now = time.time() if now is None else now
        self.fetches += 1
        try:
            latest = await self.fetch()
        except ReferenceFetchError as exc:
            self.fetch_failures += 1
            # warn on the transition only: a reference down for hours must not fill the log every 30 s
            emit = log.warning if self.ok or self.fetched_at is None else log.debug
            emit("reference_unavailable", reference=self.name, error=str(exc))
            self._last, self.ok = {}, False
        else:
            if not self.ok and self.fetched_at is not None:
                log.info("reference_available", reference=self.name)
            self._last, self.ok = latest, True
        self.fetched_at = now
        return self.ok

    async def refresh_if_stale(self, now: float | None = None) -> None:
        """Fetch when the cache is older than ``refresh_interval``; concurrent callers share one fetch."""
        now = time.time() if now is None else now
        async with self._lock:
            if self.fetched_at is None or now - self.fetched_at >= self.refresh_interval:
                await self.refresh(now)

    def observation_for(self, target_name: str, now: float) -> Observation | None:
        """This reference's latest attempt at ``target_name`` if made within ``max_age`` of ``now``.

        ``None`` when the reference does not know the target, its attempt is too old (or too far in the
        future: clocks differ), or its status could not be fetched.
        """
        seen = self._last.get(target_name)
        if seen is None or abs(now - seen.observed_at) > self.config.max_age:
            return None
        return seen

    def success_for(self, target_name: str, now: float) -> bool | None:
        """Did this reference's fresh attempt at ``target_name`` succeed (``None``: no fresh attempt)?"""
        seen = self.observation_for(target_name, now)
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


def parse_status(data: Any, reference: str = "reference") -> dict[str, Observation]:
    """Target name -> the latest attempt from a ``/api/v1/status`` document; raises ``ValueError``.

    Targets without a ``last`` attempt are skipped, and so are attempts without a finite time or a
    boolean success; a document that is not the status shape is an error. Failure and stage values this
    version does not know become ``None``; facts are kept only in a fact's shape and size
    (``model.bounded_facts``).
    """
    if not isinstance(data, dict) or not isinstance(data.get("targets"), list):
        raise ValueError("no 'targets' list")
    latest: dict[str, Observation] = {}
    for item in data["targets"]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        last = item.get("last")
        if not isinstance(last, dict):
            continue
        observation = _observation(last, item["name"], reference)
        if observation is not None:
            latest[item["name"]] = observation
    return latest


def _observation(last: dict[str, Any], name: str, reference: str) -> Observation | None:
    started_at, success = last.get("started_at"), last.get("success")
    if (
        not isinstance(started_at, int | float)
        or isinstance(started_at, bool)
        or not math.isfinite(started_at)
        or not isinstance(success, bool)
    ):
        return None
    durations = last.get("stage_durations")
    return Observation(
        reference=reference,
        target=name,
        observed_at=float(started_at),
        success=success,
        failure=_FAILURES.get(str(last.get("failure"))),
        stage=_STAGES.get(str(last.get("stage"))),
        facts=bounded_facts(last.get("facts")),
        stage_durations={
            k: float(v)
            for k, v in (durations.items() if isinstance(durations, dict) else ())
            if k in _STAGES and _finite(v)
        },
    )


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_FAILURES = {f.value: f for f in Failure}
_STAGES = {s.value: s for s in Stage}


class ReferenceSet:
    """All configured reference vantages, asked as one."""

    def __init__(self, configs: list[ReferenceVantage], base_dir: Path, **client_options: Any) -> None:
        """Builds one client per reference; raises ``ConfigError`` for an unreadable password secret."""
        self.clients = [ReferenceClient(c, base_dir, **client_options) for c in configs]

    def __bool__(self) -> bool:
        return bool(self.clients)

    def observation_for(self, target_name: str, now: float) -> Observation | None:
        """The references' fresh observations combined by ``verdict.reference_consensus`` (the majority)."""
        return reference_consensus([c.observation_for(target_name, now) for c in self.clients])

    def success_for(self, target_name: str, now: float) -> bool | None:
        """Whether the references' consensus reached the target recently (``None``: no consensus)."""
        seen = self.observation_for(target_name, now)
        return None if seen is None else seen.success

    async def observe(self, target_name: str, now: float | None = None) -> Observation | None:
        """Refresh stale caches (bounded by each reference's timeout), then ``observation_for``."""
        now = time.time() if now is None else now
        if not self.clients:
            return None
        await asyncio.gather(*(c.refresh_if_stale(now) for c in self.clients))
        return self.observation_for(target_name, now)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
