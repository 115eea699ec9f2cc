"""The durable journal: every probe result appended to SQLite (WAL) under the state directory.

Why: when a shutdown cuts the vantage off, nobody scrapes ``/metrics``, yet those hours are the evidence.
The journal keeps every measurement so ``reachwatch history`` can show a timeline and ``reachwatch export``
can produce OpenMetrics that ``promtool tsdb create-blocks-from openmetrics`` backfills into Prometheus.

Durability: rows are written by ONE dedicated thread (so no SQLite call blocks the event loop) in small
batches, each batch its own committed transaction with ``synchronous=FULL`` in WAL mode: a committed
row survives ``kill -9`` and a power cut. ``flush()`` waits until everything appended so far is committed.
Retention pruning runs in the same thread. Reads (history, export) use their own connection; WAL lets
them run while the daemon writes.

Beside results the writer takes the daemon's decision records (``journal_events``: vantage state
changes, confirmed verdict changes, reference observations relied on) in the same batches and
transactions, so they carry the same crash guarantees.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog

from reachwatch.config.ports import parse_port_label
from reachwatch.failures import Technique, Verdict
from reachwatch.journal_events import (
    REFERENCE_COLUMNS,
    REFERENCE_INSERT,
    VANTAGE_COLUMNS,
    VANTAGE_INSERT,
    VERDICT_COLUMNS,
    VERDICT_FROM,
    VERDICT_INSERT,
    ReferenceObservation,
    VantageChange,
    VerdictChange,
    decode_reference,
    decode_vantage,
    decode_verdict,
    reference_values,
    vantage_values,
    verdict_values,
)
from reachwatch.journal_store import (
    DB_NAME,
    JournalUnavailable,
    heal,
    is_damage,
    open_db,
    open_healing,
)
from reachwatch.metrics import FACT_METRICS, FactMetric, cap_label_value
from reachwatch.model import ProbeResult
from reachwatch.portsurvey import KIND as PORT_SURVEY
from reachwatch.portsurvey import states_of

log = structlog.get_logger(__name__)

BATCH = 256
PRUNE_EVERY = 3600.0

_COLUMNS = (
    "target, kind, grp, role, started_at, duration_s, success, failure, stage, evidence, verdict,"
    " technique, stage_durations, facts"
)
_RESULTS_INSERT = f"INSERT INTO results ({_COLUMNS}) VALUES ({', '.join('?' * 14)})"  # noqa: S608
# the tables of the decision records and the column that dates a row (retention prunes by it)
DECISION_TABLES = {"vantage_changes": "at", "verdict_changes": "at", "reference_observations": "relied_at"}


@dataclass(frozen=True)
class JournalRow:
    """One journaled attempt: the result plus what the daemon concluded from it."""

    result: ProbeResult
    group: str
    role: str
    verdict: str | None
    technique: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.result.to_dict(),
            "group": self.group,
            "role": self.role,
            "verdict": self.verdict,
            "technique": self.technique,
        }


Record = JournalRow | VantageChange | VerdictChange | ReferenceObservation
"""What the writer thread takes: a result, or one of the daemon's decision records."""


def _row_values(row: JournalRow) -> tuple[Any, ...]:
    r = row.result
    return (
        r.target,
        r.kind,
        row.group,
        row.role,
        r.started_at,
        r.duration_s,
        1 if r.success else 0,
        r.failure.value if r.failure else None,
        r.stage.value if r.stage else None,
        r.evidence.value if r.evidence else None,
        row.verdict,
        row.technique,
        json.dumps(r.stage_durations, sort_keys=True),
        json.dumps(r.facts, sort_keys=True),
    )


