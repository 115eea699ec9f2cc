"""The journal's decision records: vantage state changes with the controls that decided them, confirmed
verdict changes with their evidence, and the reference observations relied on.

Proves: they come back as written, through the writer thread's committed batches (and survive kill -9
like results); an observation relied on by many attempts is stored once; a journal written by main's
code before these tables existed (``testdata/journal-v1.sqlite3``, made at main 609e637) opens, keeps its
rows and gains the tables, and read-only it reads as "no decisions"; a journal from a newer version
without the tables still takes results; undecodable decision rows are skipped and counted; retention
prunes them with the results.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from reachwatch import journal, journal_store
from reachwatch.app import Daemon, RunOptions
from reachwatch.config.targets.tcp import TcpTarget
from reachwatch.failures import Failure, Stage, Technique, VantageState, Verdict
from reachwatch.journal import Journal, JournalRow, ReadStats
from reachwatch.journal_events import (
    ControlReading,
    ReferenceObservation,
    VantageChange,
    VerdictChange,
    observation_record,
    relied_reference,
    verdict_change,
)
from reachwatch.journal_store import DB_NAME
from reachwatch.model import Observation, ProbeResult
from reachwatch.state import Outcome, TargetState

T0 = time.time() - 3600
V1_JOURNAL = Path(__file__).with_name("testdata") / "journal-v1.sqlite3"


def _vantage(i: int, state: str = "international_shutdown", previous: str = "online") -> VantageChange:
    return VantageChange(
        at=T0 + i,
        state=state,
        previous=previous,
        reason="domestic controls reachable, every international control failed",
        controls=(
            ControlReading("egov", "domestic", T0 + i - 1, True),
            ControlReading("wiki", "international", T0 + i - 0.5, False, "generic_timeout_error", "connect"),
            ControlReading("late", "international", None, None),
        ),
    )


def _observation(i: int = 0, target: str = "site") -> ReferenceObservation:
    return ReferenceObservation(
        reference="abroad",
        target=target,
        observed_at=T0 + 100 + i,
        relied_at=T0 + 130 + i,
        success=True,
        destination="site.example:443",
        facts={"bytes_moved": 65536, "tls_spki_sha256": "ab" * 32},
    )


def _verdict(i: int, reference: ReferenceObservation | None = None) -> VerdictChange:
    return VerdictChange(
        at=T0 + 200 + i,
        target="site",
        kind="tls",
        group="web",
        role="target",
        verdict="blocked",
        technique="tcp_blackhole",
        previous_verdict="reachable",
        previous_technique=None,
        failure="generic_timeout_error",
        stage="connect",
        evidence=None,
        facts={"ip": "192.0.2.7"},
        reference=reference,
        compared={"reference_bytes_moved": 65536, "cut_after_bytes": 18000},
    )


def _result_row(target: str, i: int) -> JournalRow:
    result = ProbeResult(target=target, kind="tcp", started_at=T0 + i, duration_s=0.1, success=True)
    return JournalRow(result=result, group="g", role="target", verdict="reachable", technique=None)


def _read(state: Path, stats: ReadStats | None = None) -> tuple[list[Any], list[Any], list[Any]]:
    conn = journal.open_reader(state)
    try:
        return (
            journal.vantage_changes(conn, 0, time.time() + 1, stats),
            journal.verdict_changes(conn, 0, time.time() + 1, stats),
            journal.reference_observations(conn, 0, time.time() + 1, stats),
        )
    finally:
        conn.close()


def test_decision_records_come_back_as_written_and_an_observation_is_stored_once(tmp_path: Path) -> None:
    j = Journal(tmp_path, retention=86400)
    obs = _observation()
    j.append(_vantage(1))
    j.append(obs)
    j.append(_verdict(1, reference=obs))  # the same observation again, carried by the change
    j.append(obs)
    j.append(_verdict(2))
    j.append(_result_row("site", 3))
    assert j.flush(10)
    j.close()
    vantage, verdicts, references = _read(tmp_path)
    assert vantage == [_vantage(1)]
    assert verdicts == [_verdict(1, reference=obs), _verdict(2)]
    assert references == [obs]
    assert [r.result.target for r in journal.history(tmp_path, "site")] == ["site"]
    assert j.committed == 6 and j.write_errors == 0
    conn = journal.open_reader(tmp_path)
    prev = conn.execute("SELECT MAX(relied_at) FROM reference_observations").fetchone()[0]
    conn.close()
    assert prev == obs.relied_at  # the first reliance is kept, not the later duplicate's


WRITER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from dataclasses import replace
from core.test_journal_events import _verdict, _vantage
from reachwatch.journal import Journal
j = Journal(Path({state!r}), retention=1e9)
i = 0
while True:
    for _ in range(5):
        j.append(replace(_vantage(i), at={base} + i))
        j.append(replace(_verdict(i), at={base} + i))
        i += 1
    j.flush()
    print(i - 1, flush=True)
"""


