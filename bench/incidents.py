"""Incidents and reports from a month of journal: time and peak memory, and journal size per target-day.

    .venv/bin/python bench/incidents.py --targets 500 --days 30 --dir /tmp/rw-bench-incidents

Writes (once; reused when present) a journal of ``--days`` days ending now, for ``--targets`` targets
every 10 minutes plus two controls every 2 minutes, in the daemon's own row format
(``journal._row_values`` into the migrated schema, large transactions instead of the daemon's small
ones), with the decision records the daemon would have written. What happens in it (Asia/Almaty):

- 50 targets of group ``social`` blocked (TLS interference) every evening 19:00-23:00;
- 10 targets of group ``banks`` intercepted (``tls_interception``) for 10 days;
- 20 targets unreachable for a random 1-6 hours once in a while (about every 3 days each);
- the vantage: an international shutdown of 4 hours and one of 2 days (targets unknown meanwhile).

Then runs, each in a fresh process, ``reachwatch incidents --since <days>d`` and ``reachwatch report
--since <days>d`` in html, md and json, and reports wall time and the process's peak RSS (``wait4``).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from reachwatch import journal
from reachwatch.failures import Failure, Stage, Technique
from reachwatch.journal import JournalRow
from reachwatch.journal_events import (
    ControlReading,
    VantageChange,
    VerdictChange,
    vantage_values,
    verdict_values,
)
from reachwatch.journal_store import DB_NAME, open_db
from reachwatch.model import ProbeResult

ALMATY = timezone(timedelta(hours=5))  # Asia/Almaty since March 2024
STEP, CONTROL_STEP = 600.0, 120.0
INSERT = journal._RESULTS_INSERT  # the daemon's own statement and row format


def config_text(targets: int) -> str:
    lines = [
        "vantage: {name: kz-almaty-1, country: KZ, asn: AS9198, isp: Kazakhtelecom, city: Almaty,"
        " timezone: Asia/Almaty}",
        "controls:",
        "  domestic: [{name: egov, kind: https, url: 'https://egov.kz/'}]",
        "  international: [{name: wiki, kind: https, url: 'https://www.wikipedia.org/'}]",
        "targets:",
    ]
    for i in range(targets):
        lines.append(f"  - {{name: {name(i)}, kind: tls, host: t{i}.example, group: {group(i)}}}")
    return "\n".join(lines) + "\n"


def name(i: int) -> str:
    return f"target-{i:04d}"


def group(i: int) -> str:
    if i < 50:
        return "social"
    if i < 60:
        return "banks"
    if i < 80:
        return "flaky"
    return f"web-{i % 10}"


def _ok(target: str, t: float, rng: random.Random) -> ProbeResult:
    return ProbeResult(
        target,
        "tls",
        t,
        rng.uniform(0.05, 0.4),
        True,
        stage_durations={"resolve": 0.002, "connect": 0.03, "tls_handshake": 0.08},
        facts={"tls_version": "TLSv1.3", "ip": "203.0.113.7", "tls_issuer": "CN=R11,O=Let's Encrypt,C=US"},
    )


def _bad(target: str, t: float, technique: str | None) -> ProbeResult:
    if technique == "tls_interference":
        return ProbeResult(
            target,
            "tls",
            t,
            15.0,
            False,
            Failure.GENERIC_TIMEOUT_ERROR,
            Stage.TLS_HANDSHAKE,
            Technique.TLS_INTERFERENCE,
            {"connect": 0.03},
            {"neutral_sni_handshake": True},
        )
    if technique == "tls_interception":
        return ProbeResult(
            target,
            "tls",
            t,
            0.2,
            False,
            Failure.SSL_UNKNOWN_AUTHORITY,
            Stage.TLS_HANDSHAKE,
            Technique.TLS_INTERCEPTION,
            {"connect": 0.03},
            {"tls_issuer": "CN=Information Security Certification Authority,O=ISCA,C=KZ"},
        )
    return ProbeResult(target, "tls", t, 15.0, False, Failure.GENERIC_TIMEOUT_ERROR, Stage.CONNECT)


def plan(
    targets: int, start: float, end: float, rng: random.Random
) -> tuple[dict[int, list[tuple[float, float, str | None]]], list[tuple[float, float]]]:
    blocks: dict[int, list[tuple[float, float, str | None]]] = {}
    day0 = datetime.fromtimestamp(start, ALMATY).replace(hour=0, minute=0, second=0, microsecond=0)
    days = int((end - start) / 86400) + 2
    for i in range(min(50, targets)):
        blocks[i] = [
            (
                (day0 + timedelta(days=d, hours=19)).timestamp(),
                (day0 + timedelta(days=d, hours=23)).timestamp(),
                "tls_interference",
            )
            for d in range(days)
        ]
    for i in range(50, min(60, targets)):
        s = start + 5 * 86400
        blocks[i] = [(s, s + 10 * 86400, "tls_interception")]
    for i in range(60, min(80, targets)):
        spans = []
        t = start + rng.uniform(0, 3 * 86400)
        while t < end:
            spans.append((t, t + rng.uniform(3600, 6 * 3600), None))
            t += rng.uniform(2 * 86400, 4 * 86400)
        blocks[i] = spans
    shutdowns = [
        (start + 12 * 86400, start + 12 * 86400 + 4 * 3600),
        (start + 20 * 86400, start + 22 * 86400),
    ]
    return blocks, shutdowns


def write(state: Path, targets: int, days: int) -> None:
    rng = random.Random(11)
    end = time.time()
    start = end - days * 86400
    blocks, shutdowns = plan(targets, start, end, rng)
    conn = open_db(state / DB_NAME)
    conn.execute("PRAGMA synchronous=OFF")  # bulk load only; the daemon writes with FULL
    rows: list[tuple[Any, ...]] = []
    decisions: list[tuple[str, tuple[Any, ...]]] = []

    def flush() -> None:
        conn.execute("BEGIN")
        conn.executemany(INSERT, rows)
        for sql, values in decisions:
            conn.execute(sql, values)
        conn.execute("COMMIT")
        rows.clear()
        decisions.clear()

    def down(t: float) -> bool:
        return any(a <= t < b for a, b in shutdowns)

    vantage = "unknown"
    t = start
    while t < end:
        cut = down(t)
        for ctl, role, ok in (("egov", "domestic", True), ("wiki", "international", not cut)):
            result = _ok(ctl, t, rng) if ok else _bad(ctl, t, None)
            rows.append(
                journal._row_values(
                    JournalRow(result, "controls", f"{role}_control", "reachable" if ok else "unknown", None)
                )
            )
        state_now = "international_shutdown" if cut else "online"
        if state_now != vantage:
            change = VantageChange(
                t + 0.5,
                state_now,
                vantage,
                "bench",
                (
                    ControlReading("egov", "domestic", t, True),
                    ControlReading("wiki", "international", t, not cut),
                ),
            )
            decisions.append((journal.VANTAGE_INSERT, vantage_values(change)))
            vantage = state_now
        t += CONTROL_STEP
        if len(rows) > 50_000:
            flush()
    flush()
    for i in range(targets):
        target, grp = name(i), group(i)
        offset = rng.uniform(0, STEP)
        verdict: tuple[str, str | None] = ("unknown", None)
        bad_run = 0
        t = start + offset
        while t < end:
            span = next((s for s in blocks.get(i, []) if s[0] <= t < s[1]), None)
            if down(t):
                result = _bad(target, t, None)
                bad_run += 1
                new = ("unknown", None) if bad_run >= 2 else verdict
            elif span is None:
                result, bad_run, new = _ok(target, t, rng), 0, ("reachable", None)
            else:
                result = _bad(target, t, span[2])
                bad_run += 1
                new = (
                    (("blocked", span[2]) if span[2] else ("unreachable", None)) if bad_run >= 2 else verdict
                )
            rows.append(journal._row_values(JournalRow(result, grp, "target", new[0], new[1])))
            if new != verdict:
                change = VerdictChange(
                    t,
                    target,
                    "tls",
                    grp,
                    "target",
                    new[0],
                    new[1],
                    verdict[0],
                    verdict[1],
                    result.failure.value if result.failure else None,
                    result.stage.value if result.stage else None,
                    result.evidence.value if result.evidence else None,
                    dict(result.facts),
                )
                decisions.append((journal.VERDICT_INSERT, verdict_values(change)))
                verdict = new
            t += STEP * rng.uniform(0.9, 1.1)
        if len(rows) > 50_000:
            flush()
    flush()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


SEED = """
import asyncio, sys, time
from pathlib import Path
from reachwatch.config.load import load_config
from reachwatch.incident_live import LiveIncidents
live = LiveIncidents(Path(sys.argv[1]), load_config(Path(sys.argv[2])).config)
asyncio.run(live.seed())
began = time.process_time()
live._rebuild()  # what the daemon does at most once a second after a change: roll-ups, patterns, snapshot
print(f"{(time.process_time() - began) * 1000:.0f} {len(live.arranged.incidents)}")
"""

FEED = """
import sys, time
from pathlib import Path
from reachwatch.config.load import load_config
from reachwatch.incident_live import LiveIncidents
from reachwatch.journal import JournalRow
from reachwatch.model import ProbeResult
live = LiveIncidents(Path(sys.argv[1]), load_config(Path(sys.argv[2])).config)
from reachwatch.failures import Failure
def row(i):
    ok = i % 7 != 0
    result = ProbeResult(f"target-{i % 500:04d}", "tls", 1e9 + i, 0.1, ok,
                         None if ok else Failure.CONNECTION_RESET, facts={"tls_version": "TLSv1.3"})
    return JournalRow(result, "web-0", "target", "reachable" if ok else "unreachable", None)
