"""The SQLite journal: durable appends (even across kill -9), retention, history and exports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reachwatch import journal
from reachwatch.failures import Failure, Stage, Technique
from reachwatch.journal import Journal, JournalRow
from reachwatch.model import ProbeResult

T0 = time.time() - 6 * 3600  # backfill refuses nothing older than retention, and the head block is 3 h


def _row(target: str, i: int, *, ok: bool = True, started: float | None = None) -> JournalRow:
    result = ProbeResult(
        target=target,
        kind="tls",
        started_at=started if started is not None else T0 + i * 60,
        duration_s=0.1 + i / 1000,
        success=ok,
        failure=None if ok else Failure.SSL_UNKNOWN_AUTHORITY,
        stage=None if ok else Stage.TLS_HANDSHAKE,
        evidence=None if ok else Technique.TLS_INTERCEPTION,
        stage_durations={"connect": 0.01, "tls_handshake": 0.05},
        facts={"seq": i, "throughput_bps": 1000.0 * i, "tls_issuer": 'CN=Evil "Root"\\ KZ'},
    )
    return JournalRow(
        result=result,
        group="web",
        role="target",
        verdict="reachable" if ok else "blocked",
        technique=None if ok else "tls_interception",
    )


def test_appended_rows_come_back_in_history_with_all_fields(tmp_path: Path) -> None:
    j = Journal(tmp_path, retention=86400 * 30)
    rows = [_row("a", i, ok=i % 3 != 0) for i in range(10)] + [_row("b", 1)]
    for r in rows:
        j.append(r)
    assert j.flush(timeout=10)
    j.close()
    got = journal.history(tmp_path, "a")
    assert [g.to_dict() for g in got] == [r.to_dict() for r in rows if r.result.target == "a"]
    assert [g.result.facts["seq"] for g in journal.history(tmp_path, "a", since=T0 + 5 * 60)] == [
        5,
        6,
        7,
        8,
        9,
    ]
    conn = journal.open_reader(tmp_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_retention_prunes_old_rows(tmp_path: Path) -> None:
    j = Journal(tmp_path, retention=3600)
    j.append(_row("a", 1, started=time.time() - 7200))
    j.append(_row("a", 2, started=time.time() - 10))
    j.close()
    j2 = Journal(tmp_path, retention=3600)  # prunes at start
    j2.append(_row("a", 3, started=time.time()))
    j2.close()
    assert [r.result.facts["seq"] for r in journal.history(tmp_path, "a")] == [2, 3]


WRITER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
from core.test_journal import _row
from reachwatch.journal import Journal
j = Journal(Path({state!r}), retention=1e9)
i = 0
while True:
    for _ in range(7):
        j.append(_row("k", i))
        i += 1
    j.flush()
    print(i - 1, flush=True)
"""


def test_committed_rows_survive_kill_9(tmp_path: Path) -> None:
    tests_dir = str(Path(__file__).resolve().parents[1])
    reported = -1
    with subprocess.Popen(
        [sys.executable, "-c", WRITER.format(tests=tests_dir, state=str(tmp_path))],
        stdout=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                reported = int(line)
                if reported >= 300:
                    break
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert reported >= 300, "writer died before reporting"
    seqs = {r.result.facts["seq"] for r in journal.history(tmp_path, "k")}
    missing = set(range(reported + 1)) - seqs
    assert not missing, f"committed rows lost after kill -9: {sorted(missing)[:10]}"


def test_export_jsonl_has_one_object_per_row(tmp_path: Path) -> None:
    j = Journal(tmp_path, retention=1e9)
    for i in range(5):
        j.append(_row("a", i))
    j.close()
    lines = list(journal.export(tmp_path, T0 + 60, T0 + 4 * 60, "jsonl"))
    objs = [json.loads(x) for x in lines]
    assert [o["facts"]["seq"] for o in objs] == [1, 2, 3]
    assert objs[0]["group"] == "web" and objs[0]["verdict"] == "reachable"


def test_export_openmetrics_shape(tmp_path: Path) -> None:
    j = Journal(tmp_path, retention=1e9)
    j.append(_row("b", 0, ok=False))
    j.append(_row("a", 1))
    j.close()
    text = "".join(journal.export(tmp_path, 0, time.time(), "openmetrics"))
    assert text.endswith("# EOF\n")
    assert "# TYPE reachwatch_probe_success gauge" in text
    assert (
        'reachwatch_target_blocked{group="web",kind="tls",role="target",target="b",'
        'technique="tls_interception"} 1.0' in text
    )
    # the hostile issuer is escaped, not allowed to break the line format
    assert 'issuer="CN=Evil \\"Root\\"\\\\ KZ"' in text
    # a family's samples are contiguous: each # TYPE appears once
    types = [ln for ln in text.splitlines() if ln.startswith("# TYPE")]
    assert len(types) == len(set(types))


@pytest.mark.slow
def test_openmetrics_export_is_accepted_by_promtool_backfill(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian prometheus) is required"
    state = tmp_path / "state"
    j = Journal(state, retention=1e9)
    for i in range(150):  # 150 minutes: spans two 2-hour block boundaries at most
        j.append(_row("a", i, ok=i % 10 != 0))
        j.append(_row("b", i))
    j.close()
    om = tmp_path / "export.om"
    om.write_text("".join(journal.export(state, 0, time.time(), "openmetrics")))
    out = tmp_path / "blocks"
    proc = subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    (out / "wal").mkdir()  # tsdb dump opens the dir as a full TSDB
    dump = subprocess.run(
        [promtool, "tsdb", "dump", str(out), "--min-time=0", f"--max-time={int(time.time() * 1000)}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert dump.returncode == 0, dump.stderr
    success = [ln for ln in dump.stdout.splitlines() if ln.startswith('{__name__="reachwatch_probe_success"')]
    assert len(success) == 300
    blocked = [
        ln for ln in dump.stdout.splitlines() if ln.startswith('{__name__="reachwatch_target_blocked"')
    ]
    assert len(blocked) == 15


def test_latest_gives_each_targets_newest_row_and_when_its_verdict_began(tmp_path: Path) -> None:
    j = Journal(tmp_path, retention=1e9)
    verdicts = ["reachable", "blocked", "blocked", "reachable", "reachable"]
    for i, v in enumerate(verdicts):
        row = _row("a", i)
        j.append(JournalRow(result=row.result, group="web", role="target", verdict=v, technique=None))
    j.append(_row("b", 0, ok=False))
    j.close()
    got = journal.latest(tmp_path, since=0)
    row_a, since_a = got["a"]
    assert row_a.result.facts["seq"] == 4 and row_a.verdict == "reachable"
    assert since_a == T0 + 3 * 60  # reachable again from the 4th row on
    row_b, since_b = got["b"]
    assert (row_b.verdict, row_b.technique, since_b) == ("blocked", "tls_interception", T0)
    assert journal.latest(tmp_path, since=T0 + 3600) == {}
