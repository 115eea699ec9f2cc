"""A journal on hostile ground: damaged files are set aside (kept) and replaced, rows this version cannot
decode are skipped and counted, the schema is versioned, and the file is private whatever the directory."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from pathlib import Path

import pytest
import structlog

from reachwatch import journal, journal_store
from reachwatch.errors import ReachwatchError
from reachwatch.failures import Failure, Stage
from reachwatch.journal import Journal, JournalRow, ReadStats
from reachwatch.journal_store import DB_NAME, JournalUnavailable
from reachwatch.model import ProbeResult

T0 = time.time() - 600


def _row(target: str, i: int, ok: bool = True) -> JournalRow:
    result = ProbeResult(
        target=target,
        kind="tcp",
        started_at=T0 + i,
        duration_s=0.1,
        success=ok,
        failure=None if ok else Failure.CONNECTION_RESET,
        stage=None if ok else Stage.CONNECT,
        facts={"seq": i},
    )
    return JournalRow(result=result, group="g", role="target", verdict="reachable", technique=None)


def _fill(state: Path, n: int, target: str = "a") -> None:
    j = Journal(state, retention=86400)
    for i in range(n):
        j.append(_row(target, i))
    j.close()


def _checkpoint(state: Path) -> None:
    """Move the WAL into the main file, so damage to the main file is damage to the data."""
    conn = sqlite3.connect(state / DB_NAME)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def _damaged_files(state: Path) -> list[Path]:
    return sorted(p for p in state.iterdir() if ".damaged-" in p.name and p.suffix == ".sqlite3")


def _write_and_read_back(state: Path) -> Journal:
    j = Journal(state, retention=86400)
    j.append(_row("fresh", 1))
    assert j.flush(timeout=10)
    j.close()
    assert [r.result.target for r in journal.history(state, "fresh")] == ["fresh"]
    return j


def test_random_bytes_are_set_aside_unchanged_and_a_fresh_journal_starts(tmp_path: Path) -> None:
    state = tmp_path / "st"
    state.mkdir()
    garbage = os.urandom(40_000)
    (state / DB_NAME).write_bytes(garbage)
    with structlog.testing.capture_logs() as logs:
        j = _write_and_read_back(state)
    (aside,) = _damaged_files(state)
    assert aside.read_bytes() == garbage  # kept as it was: it may be evidence
    assert j.set_aside == [aside]
    damage = [e for e in logs if "damaged" in e["event"]]
    assert len(damage) == 1 and damage[0]["log_level"] == "error"
    assert damage[0]["damaged_file"] == str(aside) and "not a database" in damage[0]["error"]


def test_a_truncated_journal_is_set_aside_and_measuring_goes_on(tmp_path: Path) -> None:
    state = tmp_path / "st"
    _fill(state, 3000)
    _checkpoint(state)
    db = state / DB_NAME
    os.truncate(db, db.stat().st_size // 2)
    j = _write_and_read_back(state)
    assert len(j.set_aside) == 1 and j.set_aside[0].stat().st_size > 0


def test_damage_found_by_a_write_sets_the_file_aside_and_loses_no_row(tmp_path: Path) -> None:
    state = tmp_path / "st"
    _fill(state, 3000)
    _checkpoint(state)
    db = state / DB_NAME
    conn = sqlite3.connect(db)
    (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'results_target_time'").fetchone()
    conn.close()
    # the index's root page becomes garbage: the file opens fine, the first INSERT finds the damage
    with db.open("r+b") as fh:
        fh.seek((root - 1) * page_size)
        fh.write(b"\xff" * page_size)
    j = Journal(state, retention=86400)
    assert j.set_aside == []  # nothing noticed at open
    rows = [_row("after", i) for i in range(5)]
    for r in rows:
        j.append(r)
    assert j.flush(timeout=10)
    j.close()
    assert len(j.set_aside) == 1 and (j.committed, j.write_errors) == (5, 0)
    assert [r.to_dict() for r in journal.history(state, "after")] == [r.to_dict() for r in rows]


def test_a_state_dir_that_cannot_be_created_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(JournalUnavailable) as info:
        Journal(blocker / "state", retention=86400)
    assert isinstance(info.value, ReachwatchError)  # the CLI prints it as one line and exits 2
    message = str(info.value)
    assert "\n" not in message and str(blocker / "state") in message and "--state-dir" in message


def _insert_raw(state: Path, **overrides: object) -> None:
    values = {
        "target": "a",
        "kind": "tcp",
        "grp": "g",
        "role": "target",
        "started_at": T0 + 500,
        "duration_s": 0.1,
        "success": 0,
        "failure": "connection_reset",
        "stage": "connect",
        "evidence": None,
        "verdict": "unreachable",
        "technique": None,
        "stage_durations": "{}",
        "facts": "{}",
    } | overrides
    conn = sqlite3.connect(state / DB_NAME)
    conn.execute(
        f"INSERT INTO results ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
        tuple(values.values()),
    )
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    "bad",
    [
        {"failure": "quic_handshake_failed"},  # a failure name from a newer version (after a downgrade)
        {"verdict": "degraded"},
        {"technique": "quic_blocking", "verdict": "blocked"},
        {"facts": "{not json"},
        {"stage_durations": "[1, 2]"},
        {"success": 1},  # a success with a failure name
    ],
)
def test_rows_this_version_cannot_decode_are_skipped_and_counted(
    tmp_path: Path, bad: dict[str, object]
) -> None:
    state = tmp_path / "st"
    _fill(state, 3)
    _insert_raw(state, **bad)
    stats = ReadStats()
    assert [r.result.facts["seq"] for r in journal.history(state, "a", 0, stats)] == [0, 1, 2]
    assert stats.skipped == 1
    stats = ReadStats()
    lines = list(journal.export(state, 0, time.time() + 1, "jsonl", stats))
    assert [json.loads(x)["facts"]["seq"] for x in lines] == [0, 1, 2] and stats.skipped == 1
    stats = ReadStats()
    text = "".join(journal.export(state, 0, time.time() + 1, "openmetrics", stats))
    assert text.endswith("# EOF\n") and stats.skipped == 1  # counted once, not once per metric family
    # resuming: the undecodable row is the newest, so the target starts unknown instead of crashing
    stats = ReadStats()
    assert journal.latest(state, 0, stats) == {} and stats.skipped == 1


def test_a_journal_from_before_versioning_is_migrated_in_place(tmp_path: Path) -> None:
    state = tmp_path / "st"
    state.mkdir()
    conn = sqlite3.connect(state / DB_NAME)
    conn.executescript(journal_store.MIGRATIONS[0])  # what versions before migrations created
    conn.close()
    _insert_raw(state, failure=None, stage=None, success=1, verdict="reachable")
    _write_and_read_back(state)
    conn = sqlite3.connect(state / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone() == (len(journal_store.MIGRATIONS),)
    assert conn.execute("SELECT COUNT(*) FROM results").fetchone() == (2,)
    conn.close()


def test_a_new_migration_is_one_entry_and_runs_once(tmp_path: Path) -> None:
    state = tmp_path / "st"
    _fill(state, 2)
    extended = (*journal_store.MIGRATIONS, "CREATE TABLE incidents (id INTEGER PRIMARY KEY, target TEXT)")
    conn = sqlite3.connect(state / DB_NAME, isolation_level=None)
    assert journal_store.migrate(conn, extended) == len(extended)
    assert journal_store.migrate(conn, extended) == len(extended)  # already applied: nothing runs again
    conn.execute("INSERT INTO incidents (target) VALUES ('a')")
    conn.close()


def test_a_journal_from_a_newer_version_is_written_as_before(tmp_path: Path) -> None:
    state = tmp_path / "st"
    _fill(state, 1)
    conn = sqlite3.connect(state / DB_NAME)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with structlog.testing.capture_logs() as logs:
        j = _write_and_read_back(state)
    assert j.set_aside == [] and any(e["event"] == "journal_schema_newer" for e in logs)
    conn = sqlite3.connect(state / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone() == (99,)
    conn.close()


def test_journal_files_are_private_even_in_an_open_directory(tmp_path: Path) -> None:
    state = tmp_path / "st"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    old = os.umask(0o022)
    try:
        j = Journal(state, retention=86400)
        j.append(_row("a", 1))
        assert j.flush(timeout=10)
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in state.iterdir()}
        j.close()
    finally:
        os.umask(old)
    assert modes[DB_NAME] == 0o600 and modes[f"{DB_NAME}-wal"] == 0o600, modes
    # a journal an older version left world-readable is made private at the next open
    (state / DB_NAME).chmod(0o644)
    Journal(state, retention=86400).close()
    assert stat.S_IMODE((state / DB_NAME).stat().st_mode) == 0o600