rows = [row(i) for i in range(100_000)]
async def feed():  # on an event loop, as in the daemon: roll-ups and patterns rebuilt at most once a second
    began = time.process_time()
    for r in rows:
        live.attempt(r)
    return (time.process_time() - began) / len(rows) * 1e6
import asyncio
print(f"{asyncio.run(feed()):.1f}")
"""


def measure(argv: list[str], module: bool = True) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds and peak RSS (MB) of one process (``module=False``: a ``python -c``)."""
    began = time.perf_counter()
    command = [sys.executable, "-m", "reachwatch", *argv] if module else [sys.executable, "-c", *argv]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"reachwatch {' '.join(argv)} exited {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=500)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/rw-bench-incidents"))
    args = parser.parse_args()
    state = args.dir
    db = state / DB_NAME
    config = state / "bench.yaml"
    if not db.exists():
        state.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        write(state, args.targets, args.days)
        print(f"wrote the journal in {time.perf_counter() - began:.0f} s")
    config.write_text(config_text(args.targets))
    config.chmod(0o600)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    (results,) = conn.execute("SELECT COUNT(*) FROM results").fetchone()
    (targets,) = conn.execute("SELECT COUNT(DISTINCT target) FROM results WHERE role = 'target'").fetchone()
    (changes,) = conn.execute("SELECT COUNT(*) FROM verdict_changes").fetchone()
    conn.close()
    size = db.stat().st_size
    figures: dict[str, Any] = {
        "results_rows": results,
        "verdict_changes": changes,
        "journal_mb": round(size / 2**20, 1),
        "bytes_per_target_day": round(size / (targets * args.days)),
        "bytes_per_row": round(size / results),
    }
    common = ["--state-dir", str(state), "--config", str(config), "--since", f"{args.days}d"]
    runs = {
        "incidents": ["incidents", *common],
        "incidents --json": ["incidents", *common, "--json"],
        "report html": ["report", *common, "--format", "html", "--output", str(state / "r.html")],
        "report md": ["report", *common, "--format", "md", "--output", str(state / "r.md")],
        "report json": ["report", *common, "--format", "json", "--output", str(state / "r.json")],
    }
    for label, argv in runs.items():
        wall, cpu, rss = measure(argv)
        figures[label] = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_mb": round(rss)}
        print(f"{label:18} {wall:7.1f} s wall {cpu:7.1f} s CPU {rss:6.0f} MB peak RSS", flush=True)
    wall, cpu, rss = measure([SEED, str(state), str(config)], module=False)
    rebuild = subprocess.run(
        [sys.executable, "-c", SEED, str(state), str(config)], capture_output=True, text=True, check=True
    )
    rebuild_ms, live_incidents = rebuild.stdout.split()
    figures["live view: one rebuild (ms CPU), incidents in it"] = [float(rebuild_ms), int(live_incidents)]
    seed = {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "peak_rss_mb": round(rss)}
    figures["daemon start: live view seed (incidents.window 7d)"] = seed
    print(f"{'live seed (7d)':18} {wall:7.1f} s wall {cpu:7.1f} s CPU {rss:6.0f} MB peak RSS", flush=True)
    feed = subprocess.run(
        [sys.executable, "-c", FEED, str(state), str(config)], capture_output=True, text=True, check=True
    )
    figures["live view: CPU per attempt fed (us)"] = float(feed.stdout.strip())
    doc = json.loads((state / "r.json").read_text())
    figures["incidents_listed"] = doc["summary"]["incidents"]
    figures["patterns"] = doc["summary"]["patterns"]
    figures["html_mb"] = round((state / "r.html").stat().st_size / 2**20, 1)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
