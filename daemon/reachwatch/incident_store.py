"""Incidents of a period, read from the journal: the only module that queries SQLite for them.

A period ``[since, until)`` can cut through an incident, so each target is read from its last good,
reachable attempt before ``since`` (an incident that began a month ago keeps its real start), and the
vantage from its last ``online`` change before ``since``. The attempts are streamed once, in the order
they were journaled (a sequential read), each into its target's small state (``TargetIncidents``), so
memory holds incidents, not attempts; the facts of an attempt (JSON) are fetched only for the few
attempts an incident keeps as examples.

What comes out is ``incident_patterns.Arranged``: every incident overlapping the period, roll-ups and
recurring patterns. Rows this version cannot read are skipped and counted in ``ReadStats``.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any

from reachwatch import journal
from reachwatch.config.schema import Config
from reachwatch.failures import Technique, VantageState, Verdict
from reachwatch.incident_patterns import Arranged, ArrangeSettings, arrange
from reachwatch.incident_view import IsPrivate, private_names
from reachwatch.incidents import (
    INTERNATIONAL_CONTROL,
    TARGET_ROLE,
    Attempt,
    Incident,
    TargetIncidents,
    VantageIncidents,
    attach_changes,
)
from reachwatch.journal import ReadStats

# in ``Attempt`` order; the facts are left out ('{}') and fetched by row id for the examples (``_fill_facts``)
_ATTEMPT_COLUMNS = (
    "target, kind, grp, role, started_at, success, verdict, technique, failure, stage, evidence, '{}', id"
)
_VERDICTS = tuple(v.value for v in Verdict)
_TECHNIQUES = tuple(t.value for t in Technique)
# rows whose verdict or technique this version does not know (a newer reachwatch wrote them): skipped
_READABLE = (
    f"(verdict IS NULL OR verdict IN ({', '.join(repr(v) for v in _VERDICTS)}))"
    f" AND (technique IS NULL OR technique IN ({', '.join(repr(t) for t in _TECHNIQUES)}))"
)
_CHUNK = 500  # row ids per IN (...) query (SQLite allows 999 parameters in old builds)


@dataclass(frozen=True)
class Period:
    """The time a derivation covers; incidents overlapping it are kept."""

    since: float
    until: float

    def overlaps(self, incident: Incident) -> bool:
        ends = incident.end.by if incident.end is not None else math.inf
        return incident.start.by < self.until and ends >= self.since


def _role(conn: sqlite3.Connection, target: str) -> str:
    """The target's role in its newest row (a reload may have made a target a control)."""
    row = conn.execute(
        "SELECT role FROM results WHERE target = ? ORDER BY started_at DESC, id DESC LIMIT 1", (target,)
    ).fetchone()
    return str(row[0]) if row is not None else TARGET_ROLE


def _anchor(conn: sqlite3.Connection, target: str, since: float) -> float:
    """Where a target's reading starts: its last good reachable attempt before ``since`` (or the start)."""
    (found,) = conn.execute(
        "SELECT MAX(started_at) FROM results WHERE target = ? AND started_at < ? AND verdict = 'reachable'"
        " AND success = 1 AND evidence IS NULL",
        (target, since),
    ).fetchone()
    return float(found) if found is not None else -math.inf


def _vantage_anchor(conn: sqlite3.Connection, since: float, stats: ReadStats | None) -> float:
    """The last ``online`` change before ``since``: a shutdown under way at ``since`` began after it."""
    before = since
    while True:
        change = journal.last_vantage_change(conn, before, stats)
        if change is None:
            return -math.inf
        if change.state == VantageState.ONLINE.value:
            return change.at
        before = change.at


@dataclass
class DerivedState:
    """Where a derivation stopped: each target's and the vantage's deriver, ready to be fed on (the
    daemon's live view continues from here with what it measures next)."""

    targets: dict[str, TargetIncidents]
    vantage: VantageIncidents

    def incidents(self) -> list[Incident]:
        found = [i for d in self.targets.values() for i in d.incidents]
        return found + self.vantage.incidents