def test_committed_decision_records_survive_kill_9(tmp_path: Path) -> None:
    tests_dir = str(Path(__file__).resolve().parents[1])
    reported = -1
    base = float(int(T0))
    with subprocess.Popen(
        [sys.executable, "-c", WRITER.format(tests=tests_dir, state=str(tmp_path), base=base)],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                reported = int(line)
                if reported >= 200:
                    break
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert reported >= 200, "writer died before reporting"
    vantage, verdicts, _ = _read(tmp_path)
    assert {round(v.at - base) for v in vantage} >= set(range(reported + 1))
    assert {round(v.at - base) for v in verdicts} >= set(range(reported + 1))


def test_a_journal_written_by_main_before_these_tables_opens_and_gains_them(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(V1_JOURNAL, state / DB_NAME)
    before = [r.to_dict() for r in journal.history(state, "site")]
    assert len(before) == 12 and {r["verdict"] for r in before} == {"reachable", "blocked"}
    # read-only, before any daemon migrated it: no decisions, no error
    assert _read(state) == ([], [], [])
    j = Journal(state, retention=1e10)
    assert j.set_aside == []
    j.append(_vantage(1))
    j.append(_verdict(1, reference=_observation()))
    j.append(_result_row("site", 7200))
    j.close()
    conn = sqlite3.connect(state / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone() == (len(journal_store.MIGRATIONS),)
    conn.close()
    after = [r.to_dict() for r in journal.history(state, "site")]
    assert after[:12] == before and len(after) == 13
    vantage, verdicts, references = _read(state)
    assert (len(vantage), len(verdicts), len(references)) == (1, 1, 1)


def test_a_newer_journal_without_the_tables_keeps_taking_results(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    shutil.copy(V1_JOURNAL, state / DB_NAME)
    conn = sqlite3.connect(state / DB_NAME)
    conn.execute("PRAGMA user_version = 99")  # a newer reachwatch, with its own idea of the schema
    conn.close()
    with structlog.testing.capture_logs() as logs:
        j = Journal(state, retention=1e10)
        j.append(_vantage(1))
        j.append(_result_row("fresh", 1))
        j.close()
    assert [r.result.target for r in journal.history(state, "fresh")] == ["fresh"]
    assert j.write_errors == 1 and j.committed == 1
    assert any(e["event"] == "journal_decision_tables_missing" for e in logs)


def test_undecodable_decision_rows_are_skipped_and_counted(tmp_path: Path) -> None:
    j = Journal(tmp_path, retention=86400)
    j.append(_vantage(1))
    j.append(_vantage(2))
    j.append(_verdict(1, reference=_observation()))
    j.close()
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("UPDATE vantage_changes SET state = 'on_fire' WHERE at = ?", (T0 + 2,))
    conn.execute("UPDATE verdict_changes SET facts = '[1,'")
    conn.execute("UPDATE reference_observations SET failure = 'new_failure_name'")
    conn.commit()
    conn.close()
    stats = ReadStats()
    vantage, verdicts, references = _read(tmp_path, stats)
    assert [v.at for v in vantage] == [T0 + 1]
    assert verdicts == [] and references == []
    assert stats.skipped == 3


def test_retention_prunes_decision_records_with_the_results(tmp_path: Path) -> None:
    old = time.time() - 7200
    j = Journal(tmp_path, retention=3600)
    j.append(VantageChange(at=old, state="online", previous="unknown", reason="r"))
    j.append(_vantage(3590))
    j.append(ReferenceObservation("abroad", "site", old, old, True))
    j.close()
    Journal(tmp_path, retention=3600).close()  # prunes at start
    vantage, _, references = _read(tmp_path)
    assert [v.at for v in vantage] == [T0 + 3590] and references == []


@dataclass
class _Observation:
    """The shape the verdict engine keeps (issue 12): read by attribute, enums or strings."""

    reference: str
    observed_at: float
    success: bool
    failure: Failure | None = None
    stage: Stage | None = None
    facts: dict[str, object] | None = None
    destination: str | None = None


def test_the_verdict_engines_observation_becomes_a_record_whatever_its_spelling() -> None:
    obs = _Observation(
        "abroad", T0, False, Failure.CONNECTION_RESET, Stage.CONNECT, {"bytes_moved": 0}, "d:1"
    )
    rec = observation_record(obs, "site", T0 + 5)
    assert rec == ReferenceObservation(
        "abroad", "site", T0, T0 + 5, False, "connection_reset", "connect", "d:1", {"bytes_moved": 0}
    )
    as_dict = {"reference_name": "abroad", "started_at": T0, "success": True, "failure": "brand_new"}
    rec2 = observation_record(as_dict, "site", T0)
    assert rec2 is not None and rec2.reference == "abroad" and rec2.failure is None
    assert observation_record(None, "site", T0) is None
    assert observation_record({"reference": "abroad", "success": True}, "site", T0) is None  # no time
    assert observation_record(_Observation("abroad", float("nan"), True), "site", T0) is None


def test_vocabulary_used_by_the_records_is_the_closed_one() -> None:
    # a record names states, verdicts and techniques with the shared vocabulary, nothing of its own
    change = _verdict(1)
    assert Verdict(change.verdict) and Technique(change.technique or "")
    assert VantageState(_vantage(1).state)


class _Listener:
    """A loopback TCP port that accepts (reachable) until closed (refused)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()


async def test_the_daemon_journals_vantage_and_verdict_changes_with_what_decided_them(tmp_path: Path) -> None:
    control, site = _Listener(), _Listener()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "scheduler: {min_destination_spacing: 1ms, controls_interval: 200ms}\n"
        "defaults: {interval: 200ms, timeout: 1s, jitter: 0.1}\n"
        "confirmation: {attempts: 1, required: 1, residual_window: 200ms}\n"
        "controls:\n  international:\n"
        f"    - {{name: ctl, kind: tcp, host: 127.0.0.1, port: {control.port}}}\n"
        f"targets:\n  - {{name: site, kind: tcp, host: 127.0.0.1, port: {site.port}, group: web}}\n"
    )
    daemon = Daemon(RunOptions(config_path=cfg, state_dir=tmp_path / "state", listen_address="127.0.0.1:0"))
    state = tmp_path / "state"

    async def until(predicate: Any, what: str) -> tuple[list[Any], list[Any], list[Any]]:
        for _ in range(100):
            assert daemon.journal is not None
            await asyncio.to_thread(daemon.journal.flush, 5)
            records = _read(state)
            if predicate(*records):
                return records
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    await daemon.start()
    try:
        await until(
            lambda v, d, r: any(c.target == "site" and c.verdict == "reachable" for c in d), "reachable"
        )
        site.close()
        await until(lambda v, d, r: any(c.verdict == "unreachable" for c in d), "unreachable")
        control.close()
        vantage, verdicts, _ = await until(lambda v, d, r: any(c.state == "offline" for c in v), "offline")
    finally:
        await daemon.shutdown(quiet=True)
        control.close()
        site.close()
    assert [(c.previous, c.state) for c in vantage] == [("unknown", "online"), ("online", "offline")]
    (ctl,) = vantage[-1].controls
    assert (ctl.name, ctl.role, ctl.success, ctl.failure, ctl.stage) == (
        "ctl",
        "international",
        False,
        "connection_refused",
        "connect",
    )
    site_changes = [(c.previous_verdict, c.verdict, c.failure) for c in verdicts if c.target == "site"]
    assert site_changes[:2] == [
        ("unknown", "reachable", None),
        ("reachable", "unreachable", "connection_refused"),
    ]
    rows = journal.history(state, "site")
    change = next(c for c in verdicts if c.verdict == "unreachable")
    # the change is dated by the attempt that confirmed it, which is a journaled attempt
    assert change.at in {r.result.started_at for r in rows}


def test_the_reference_an_outcome_relied_on_and_the_figures_it_compared_are_recorded() -> None:
    state = TargetState(target=TcpTarget(name="site", kind="tcp", host="192.0.2.7", port=443))
    failed = ProbeResult("site", "tcp", T0, 1.0, False, Failure.GENERIC_TIMEOUT_ERROR, Stage.CONNECT)
    seen = Observation("abroad", "site", T0 - 30, True, destination="192.0.2.7:443", facts={"bytes_moved": 9})
    state.outcomes.append(Outcome(Verdict.BLOCKED, Technique.THROTTLED, seen, {"throughput_bps": 1200.0}))
    ref = relied_reference(state, T0 + 1)
    assert ref is not None and (ref.reference, ref.observed_at, ref.relied_at) == ("abroad", T0 - 30, T0 + 1)
    assert (ref.destination, ref.facts) == ("192.0.2.7:443", {"bytes_moved": 9})
    state.verdict, state.technique = Verdict.BLOCKED, Technique.THROTTLED
    change = verdict_change(state, failed, (Verdict.REACHABLE, None), ref)
    assert (change.previous_verdict, change.verdict, change.technique, change.at) == (
        "reachable",
        "blocked",
        "throttled",
        T0,
    )
    assert change.compared == {"throughput_bps": 1200.0}
    # an outcome that relied on no reference (local evidence, or unreachable) records none
    state.outcomes.append(Outcome(Verdict.BLOCKED, Technique.TCP_RESET))
    assert relied_reference(state, T0) is None
