"""The durable journal: every probe result appended to SQLite (WAL) under the state directory.

Why: when a shutdown cuts the vantage off, nobody scrapes ``/metrics``, yet those hours are the evidence.
The journal keeps every measurement so ``reachwatch history`` can show a timeline and ``reachwatch export``
can produce OpenMetrics that ``promtool tsdb create-blocks-from openmetrics`` backfills into Prometheus.

Durability: rows are written by ONE dedicated thread (so no SQLite call blocks the event loop) in small
batches, each batch its own committed transaction with ``synchronous=FULL`` in WAL mode: a committed
row survives ``kill -9`` and a power cut. ``flush()`` waits until everything appended so far is committed.
Retention pruning runs in the same thread. Reads (history, export) use their own connection; WAL lets
them run while the daemon writes.
"""

from __future__ import annotations

import contextlib
import json
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import structlog

from reachwatch.failures import Verdict
from reachwatch.metrics import FACT_METRICS, FactMetric, cap_label_value
from reachwatch.model import ProbeResult

log = structlog.get_logger(__name__)

DB_NAME = "journal.sqlite3"
BATCH = 256
PRUNE_EVERY = 3600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    target TEXT NOT NULL,
    kind TEXT NOT NULL,
    grp TEXT NOT NULL,
    role TEXT NOT NULL,
    started_at REAL NOT NULL,
    duration_s REAL NOT NULL,
    success INTEGER NOT NULL,
    failure TEXT,
    stage TEXT,
    evidence TEXT,
    verdict TEXT,
    technique TEXT,
    stage_durations TEXT NOT NULL,
    facts TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS results_target_time ON results (target, started_at);
CREATE INDEX IF NOT EXISTS results_time ON results (started_at);
"""

_COLUMNS = (
    "target, kind, grp, role, started_at, duration_s, success, failure, stage, evidence, verdict,"
    " technique, stage_durations, facts"
)


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
    return JournalRow(result=result, group=grp, role=role, verdict=verdict, technique=technique)


def connect(path: Path) -> sqlite3.Connection:
    """Open (and create) the journal database in WAL mode."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # FULL: a committed batch is on disk before flush() returns, surviving a power cut, not only kill -9
    conn.execute("PRAGMA synchronous=FULL")
    conn.executescript(_SCHEMA)
    return conn


class Journal:
    """Append-only results journal with a dedicated writer thread."""

    def __init__(self, state_dir: Path, retention: float) -> None:
        self.path = Path(state_dir) / DB_NAME
        self.retention = retention
        self.write_errors = 0
        self.committed = 0
        self._queue: queue.Queue[JournalRow | None] = queue.Queue()
        self._cond = threading.Condition()
        self._appended = 0
        self._done = 0  # rows handled (committed or failed)
        self._conn = connect(self.path)
        self._thread = threading.Thread(target=self._run, name="reachwatch-journal", daemon=True)
        self._closed = False
        self._thread.start()

    # --- writing (called from the event loop: never blocks) -------------------------------------------
    def append(self, row: JournalRow) -> None:
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
            batch: list[JournalRow] = []
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

    def _write(self, batch: list[JournalRow]) -> None:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany(
                f"INSERT INTO results ({_COLUMNS}) VALUES ({', '.join('?' * 14)})",  # noqa: S608
                [_row_values(r) for r in batch],
            )
            self._conn.execute("COMMIT")
            self.committed += len(batch)
        except sqlite3.Error as exc:
            self.write_errors += len(batch)
            log.error("journal_write_failed", rows=len(batch), error=str(exc))
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
        with self._cond:
            self._done += len(batch)
            self._cond.notify_all()

    def _prune(self) -> None:
        try:
            cur = self._conn.execute(
                "DELETE FROM results WHERE started_at < ?", (time.time() - self.retention,)
            )
            if cur.rowcount:
                log.info("journal_pruned", rows=cur.rowcount)
        except sqlite3.Error as exc:
            log.error("journal_prune_failed", error=str(exc))


# --- reading (CLI and API; own connection) -----------------------------------------------------------