def _from_db(rec: tuple[Any, ...]) -> JournalRow:
    """A row as stored; raises ``ValueError``/``TypeError``/``KeyError`` for one this version cannot read."""
    (
        target,
        kind,
        grp,
        role,
        started,
        dur,
        success,
        failure,
        stage,
        evidence,
        verdict,
        technique,
        sd,
        facts,
    ) = rec
    result = ProbeResult.from_dict(
        {
            "target": target,
            "kind": kind,
            "started_at": started,
            "duration_s": dur,
            "success": bool(success),
            "failure": failure,
            "stage": stage,
            "evidence": evidence,
            "stage_durations": json.loads(sd),
            "facts": json.loads(facts),
        }
    )
    # the daemon turns these back into enums when it resumes: check them here, once
    verdict = Verdict(verdict).value if verdict is not None else None
    technique = Technique(technique).value if technique is not None else None
    return JournalRow(result=result, group=str(grp), role=str(role), verdict=verdict, technique=technique)


@dataclass
class ReadStats:
    """What a read skipped: rows this version cannot decode (a failure name from a newer reachwatch
    after a downgrade, a damaged value). Skipped, counted and reported, never fatal."""

    skipped: int = 0


def _decode(rec: tuple[Any, ...], stats: ReadStats | None) -> JournalRow | None:
    try:
        return _from_db(rec)
    except (ValueError, TypeError, KeyError, AttributeError):
        if stats is not None:
            stats.skipped += 1
        return None


def _decoded(records: Iterable[tuple[Any, ...]], stats: ReadStats | None) -> Iterator[JournalRow]:
    for rec in records:
        row = _decode(rec, stats)
        if row is not None:
            yield row


