"""The daemon's live view of incidents, for ``/api/v1/incidents`` and the ``reachwatch_incident_*`` metrics.

It is the journal's derivation carried on: at start the daemon derives its journal once
(``incident_store.derive_state``, the last ``incidents.window`` and every incident still open, whatever
its age), then feeds the same derivers what it journals next (each attempt, vantage change and verdict
change, in the order the journal gets them). So the dashboard, the alert, ``reachwatch incidents`` and a
report published later show the same incidents, a restart can neither lose nor split one (the next
start derives them again from the journal), and the cost per attempt is constant: no periodic re-read
of a month of journal on a Raspberry Pi.

Roll-ups, patterns and the snapshot the metrics read are rebuilt on the event loop, at most every
``REBUILD_DELAY`` after a change (a shutdown flips every target at once); the metrics render in a
worker thread and only read that snapshot. ``document(query)`` with ``since``/``until`` derives that
period from the journal instead (in a thread, one at a time).
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from reachwatch.config.schema import Config
from reachwatch.incident_patterns import Arranged, arrange
from reachwatch.incident_store import (
    DerivedState,
    Period,
    arrange_settings,
    derive_state,
    is_private_in,
    read,
)
from reachwatch.incident_view import Filters, incidents_document
from reachwatch.incidents import (
    INTERNATIONAL_CONTROL,
    SHUTDOWN,
    TARGET_ROLE,
    Attempt,
    Incident,
    TargetIncidents,
    VantageIncidents,
    is_technique,
)
from reachwatch.journal import JournalRow, ReadStats, open_reader
from reachwatch.journal_events import VantageChange, VerdictChange

log = structlog.get_logger(__name__)

REBUILD_DELAY = 1.0
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


def attempt_of(row: JournalRow) -> Attempt:
    """A journal row as the derivation reads it (what ``incident_store`` builds from SQLite)."""
    r = row.result
    return Attempt(
        target=r.target,
        kind=r.kind,
        group=row.group,
        role=row.role,
        started_at=r.started_at,
        success=r.success,
        verdict=row.verdict,
        technique=row.technique,
        failure=r.failure.value if r.failure else None,
        stage=r.stage.value if r.stage else None,
        evidence=r.evidence.value if r.evidence else None,
        facts=json.dumps(r.facts, sort_keys=True, default=str),
    )


class LiveIncidents:
    """Incidents of the last ``incidents.window`` (and every open one), kept current as results come."""

    def __init__(self, state_dir: Path, config: Config, flush: Callable[[], object] | None = None) -> None:
        self.state_dir = state_dir
        self.config = config
        self._flush = flush
        self.state = DerivedState({}, VantageIncidents(config.vantage.name))
        self.rows_skipped = 0
        self.arranged = Arranged([], [])
        self._open: tuple[OpenIncident, ...] = ()
        self._counts: Counter[tuple[str, str]] = Counter()
        self._dirty = False
        self._rebuild_handle: asyncio.TimerHandle | None = None
        self._query_lock = asyncio.Lock()

    # --- start ----------------------------------------------------------------------------------------
    async def seed(self) -> None:
        """Derive the journal once (in a thread); call before the scheduler starts. A journal that cannot
        be read leaves the view empty (logged): measuring goes on, the next start derives again."""
        now = time.time()
        period = Period(now - self.config.incidents.window, now + 1.0)
        stats = ReadStats()
        try:
            self.state = await asyncio.to_thread(self._derive_state, period, stats)
        except Exception as exc:
            log.warning("incidents_seed_failed", error=f"{type(exc).__name__}: {exc}")
        self.rows_skipped = stats.skipped
        self._rebuild()

    def _derive_state(self, period: Period, stats: ReadStats) -> DerivedState:
        conn = open_reader(self.state_dir)
        try:
            return derive_state(conn, period, self.config.vantage.name, stats)
        finally:
            conn.close()

    # --- feeding (on the event loop, in journal order) -------------------------------------------------
    def attempt(self, row: JournalRow) -> None:
        if row.role == TARGET_ROLE:
            deriver = self.state.targets.get(row.result.target)
            if deriver is None:
                deriver = self.state.targets[row.result.target] = TargetIncidents()
            before = (len(deriver.incidents), deriver.current is None)
            deriver.feed(attempt_of(row))
            if (len(deriver.incidents), deriver.current is None) != before:
                self._changed()
            elif deriver.current is not None:
                self._dirty = True  # attempts counted; no hurry
        elif row.role == INTERNATIONAL_CONTROL:
            self.state.vantage.attempt(attempt_of(row))

    def vantage_change(self, change: VantageChange) -> None:
        """Feed after the attempt that decided it (the journal's time order)."""
        self.state.vantage.change(change)
        self._changed()

    def verdict_change(self, change: VerdictChange) -> None:
        deriver = self.state.targets.get(change.target)
        if deriver is not None:
            deriver.note_change(change)
            self._changed()

    def reconfigure(self, config: Config) -> None:
        self.config = config
        self._changed()

    def _changed(self) -> None:
        self._dirty = True
        if self._rebuild_handle is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # fed outside a loop (tests): rebuild at once
                self._rebuild()
                return
            self._rebuild_handle = loop.call_later(REBUILD_DELAY, self._rebuild)

    def _rebuild(self) -> None:
        """Prune what left the window, roll up, find patterns, and publish the metrics snapshot."""
        self._rebuild_handle = None
        self._dirty = False
        horizon = time.time() - self.config.incidents.window
        lists = [d.incidents for d in self.state.targets.values()] + [self.state.vantage.incidents]
        for found in lists:
            found[:] = [i for i in found if i.end is None or i.end.by >= horizon]
        self.arranged = arrange(self.state.incidents(), arrange_settings(self.config))
        self._open = tuple(
            OpenIncident(i.scope_type, i.scope, _current_technique(i), i.start.by)
            for i in self.arranged.incidents
            if i.open
        )
        self._counts = Counter(
            (i.scope_type, "open" if i.open else "closed") for i in self.arranged.incidents
        )

    # --- readers --------------------------------------------------------------------------------------
    def open_incidents(self) -> tuple[OpenIncident, ...]:
        """Open incidents of every scope (targets inside roll-ups too); safe from the metrics thread."""
        return self._open

    def counts(self) -> Counter[tuple[str, str]]:
        """(scope_type, status) -> incidents in the live window; safe from the metrics thread."""
        return self._counts

    def snapshot_document(self, filters: Filters | None = None) -> dict[str, Any]:
        """The live view as the incidents document (on the event loop): the data the status page renders
        (issue 13) beside ``/api/v1/status``, the same as ``/api/v1/incidents`` without a period."""
        if self._dirty:
            self._rebuild()
        now = time.time()
        return self._document(self.arranged, filters or Filters(), (now - self.config.incidents.window, now))

    async def document(self, query: Mapping[str, str]) -> dict[str, Any]:
        """``/api/v1/incidents``: the live view, or the period the query asks for; raises ``QueryError``."""
        filters = _filters(query)
        if "since" not in query and "until" not in query:
            return self.snapshot_document(filters)
        period = _query_period(query)
        async with self._query_lock:  # one on-demand derivation at a time
            arranged = await asyncio.to_thread(self._read, Period(*period), self.config)
        return self._document(arranged, filters, period)

    def _document(self, arranged: Arranged, filters: Filters, period: tuple[float, float]) -> dict[str, Any]:
        config = self.config
        now = time.time()
        return incidents_document(
            arranged,
            vantage=config.vantage.name,
            zone=config.vantage.zone(),
            is_private=is_private_in(config),
            filters=filters,
            period=period,
            generated_at=now,
        )

    def _read(self, period: Period, config: Config) -> Arranged:
        if self._flush is not None:
            self._flush()  # what was measured a moment ago is in the answer
        return read(self.state_dir, period, config)


def _filters(query: Mapping[str, str]) -> Filters:
    unknown = sorted(set(query) - {"since", "until", "scope", "technique", "status"})
    if unknown:
        raise QueryError(f"unknown parameter {unknown[0][:40]!r} (since, until, scope, technique, status)")
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
