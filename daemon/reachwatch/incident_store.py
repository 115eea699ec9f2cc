"""Incidents of a period, read from the journal: the only module that queries SQLite for them.

A period ``[since, until)`` can cut through an incident, so each target is read from its last good,
reachable attempt before ``since`` (an incident that began a month ago keeps its real start), and the
vantage from its last ``online`` change before ``since``. Targets are read one at a time through the
``(target, started_at)`` index, so memory holds one target's attempts, not the period's; the facts of
an attempt (JSON) are fetched only for the few attempts an incident keeps as examples.

What comes out is ``incident_patterns.Arranged``: every incident overlapping the period, roll-ups and
recurring patterns. Rows this version cannot read are skipped and counted in ``ReadStats``.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
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
    attach_changes,
    target_incidents,
    vantage_incidents,
)
from reachwatch.journal import ReadStats

# the facts are left out here and fetched by row id for the examples (``_fill_facts``)
_ATTEMPT_COLUMNS = (
    "id, target, kind, grp, role, started_at, success, verdict, technique, failure, stage, evidence"
)
_VERDICTS = frozenset(v.value for v in Verdict)
_TECHNIQUES = frozenset(t.value for t in Technique)
_CHUNK = 500  # row ids per IN (...) query (SQLite allows 999 parameters in old builds)


@dataclass(frozen=True)
class Period:
    """The time a derivation covers; incidents overlapping it are kept."""

    since: float
    until: float

    def overlaps(self, incident: Incident) -> bool:
        ends = incident.end.by if incident.end is not None else math.inf
        return incident.start.by < self.until and ends >= self.since


def _skip(stats: ReadStats | None) -> None:
    if stats is not None:
        stats.skipped += 1


def _attempt(rec: tuple[Any, ...], stats: ReadStats | None) -> Attempt | None:
    row_id, target, kind, grp, role, started, success, verdict, technique, failure, stage, evidence = rec
    if (verdict is not None and verdict not in _VERDICTS) or (
        technique is not None and technique not in _TECHNIQUES
    ):
        _skip(stats)
        return None
    if not isinstance(started, int | float) or not math.isfinite(started):
        _skip(stats)
        return None
    return Attempt(
        target=str(target),
        kind=str(kind),
        group=str(grp),
        role=str(role),
        started_at=float(started),
        success=bool(success),
        verdict=verdict,
        technique=technique,
        failure=failure,
        stage=stage,
        evidence=evidence,
        row_id=int(row_id),
    )


def _attempts(
    conn: sqlite3.Connection, target: str, start: float, until: float, stats: ReadStats | None
) -> Iterator[Attempt]:
    cur = conn.execute(
        f"SELECT {_ATTEMPT_COLUMNS} FROM results WHERE target = ? AND started_at >= ? AND started_at < ?"  # noqa: S608
        " ORDER BY started_at, id",
        (target, start, until),
    )
    for rec in cur:
        attempt = _attempt(rec, stats)
        if attempt is not None:
            yield attempt


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


def derive(
    conn: sqlite3.Connection,
    period: Period,
    vantage: str,
    settings: ArrangeSettings,
    stats: ReadStats | None = None,
) -> Arranged:
    """Every incident overlapping ``period``, rolled up, with its recurring patterns."""
    vantage_start = _vantage_anchor(conn, period.since, stats)
    incidents: list[Incident] = []
    controls: list[Attempt] = []
    for (target,) in conn.execute("SELECT DISTINCT target FROM results").fetchall():
        role = _role(conn, target)
        if role == INTERNATIONAL_CONTROL:
            controls += _attempts(conn, target, vantage_start, period.until, stats)
        elif role == TARGET_ROLE:
            start = _anchor(conn, target, period.since)
            found = target_incidents(_attempts(conn, target, start, period.until, stats))
            if found:
                changes = journal.verdict_changes(conn, found[0].start.by, period.until, stats, target=target)
                attach_changes(found, changes)
                incidents += found
    controls.sort(key=lambda a: a.started_at)
    vantage_changes = journal.vantage_changes(conn, vantage_start, period.until, stats)
    incidents += vantage_incidents(vantage, vantage_changes, controls)
    kept = [i for i in incidents if period.overlaps(i)]
    _fill_facts(conn, kept)
    return arrange(kept, settings)


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
            incident.examples[key] = [replace(a, facts=facts.get(a.row_id, "{}")) for a in examples]


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