class Journal:
    """Append-only results journal with a dedicated writer thread.

    A damaged database file is set aside and replaced by a fresh one where the damage shows (at open,
    at a write, at a prune; ``journal_store``); ``set_aside`` lists the files so kept. Raises
    ``JournalUnavailable`` when no journal can be opened in ``state_dir`` at all.
    """

    def __init__(self, state_dir: Path, retention: float) -> None:
        self.path = Path(state_dir) / DB_NAME
        self.retention = retention
        self.write_errors = 0
        self.committed = 0
        self.set_aside: list[Path] = []
        self._queue: queue.Queue[Record | None] = queue.Queue()
        self._cond = threading.Condition()
        self._appended = 0
        self._done = 0  # rows handled (committed or failed)
        self._conn, aside = open_healing(self.path)
        if aside is not None:
            self.set_aside.append(aside)
        self._tables = _tables(self._conn)
        self._missing_logged = False
        self._thread = threading.Thread(target=self._run, name="reachwatch-journal", daemon=True)
        self._closed = False
        self._thread.start()

    # --- writing (called from the event loop: never blocks) -------------------------------------------
    def append(self, row: Record) -> None:
        if self._closed:
            raise RuntimeError("journal is closed")
        with self._cond:
            self._appended += 1
        self._queue.put_nowait(row)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every row appended so far is committed (or failed); False on timeout."""
        with self._cond:
            target = self._appended
            return self._cond.wait_for(lambda: self._done >= target, timeout=timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, stop the writer, close the database."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)
        self._conn.close()

    def _run(self) -> None:
        last_prune = -PRUNE_EVERY  # prune once at start
        while True:
            first = self._queue.get()
            batch: list[Record] = []
            stop = first is None
            if first is not None:
                batch.append(first)
            while not stop and len(batch) < BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                else:
                    batch.append(item)
            if batch:
                self._write(batch)
            if time.monotonic() - last_prune > PRUNE_EVERY:
                last_prune = time.monotonic()
                self._prune()
            if stop:
                return

    def _write(self, batch: list[Record]) -> None:
        try:
            self._insert(batch)
        except sqlite3.Error as exc:
            if not (is_damage(exc) and self._heal(exc)):
                self._write_failed(batch, exc)
            else:
                try:  # the same rows into the fresh journal: nothing measured is lost to the damage
                    self._insert(batch)
                except sqlite3.Error as again:
                    self._write_failed(batch, again)
        with self._cond:
            self._done += len(batch)
            self._cond.notify_all()

    def _insert(self, batch: list[Record]) -> None:
        statements, dropped = self._statements(batch)
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            for sql, values in statements:
                if values:
                    self._conn.executemany(sql, values)
            self._conn.execute("COMMIT")
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise
        self.committed += len(batch) - dropped
        if dropped:
            self._records_dropped(dropped)

    def _statements(self, batch: list[Record]) -> tuple[list[tuple[str, list[tuple[Any, ...]]]], int]:
        """The batch as (INSERT, rows) per table, results first; records for a table this file lacks
        (a journal from a newer reachwatch that has its own schema) are dropped and counted."""
        results: list[tuple[Any, ...]] = []
        vantage: list[tuple[Any, ...]] = []
        references: list[tuple[Any, ...]] = []
        verdicts: list[tuple[Any, ...]] = []
        for rec in batch:
            if isinstance(rec, JournalRow):
                results.append(_row_values(rec))
            elif isinstance(rec, VantageChange):
                vantage.append(vantage_values(rec))
            elif isinstance(rec, ReferenceObservation):
                references.append(reference_values(rec))
            else:
                if rec.reference is not None:
                    references.append(reference_values(rec.reference))
                verdicts.append(verdict_values(rec))
        statements = [(_RESULTS_INSERT, results)]
        dropped = 0
        for table, sql, rows in (
            ("vantage_changes", VANTAGE_INSERT, vantage),
            ("reference_observations", REFERENCE_INSERT, references),
            ("verdict_changes", VERDICT_INSERT, verdicts),
        ):
            if table in self._tables:
                statements.append((sql, rows))
            else:
                dropped += len(rows)
        return statements, dropped

    def _records_dropped(self, count: int) -> None:
        self.write_errors += count
        if not self._missing_logged:
            self._missing_logged = True
            log.error("journal_decision_tables_missing", records=count, tables=sorted(DECISION_TABLES))

    def _write_failed(self, batch: list[Record], exc: sqlite3.Error) -> None:
        self.write_errors += len(batch)
        log.error("journal_write_failed", rows=len(batch), error=str(exc))

    def _heal(self, exc: sqlite3.Error) -> bool:
        """Damage found while running: set the file aside, continue in a fresh one. False if impossible."""
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        try:
            self.set_aside.append(heal(self.path, exc))
            self._conn = open_db(self.path)
            self._tables = _tables(self._conn)
        except (JournalUnavailable, sqlite3.Error, OSError) as err:
            log.error("journal_heal_failed", error=str(err))
            # keep a connection to whatever is there so later batches are tried (and counted) normally
            self._conn = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
            return False
        return True

    def _prune(self) -> None:
        cutoff = time.time() - self.retention
        try:
            cur = self._conn.execute("DELETE FROM results WHERE started_at < ?", (cutoff,))
            if cur.rowcount:
                log.info("journal_pruned", rows=cur.rowcount)
            for table, column in DECISION_TABLES.items():
                if table in self._tables:
                    self._conn.execute(f"DELETE FROM {table} WHERE {column} < ?", (cutoff,))  # noqa: S608
        except sqlite3.Error as exc:
            if not (is_damage(exc) and self._heal(exc)):
                log.error("journal_prune_failed", error=str(exc))


# --- reading (CLI and API; own connection) -----------------------------------------------------------


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def open_reader(state_dir: Path) -> sqlite3.Connection:
    path = Path(state_dir) / DB_NAME
    if not path.exists():
        raise FileNotFoundError(f"no journal at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    return conn


def history(
    state_dir: Path, target: str, since: float = 0.0, stats: ReadStats | None = None
) -> list[JournalRow]:
    """A target's journaled attempts since ``since`` (unix seconds), oldest first; rows this version
    cannot decode are skipped and counted in ``stats``."""
    conn = open_reader(state_dir)
    try:
        cur = conn.execute(
            f"SELECT {_COLUMNS} FROM results WHERE target = ? AND started_at >= ?"  # noqa: S608
            " ORDER BY started_at, id",
            (target, since),
        )
        return list(_decoded(cur, stats))
    finally:
        conn.close()


def latest(
    state_dir: Path, since: float, stats: ReadStats | None = None
) -> dict[str, tuple[JournalRow, float]]:
    """Per target, its newest row since ``since`` and when its verdict took that value (for resuming).

    The verdict's start is the first row after the last one with a different verdict or technique. A
    target whose newest row cannot be decoded is left out (counted in ``stats``): it starts "unknown".
    """
    conn = open_reader(state_dir)
    try:
        cur = conn.execute(
            f"SELECT id, {_COLUMNS} FROM results WHERE id IN"  # noqa: S608
            " (SELECT MAX(id) FROM results WHERE started_at >= ? GROUP BY target)",
            (since,),
        )
        out: dict[str, tuple[JournalRow, float]] = {}
        for rec in cur.fetchall():
            row = _decode(rec[1:], stats)
            if row is None:
                continue
            (start,) = conn.execute(
                "SELECT MIN(started_at) FROM results WHERE target = ?1 AND id > (SELECT COALESCE(MAX(id), 0)"
                " FROM results WHERE target = ?1 AND (verdict IS NOT ?2 OR technique IS NOT ?3))",
                (row.result.target, row.verdict, row.technique),
            ).fetchone()
            out[row.result.target] = (row, float(start if start is not None else row.result.started_at))
        return out
    finally:
        conn.close()


def rows_between(
    state_dir: Path, since: float, until: float, stats: ReadStats | None = None
) -> Iterator[JournalRow]:
    conn = open_reader(state_dir)
    try:
        cur = conn.execute(
            f"SELECT {_COLUMNS} FROM results WHERE started_at >= ? AND started_at < ?"  # noqa: S608
            " ORDER BY target, started_at, id",
            (since, until),
        )
        yield from _decoded(cur, stats)
    finally:
        conn.close()


def known_targets(state_dir: Path) -> list[str]:
    """Every target name the journal holds rows of (any time), sorted."""
    conn = open_reader(state_dir)
    try:
        return [str(r[0]) for r in conn.execute("SELECT DISTINCT target FROM results ORDER BY target")]
    finally:
        conn.close()


def targets_between(conn: sqlite3.Connection, since: float, until: float) -> list[str]:
    cur = conn.execute(
        "SELECT DISTINCT target FROM results WHERE started_at >= ? AND started_at < ? ORDER BY target",
        (since, until),
    )
    return [str(r[0]) for r in cur]


def target_rows(
    conn: sqlite3.Connection, target: str, since: float, until: float, stats: ReadStats | None = None
) -> list[JournalRow]:
    """One target's rows in ``[since, until)``, oldest first (undecodable ones skipped and counted)."""
    return _target_rows(conn, target, since, until, stats)


