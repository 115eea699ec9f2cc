"""The journal's SQLite file: created private, its schema versioned, a damaged file set aside.

Versioned schema: ``PRAGMA user_version`` counts the entries of ``MIGRATIONS`` already applied. A new
table or column (incidents, reports) is ONE new entry appended at the end; never edit an applied entry.
Each migration runs in its own transaction together with the version bump, so a power cut leaves the
file at the old or the new version, never between. Journals written before versioning (version 0, the
``results`` table already there) pass through migration 1 unchanged: it only creates what is missing.
A journal from a NEWER reachwatch (after a downgrade) keeps its version; this one writes ``results`` rows
as before and leaves the newer tables alone.

Healing: a Raspberry Pi's SD card that loses power, a truncated copy or a disk error leave a file that
SQLite refuses (``file is not a database``, ``database disk image is malformed``). The vantage must keep
measuring, so the damaged file (with its ``-wal`` and ``-shm``) is renamed
``journal.damaged-<UTC time>.sqlite3`` beside it (never deleted: it may be the only evidence of an
outage; ``sqlite3 FILE .recover`` salvages its readable rows) and a fresh journal starts. That happens
where the damage is found: at open, or at a later write or prune.

File modes: the database is created 0600 whatever the umask or the directory's mode (SQLite gives the
``-wal`` and ``-shm`` files the database's mode), and a journal an older version left readable by others
is made private: the rows name the endpoints a vantage tests.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from pathlib import Path

import structlog

from reachwatch.errors import ReachwatchError

log = structlog.get_logger(__name__)

DB_NAME = "journal.sqlite3"
_SIDE_FILES = ("-wal", "-shm")

# SQLite primary result codes that mean "this file is damaged" (extended codes keep them in the low byte)
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26

MIGRATIONS: tuple[str, ...] = (
    # 1: the results table (IF NOT EXISTS: journals from before versioning already have it)
    """
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
    """,
    # 2: what the daemon decided and from what (journal_events): vantage state changes with the controls'
    # results, confirmed verdict changes with their evidence, the reference observations relied on
    """
    CREATE TABLE vantage_changes (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        state TEXT NOT NULL,
        previous TEXT NOT NULL,
        reason TEXT NOT NULL,
        controls TEXT NOT NULL
    );
    CREATE INDEX vantage_changes_time ON vantage_changes (at);
    CREATE TABLE verdict_changes (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        target TEXT NOT NULL,
        kind TEXT NOT NULL,
        grp TEXT NOT NULL,
        role TEXT NOT NULL,
        verdict TEXT NOT NULL,
        technique TEXT,
        previous_verdict TEXT NOT NULL,
        previous_technique TEXT,
        failure TEXT,
        stage TEXT,
        evidence TEXT,
        facts TEXT NOT NULL,
        reference TEXT,
        reference_observed_at REAL
    );
    CREATE INDEX verdict_changes_target_time ON verdict_changes (target, at);
    CREATE INDEX verdict_changes_time ON verdict_changes (at);
    CREATE TABLE reference_observations (
        id INTEGER PRIMARY KEY,
        reference TEXT NOT NULL,
        target TEXT NOT NULL,
        observed_at REAL NOT NULL,
        relied_at REAL NOT NULL,
        success INTEGER NOT NULL,
        failure TEXT,
        stage TEXT,
        destination TEXT,
        facts TEXT NOT NULL,
        UNIQUE (reference, target, observed_at)
    );
    CREATE INDEX reference_observations_time ON reference_observations (relied_at);
    """,
    # 3: the figures a verdict compared (a throttled transfer's and the reference's throughput, a cut's
    # bytes against the reference's): the outcome's own evidence, beside the attempt's facts
    """
    ALTER TABLE verdict_changes ADD COLUMN compared TEXT;
    """,
)
"""Schema migrations, oldest first; version N means the first N have run. Append, never edit."""


class JournalUnavailable(ReachwatchError):
    """No journal can be opened at all (the state directory cannot be created or written).

    The daemon refuses to start (one line, exit 2) rather than measure without its evidence: an operator
    who wants no journal says ``journal.enabled: false``; under systemd ``StateDirectory=`` makes the
    directory exist.
    """

    def __init__(self, message: str) -> None:
        super().__init__(f"{message} (choose a writable --state-dir, or set journal.enabled: false)")


def is_damage(exc: BaseException) -> bool:
    """Whether an SQLite error says the file itself is damaged (as opposed to locked, full, read-only)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (_SQLITE_CORRUPT, _SQLITE_NOTADB)
    text = str(exc)
    return "malformed" in text or "not a database" in text