def derive_state(
    conn: sqlite3.Connection, period: Period, vantage: str, stats: ReadStats | None = None
) -> DerivedState:
    """Every target's and the vantage's incidents from the journal, up to ``period.until``, read from
    each one's anchor (module docstring); verdict changes attached, example facts fetched."""
    vantage_start = _vantage_anchor(conn, period.since, stats)
    roles: dict[str, str] = {}
    anchors: dict[str, float] = {}
    for (target,) in conn.execute("SELECT DISTINCT target FROM results").fetchall():
        roles[target] = role = _role(conn, target)
        if role == TARGET_ROLE:
            anchors[target] = _anchor(conn, target, period.since)
        elif role == INTERNATIONAL_CONTROL:
            anchors[target] = vantage_start
    derivers = {target: TargetIncidents() for target, role in roles.items() if role == TARGET_ROLE}
    controls: list[Attempt] = []
    for attempt in _stream(conn, min(anchors.values(), default=period.since), period.until, stats):
        target = attempt.target
        if attempt.started_at < anchors.get(target, math.inf):
            continue
        deriver = derivers.get(target)
        if deriver is not None:
            deriver.feed(attempt)
        elif attempt.role == INTERNATIONAL_CONTROL and roles.get(target) == INTERNATIONAL_CONTROL:
            controls.append(attempt)
    for target, deriver in derivers.items():
        found = deriver.incidents
        if found:
            attach_changes(
                found, journal.verdict_changes(conn, found[0].start.by, period.until, stats, target=target)
            )
    events: list[tuple[float, int, Any]] = [(a.started_at, 0, a) for a in controls]
    events += [(c.at, 1, c) for c in journal.vantage_changes(conn, vantage_start, period.until, stats)]
    events.sort(key=lambda e: (e[0], e[1]))
    shutdowns = VantageIncidents(vantage)
    for _, kind, item in events:
        if kind:
            shutdowns.change(item)
        else:
            shutdowns.attempt(item)
    state = DerivedState(derivers, shutdowns)
    _fill_facts(conn, state.incidents())
    return state


def derive(
    conn: sqlite3.Connection,
    period: Period,
    vantage: str,
    settings: ArrangeSettings,
    stats: ReadStats | None = None,
) -> Arranged:
    """Every incident overlapping ``period``, rolled up, with its recurring patterns."""
    state = derive_state(conn, period, vantage, stats)
    return arrange([i for i in state.incidents() if period.overlaps(i)], settings)


def _stream(
    conn: sqlite3.Connection, start: float, until: float, stats: ReadStats | None
) -> Iterator[Attempt]:
    """Readable attempts in ``[start, until)`` in table order (the order they were journaled, oldest
    first per target): a sequential read. Read through the ``(target, started_at)`` index instead, every
    row is a random lookup into the table, about three times slower on a month of 500 targets."""
    first = 0
    if math.isfinite(start):
        (found,) = conn.execute("SELECT MIN(id) FROM results WHERE started_at >= ?", (start,)).fetchone()
        if found is None:
            return iter(())
        first = int(found)
    window = "id >= ? AND started_at >= ? AND started_at < ?"
    if stats is not None:
        (unreadable,) = conn.execute(
            f"SELECT COUNT(*) FROM results WHERE {window} AND NOT ({_READABLE})",  # noqa: S608
            (first, start, until),
        ).fetchone()
        stats.skipped += int(unreadable)
    cur = conn.execute(
        f"SELECT {_ATTEMPT_COLUMNS} FROM results WHERE {window} AND {_READABLE} ORDER BY id",  # noqa: S608
        (first, start, until),
    )
    return map(Attempt._make, cur)


def _fill_facts(conn: sqlite3.Connection, incidents: list[Incident]) -> None:
    """Fetch the facts of the attempts kept as examples (the only ones whose facts are shown)."""
    wanted = sorted({a.row_id for i in incidents for examples in i.examples.values() for a in examples})
    facts: dict[int, str] = {}
    for n in range(0, len(wanted), _CHUNK):
        chunk = wanted[n : n + _CHUNK]
        marks = ", ".join("?" * len(chunk))
        for row_id, text in conn.execute(f"SELECT id, facts FROM results WHERE id IN ({marks})", chunk):  # noqa: S608
            facts[int(row_id)] = str(text)
    for incident in incidents:
        for key, examples in incident.examples.items():
            incident.examples[key] = [a._replace(facts=facts.get(a.row_id, "{}")) for a in examples]


def arrange_settings(config: Config, zone: tzinfo | None = None) -> ArrangeSettings:
    """The config's ``incidents`` section and the vantage's time zone (``zone`` overrides it)."""
    section = config.incidents
    return ArrangeSettings(
        timezone=zone or config.vantage.zone(),
        rollup_window=section.rollup_window,
        min_days=section.pattern_min_days,
        tolerance=section.pattern_tolerance,
    )


def is_private_in(config: Config) -> IsPrivate:
    """Which target names are private for this config (names it does not know count as private)."""
    return private_names((t.name, t.private) for t in config.all_targets())


def read(
    state_dir: Path,
    period: Period,
    config: Config,
    zone: tzinfo | None = None,
    stats: ReadStats | None = None,
) -> Arranged:
    """``derive`` on the journal in ``state_dir`` (read-only; the daemon may be writing)."""
    conn = journal.open_reader(state_dir)
    try:
        return derive(conn, period, config.vantage.name, arrange_settings(config, zone), stats)
    finally:
        conn.close()