def _target_rows(
    conn: sqlite3.Connection, target: str, since: float, until: float, stats: ReadStats | None
) -> list[JournalRow]:
    cur = conn.execute(
        f"SELECT {_COLUMNS} FROM results WHERE target = ? AND started_at >= ? AND started_at < ?"  # noqa: S608
        " ORDER BY started_at, id",
        (target, since, until),
    )
    return list(_decoded(cur, stats))


def _decoded_records(
    conn: sqlite3.Connection,
    table: str,
    query: tuple[str, tuple[Any, ...]],
    decode: Callable[[Any], Any],
    stats: ReadStats | None,
) -> list[Any]:
    """Decision records of one table; [] for a journal from before they existed (no migration 2)."""
    if table not in _tables(conn):
        return []
    out = []
    for rec in conn.execute(*query):
        try:
            out.append(decode(rec))
        except (ValueError, TypeError, KeyError, AttributeError):
            if stats is not None:
                stats.skipped += 1
    return out


def vantage_changes(
    conn: sqlite3.Connection, since: float, until: float, stats: ReadStats | None = None
) -> list[VantageChange]:
    """Vantage state changes in ``[since, until)``, oldest first."""
    sql = f"SELECT {VANTAGE_COLUMNS} FROM vantage_changes WHERE at >= ? AND at < ? ORDER BY at, id"  # noqa: S608
    return _decoded_records(conn, "vantage_changes", (sql, (since, until)), decode_vantage, stats)


