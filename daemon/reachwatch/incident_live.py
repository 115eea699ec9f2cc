"""The daemon's live view of incidents: derived from its own journal, kept for the API and metrics.

Why derive from the journal rather than track incidents in memory: the record is the journal, and the
same derivation (``incident_store``) serves ``reachwatch incidents``, reports and the API, so the
dashboard, the alert and a report published later can never disagree, and a restart can neither lose
nor split an incident. The cost is bounded: each target is read from its last good attempt, so a
refresh reads roughly the open incidents plus ``incidents.window``; it runs in a worker thread with its
own read-only connection, every ``incidents.refresh`` seconds and soon after a verdict or vantage change
(``poke``), never more than one at a time.

``document(query)`` answers ``/api/v1/incidents``: without ``since``/``until`` from the cached view,
with them from a fresh derivation of that period (also in a thread, one at a time).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from reachwatch.config.schema import Config
from reachwatch.incident_patterns import Arranged
from reachwatch.incident_store import Period, is_private_in, read
from reachwatch.incident_view import Filters, incidents_document
from reachwatch.incidents import SHUTDOWN, Incident, is_technique
from reachwatch.journal import ReadStats

log = structlog.get_logger(__name__)

POKE_DELAY = 2.0  # a burst of changes (a shutdown flips every target) becomes one refresh
MAX_PERIOD = 400 * 86400.0  # an API period longer than this is refused (the journal keeps 30 days)


class QueryError(ValueError):
    """A bad ``/api/v1/incidents`` query (one line for the 400 answer)."""


@dataclass(frozen=True)
class OpenIncident:
    """What metrics show of an open incident (bounded labels: scope names come from the config)."""

    scope_type: str
    scope: str
    technique: str
    since: float


def _current_technique(incident: Incident) -> str:
    """A shutdown's current state (its latest phase), else the incident's main technique."""
    if incident.kind == SHUTDOWN:
        states = [p.state for p in incident.phases if p.state in ("international_shutdown", "offline")]
        return states[-1] if states else incident.technique
    return incident.technique


class LiveIncidents:
    """The incidents of the last ``incidents.window``, refreshed from the journal."""

    def __init__(self, state_dir: Path, config: Config, flush: Callable[[], object] | None = None) -> None:
        self.state_dir = state_dir
        self.config = config
        self._flush = flush
        self.arranged: Arranged | None = None
        self.period: tuple[float, float] | None = None
        self.refreshed_at: float | None = None
        self.rows_skipped = 0
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._query_lock = asyncio.Lock()

    # --- lifecycle ------------------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="reachwatch-incidents")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def poke(self) -> None:
        """A verdict or the vantage state changed: refresh soon (changes close together: once)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await self.refresh()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.config.incidents.refresh)
            if self._wake.is_set():
                await asyncio.sleep(POKE_DELAY)
                self._wake.clear()

    async def refresh(self) -> None:
        """Derive the live window again (in a thread); a failure keeps the previous view and is logged."""
        now = time.time()
        period = (now - self.config.incidents.window, now + 1.0)
        try:
            self.arranged = await asyncio.to_thread(self._derive, Period(*period), self.config)
        except Exception as exc:  # a damaged or missing journal must not end the daemon's refreshes
            log.warning("incidents_refresh_failed", error=f"{type(exc).__name__}: {exc}")
            return
        self.period, self.refreshed_at = period, now

    def _derive(self, period: Period, config: Config) -> Arranged:
        if self._flush is not None:
            self._flush()
        stats = ReadStats()
        arranged = read(self.state_dir, period, config, stats=stats)
        self.rows_skipped = stats.skipped
        return arranged

    # --- readers --------------------------------------------------------------------------------------
    def open_incidents(self) -> list[OpenIncident]:
        """Open incidents of every scope (targets inside roll-ups too), for metrics."""
        if self.arranged is None:
            return []
        return [
            OpenIncident(i.scope_type, i.scope, _current_technique(i), i.start.by)
            for i in self.arranged.incidents
            if i.open
        ]

    def counts(self) -> Counter[tuple[str, str]]:
        """(scope_type, status) -> incidents in the live window."""
        if self.arranged is None:
            return Counter()
        return Counter((i.scope_type, "open" if i.open else "closed") for i in self.arranged.incidents)

    async def document(self, query: Mapping[str, str]) -> dict[str, Any]:
        """``/api/v1/incidents``: the live view, or the period the query asks for; raises ``QueryError``."""
        filters = _filters(query)
        config = self.config
        if "since" in query or "until" in query:
            period = _query_period(query)
            async with self._query_lock:  # one on-demand derivation at a time
                arranged = await asyncio.to_thread(self._derive, Period(*period), config)
        else:
            if self.arranged is None:
                await self.refresh()
            arranged = self.arranged or Arranged([], [])
            period = self.period or (time.time() - config.incidents.window, time.time())
        return incidents_document(
            arranged,
            vantage=config.vantage.name,
            zone=config.vantage.zone(),
            is_private=is_private_in(config),
            filters=filters,
            period=period,
            generated_at=self.refreshed_at if "since" not in query else time.time(),
        )


def _filters(query: Mapping[str, str]) -> Filters:
    unknown = sorted(set(query) - {"since", "until", "scope", "technique", "status"})
    if unknown:
        raise QueryError(f"unknown parameter {unknown[0]!r} (since, until, scope, technique, status)")
    technique = query.get("technique")
    if technique is not None and not is_technique(technique):
        raise QueryError(f"unknown technique {technique[:40]!r}")
    status = query.get("status")
    if status not in (None, "open", "closed"):
        raise QueryError("status must be open or closed")
    return Filters(scope=query.get("scope"), technique=technique, status=status)


def _query_period(query: Mapping[str, str]) -> tuple[float, float]:
    now = time.time()
    try:
        since = float(query["since"]) if "since" in query else now - 7 * 86400.0
        until = float(query["until"]) if "until" in query else now
    except ValueError:
        raise QueryError("since and until are unix seconds") from None
    if not (math.isfinite(since) and math.isfinite(until)) or until <= since:
        raise QueryError("until must be after since (unix seconds)")
    if until - since > MAX_PERIOD:
        raise QueryError("the period is longer than 400 days")
    return since, until