def _create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite does (SQLite would use 0644 minus the umask)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_IMODE(mode) & 0o077:
            os.fchmod(fd, stat.S_IMODE(mode) & 0o700)
    finally:
        os.close(fd)
    for suffix in _SIDE_FILES:
        side = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            mode = side.lstat().st_mode
            if stat.S_ISREG(mode) and stat.S_IMODE(mode) & 0o077:
                side.chmod(stat.S_IMODE(mode) & 0o700)


def migrate(conn: sqlite3.Connection, migrations: tuple[str, ...] = MIGRATIONS) -> int:
    """Apply the migrations this file has not seen; returns the version the file is at afterwards."""
    (version,) = conn.execute("PRAGMA user_version").fetchone()
    version = int(version)
    if version > len(migrations):
        log.warning("journal_schema_newer", version=version, known=len(migrations))
    for number in range(version + 1, len(migrations) + 1):
        try:
            # executescript commits a pending transaction first; the BEGIN inside makes the migration and
            # its version bump one transaction
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{migrations[number - 1]};\nPRAGMA user_version = {number};\nCOMMIT;"
            )
        except sqlite3.Error:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        version = number
    return version


def open_db(path: Path) -> sqlite3.Connection:
    """Open (creating it private) and migrate the journal; raises ``sqlite3.Error`` or ``OSError``."""
    _create_private(path)
    conn = sqlite3.connect(str(path), timeout=10.0, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed batch is on disk before flush() returns, surviving a power cut, not only kill -9
        conn.execute("PRAGMA synchronous=FULL")
        migrate(conn)
    except BaseException:
        conn.close()
        raise
    return conn


def set_aside(path: Path, now: float | None = None) -> Path:
    """Rename a damaged journal (and its ``-wal``/``-shm``) out of the way; returns the new database path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    aside = path.with_name(f"{path.stem}.damaged-{stamp}{path.suffix}")
    n = 1
    while aside.exists():
        n += 1
        aside = path.with_name(f"{path.stem}.damaged-{stamp}-{n}{path.suffix}")
    path.rename(aside)
    for suffix in _SIDE_FILES:
        with contextlib.suppress(FileNotFoundError):
            path.with_name(path.name + suffix).rename(aside.with_name(aside.name + suffix))
    return aside


def open_healing(path: Path) -> tuple[sqlite3.Connection, Path | None]:
    """The journal at ``path``, ready to write; a damaged one is set aside and replaced by a fresh one.

    Returns the connection and, when the file was damaged, where it now lies. Raises
    ``JournalUnavailable`` when no journal can be opened there at all.
    """
    try:
        return open_db(path), None
    except sqlite3.Error as exc:
        if not is_damage(exc):
            raise JournalUnavailable(f"cannot open journal {path}: {exc}") from None
        aside = heal(path, exc)
    except OSError as exc:
        raise JournalUnavailable(f"cannot open journal {path}: {exc.strerror or exc}") from None
    try:
        return open_db(path), aside
    except (sqlite3.Error, OSError) as exc:
        raise JournalUnavailable(f"cannot open a fresh journal {path}: {exc}") from None


def heal(path: Path, exc: BaseException) -> Path:
    """Set a damaged journal aside, with the one log line that says so; raises ``JournalUnavailable``."""
    try:
        aside = set_aside(path)
    except OSError as err:
        raise JournalUnavailable(
            f"journal {path} is damaged ({exc}) and cannot be set aside: {err.strerror or err}"
        ) from None
    log.error(
        "journal damaged: set aside, a fresh journal started",
        error=str(exc),
        damaged_file=str(aside),
        hint=f"sqlite3 {aside} .recover  salvages its readable rows",
    )
    return aside