def last_vantage_change(
    conn: sqlite3.Connection, before: float, stats: ReadStats | None = None
) -> VantageChange | None:
    """The newest vantage change before ``before`` (the state a period starts in)."""
    sql = (
        f"SELECT {VANTAGE_COLUMNS} FROM vantage_changes WHERE at < ?"  # noqa: S608
        " ORDER BY at DESC, id DESC LIMIT 1"
    )
    found = _decoded_records(conn, "vantage_changes", (sql, (before,)), decode_vantage, stats)
    return found[0] if found else None


def verdict_changes(
    conn: sqlite3.Connection,
    since: float,
    until: float,
    stats: ReadStats | None = None,
    *,
    target: str | None = None,
) -> list[VerdictChange]:
    """Confirmed verdict changes in ``[since, until)`` (of one ``target`` when given), with the reference
    observation each relied on."""
    where = "v.at >= ? AND v.at < ?" + (" AND v.target = ?" if target is not None else "")
    params = (since, until) if target is None else (since, until, target)
    sql = f"SELECT {VERDICT_COLUMNS} FROM {VERDICT_FROM} WHERE {where} ORDER BY v.target, v.at, v.id"  # noqa: S608
    return _decoded_records(conn, "verdict_changes", (sql, params), decode_verdict, stats)


def reference_observations(
    conn: sqlite3.Connection, since: float, until: float, stats: ReadStats | None = None
) -> list[ReferenceObservation]:
    """Reference observations relied on in ``[since, until)`` (by when we relied on them)."""
    sql = (
        f"SELECT {REFERENCE_COLUMNS} FROM reference_observations"  # noqa: S608
        " WHERE relied_at >= ? AND relied_at < ? ORDER BY target, observed_at, id"
    )
    return _decoded_records(conn, "reference_observations", (sql, (since, until)), decode_reference, stats)


ExportFormat = Literal["jsonl", "openmetrics"]
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


def export(
    state_dir: Path,
    since: float,
    until: float,
    fmt: ExportFormat,
    stats: ReadStats | None = None,
    *,
    labels: Mapping[str, str] | None = None,
) -> Iterator[str]:
    """Journal rows in ``[since, until)`` as text lines (each ending in a newline); rows this version
    cannot decode are left out and counted in ``stats``. ``labels`` (OpenMetrics only) go on every
    series: the vantage identity and ``job``/``instance``, so backfilled samples join the live series."""
    if fmt == "jsonl":
        for row in rows_between(state_dir, since, until, stats):
            yield json.dumps(row.to_dict(), sort_keys=True) + "\n"
        return
    conn = open_reader(state_dir)
    try:
        yield from openmetrics_lines(conn, since, until, stats, labels)
    finally:
        conn.close()


SERIES_LABELS = frozenset(
    {"target", "kind", "group", "role", "stage", "verdict", "technique"}
    | {fm.label for fm in FACT_METRICS.values() if fm.info}
)
"""Labels the exported series set themselves: an identity label of the same name would overwrite them."""