def open_reader(state_dir: Path) -> sqlite3.Connection:
    path = Path(state_dir) / DB_NAME
    if not path.exists():
        raise FileNotFoundError(f"no journal at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    return conn


def history(state_dir: Path, target: str, since: float = 0.0) -> list[JournalRow]:
    """A target's journaled attempts since ``since`` (unix seconds), oldest first."""
    conn = open_reader(state_dir)
    try:
        cur = conn.execute(
            f"SELECT {_COLUMNS} FROM results WHERE target = ? AND started_at >= ?"  # noqa: S608
            " ORDER BY started_at, id",
            (target, since),
        )
        return [_from_db(rec) for rec in cur]
    finally:
        conn.close()


def latest(state_dir: Path, since: float) -> dict[str, tuple[JournalRow, float]]:
    """Per target, its newest row since ``since`` and when its verdict took that value (for resuming).

    The verdict's start is the first row after the last one with a different verdict or technique.
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
            row = _from_db(rec[1:])
            (start,) = conn.execute(
                "SELECT MIN(started_at) FROM results WHERE target = ?1 AND id > (SELECT COALESCE(MAX(id), 0)"
                " FROM results WHERE target = ?1 AND (verdict IS NOT ?2 OR technique IS NOT ?3))",
                (row.result.target, row.verdict, row.technique),
            ).fetchone()
            out[row.result.target] = (row, float(start if start is not None else row.result.started_at))
        return out
    finally:
        conn.close()


def rows_between(state_dir: Path, since: float, until: float) -> Iterator[JournalRow]:
    conn = open_reader(state_dir)
    try:
        cur = conn.execute(
            f"SELECT {_COLUMNS} FROM results WHERE started_at >= ? AND started_at < ?"  # noqa: S608
            " ORDER BY target, started_at, id",
            (since, until),
        )
        for rec in cur:
            yield _from_db(rec)
    finally:
        conn.close()


def targets_between(conn: sqlite3.Connection, since: float, until: float) -> list[str]:
    cur = conn.execute(
        "SELECT DISTINCT target FROM results WHERE started_at >= ? AND started_at < ? ORDER BY target",
        (since, until),
    )
    return [str(r[0]) for r in cur]


def _target_rows(conn: sqlite3.Connection, target: str, since: float, until: float) -> list[JournalRow]:
    cur = conn.execute(
        f"SELECT {_COLUMNS} FROM results WHERE target = ? AND started_at >= ? AND started_at < ?"  # noqa: S608
        " ORDER BY started_at, id",
        (target, since, until),
    )
    return [_from_db(rec) for rec in cur]


ExportFormat = Literal["jsonl", "openmetrics"]


def export(state_dir: Path, since: float, until: float, fmt: ExportFormat) -> Iterator[str]:
    """Journal rows in ``[since, until)`` as text lines (each ending in a newline)."""
    if fmt == "jsonl":
        for row in rows_between(state_dir, since, until):
            yield json.dumps(row.to_dict(), sort_keys=True) + "\n"
        return
    conn = open_reader(state_dir)
    try:
        yield from openmetrics_lines(conn, since, until)
    finally:
        conn.close()


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


def _families() -> list[tuple[str, str, _Extract]]:
    fams: list[tuple[str, str, _Extract]] = [
        ("probe_success", "1 if the attempt succeeded.", lambda r: [({}, 1.0 if r.result.success else 0.0)]),
        ("probe_duration_seconds", "Duration of the attempt.", lambda r: [({}, r.result.duration_s)]),
        ("probe_stage_duration_seconds", "Time spent in each stage.", _stage_samples),
        ("reachwatch_target_verdict", "1 for the verdict after this attempt.", _verdict_samples),
        ("reachwatch_target_blocked", "1 while blocked with this technique.", _blocked_samples),
        (
            "reachwatch_target_last_probe_timestamp_seconds",
            "Start of the attempt.",
            lambda r: [({}, r.result.started_at)],
        ),
    ]
    fams += [(fm.name, fm.help, _fact_extractor(k, fm)) for k, fm in FACT_METRICS.items()]
    return sorted(fams, key=lambda f: f[0])


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labelstr(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())


def openmetrics_lines(conn: sqlite3.Connection, since: float, until: float) -> Iterator[str]:
    targets = targets_between(conn, since, until)
    for name, help_text, extract in _families():
        yield f"# HELP {name} {_escape(help_text)}\n"
        yield f"# TYPE {name} gauge\n"
        for target in targets:
            series: dict[tuple[tuple[str, str], ...], dict[float, float]] = {}
            for row in _target_rows(conn, target, since, until):
                base = {"target": row.result.target, "kind": row.result.kind, "group": row.group}
                base["role"] = row.role
                for extra, value in extract(row):
                    key = tuple(sorted({**base, **extra}.items()))
                    # same timestamp twice in one series would be rejected: the later row wins
                    series.setdefault(key, {})[round(row.result.started_at, 3)] = value
            for key in sorted(series):
                labels = _labelstr(dict(key))
                for ts, value in sorted(series[key].items()):
                    yield f"{name}{{{labels}}} {value!r} {ts!r}\n"
    yield "# EOF\n"