def identity_labels(vantage: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """The labels an export adds: the config's vantage identity (``vantage`` = its name, and ``country``,
    ``asn``, ``isp``, ``city`` when set), then ``extra`` (``--label k=v``; an empty value removes one).
    Raises ``ValueError`` naming a label Prometheus would refuse or one the series set themselves."""
    labels = {k: v for k, v in vantage.items() if v}
    for key, value in extra.items():
        if not _LABEL_NAME.fullmatch(key) or key.startswith("__"):
            raise ValueError(f"{key!r} is not a label name Prometheus accepts")
        if key in SERIES_LABELS:
            raise ValueError(f"label {key!r} is set by every exported series itself")
        if value:
            labels[key] = value
        else:
            labels.pop(key, None)
    return labels


# --- OpenMetrics export --------------------------------------------------------------------------------
# One family at a time, one target at a time, each series contiguous with ascending timestamps in seconds
# and a final "# EOF": the shape promtool tsdb create-blocks-from openmetrics requires. Querying per
# (family, target) keeps memory bounded by one target's rows, not by the whole export.

Sample = tuple[dict[str, str], float]  # extra labels, value
_Extract = Callable[[JournalRow], list[Sample]]


def _stage_samples(row: JournalRow) -> list[Sample]:
    return [({"stage": k}, v) for k, v in sorted(row.result.stage_durations.items())]


def _verdict_samples(row: JournalRow) -> list[Sample]:
    if row.verdict is None:
        return []
    return [({"verdict": v.value}, 1.0 if v.value == row.verdict else 0.0) for v in Verdict]


def _blocked_samples(row: JournalRow) -> list[Sample]:
    if row.verdict == Verdict.BLOCKED.value and row.technique:
        return [({"technique": row.technique}, 1.0)]
    return []


def _fact_extractor(key: str, fm: FactMetric) -> _Extract:
    def extract(row: JournalRow) -> list[Sample]:
        value = row.result.facts.get(key)
        if value is None or (fm.when is not None and not fm.when(row.result)):
            return []
        if fm.info:
            return [({fm.label: cap_label_value(str(value))}, 1.0)]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return [({}, float(value))]
        return []

    return extract


def _port_samples(row: JournalRow) -> list[Sample]:
    """A port survey's ports as ``reachwatch_port_open`` (1 open, 0 closed or filtered; untested left
    out): the shutdown hours nobody scraped are exactly the ones whose ports matter."""
    if row.result.kind != PORT_SURVEY:
        return []
    samples: list[Sample] = []
    for label, state in states_of(row.result.facts).items():
        if state == "untested":
            continue
        try:
            proto, port = parse_port_label(label)
        except ValueError:
            continue
        samples.append(({"proto": proto, "port": str(port)}, 1.0 if state == "open" else 0.0))
    return sorted(samples, key=lambda s: (s[0]["proto"], int(s[0]["port"])))


def _families() -> list[tuple[str, str, _Extract]]:
    fams: list[tuple[str, str, _Extract]] = [
        (
            "reachwatch_probe_success",
            "1 if the attempt succeeded.",
            lambda r: [({}, 1.0 if r.result.success else 0.0)],
        ),
        (
            "reachwatch_probe_duration_seconds",
            "Duration of the attempt.",
            lambda r: [({}, r.result.duration_s)],
        ),
        ("reachwatch_probe_stage_duration_seconds", "Time spent in each stage.", _stage_samples),
        ("reachwatch_target_verdict", "1 for the verdict after this attempt.", _verdict_samples),
        ("reachwatch_target_blocked", "1 while blocked with this technique.", _blocked_samples),
        (
            "reachwatch_target_last_probe_timestamp_seconds",
            "Start of the attempt.",
            lambda r: [({}, r.result.started_at)],
        ),
        ("reachwatch_port_open", "1 if this port survey reached the canary on the port.", _port_samples),
    ]
    fams += [(fm.name, fm.help, _fact_extractor(k, fm)) for k, fm in FACT_METRICS.items()]
    return sorted(fams, key=lambda f: f[0])


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labelstr(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())


def openmetrics_lines(
    conn: sqlite3.Connection,
    since: float,
    until: float,
    stats: ReadStats | None = None,
    labels: Mapping[str, str] | None = None,
) -> Iterator[str]:
    identity = dict(labels or {})
    targets = targets_between(conn, since, until)
    for index, (name, help_text, extract) in enumerate(_families()):
        counting = stats if index == 0 else None  # every family reads the same rows: count them once
        yield f"# HELP {name} {_escape(help_text)}\n"
        yield f"# TYPE {name} gauge\n"
        for target in targets:
            series: dict[tuple[tuple[str, str], ...], dict[float, float]] = {}
            for row in _target_rows(conn, target, since, until, counting):
                base = {**identity, "target": row.result.target, "kind": row.result.kind, "group": row.group}
                base["role"] = row.role
                for extra, value in extract(row):
                    key = tuple(sorted({**base, **extra}.items()))
                    # same timestamp twice in one series would be rejected: the later row wins
                    series.setdefault(key, {})[round(row.result.started_at, 3)] = value
            for key in sorted(series):
                rendered = _labelstr(dict(key))
                for ts, value in sorted(series[key].items()):
                    yield f"{name}{{{rendered}}} {value!r} {ts!r}\n"
    yield "# EOF\n"
