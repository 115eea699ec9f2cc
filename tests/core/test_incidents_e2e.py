"""End to end: the real daemon in a network namespace, a real reference vantage abroad, a scripted
censor on the router that records when it acts, and the incidents ``reachwatch incidents`` derives.

One run (real clock, 1 s intervals): a block of two targets that starts and stops, with the in-country
daemon killed (-9) and restarted in the middle of it; then a two-minute international shutdown, with
another restart inside; then an offline period. A second lab runs at the same time on a compressed clock
(one real second is one hour, ``fakeclock.py``): the same two targets blocked every evening 19:00-22:00
Almaty time on three days.

Proves: every incident's start and end lie within one probe interval of the censor's recorded change
(start: the first failed attempt; end: the first good one); a restart neither splits nor loses an
incident; the block is ``tcp_reset`` relying on the reference's observation; the shutdown is one
vantage incident with its phases; the evenings are one recurring pattern with its local schedule; the
API serves what the CLI derives; the JSON report of the run validates against docs/report.schema.json.

What "one probe interval" means here: attempts start ``interval`` (+/- jitter) after the previous one
ended, and an attempt during a drop lasts its timeout; so consecutive attempt starts lie at most
``interval * (1 + jitter) + timeout`` apart, and the first attempt after a change starts within that.
"""

from __future__ import annotations

import io
import json
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest

from reachwatch.cli import main
from tests.core.incidentlab import TARGETS, WEB_PORT, IncidentLab, wait
from tests.netlab import Lab

pytestmark = [pytest.mark.root, pytest.mark.slow]

INTERVAL = 1.0
SLACK = 0.5  # the censor's "done" and the daemon's clock read in different processes
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "report.schema.json"
ALMATY = ZoneInfo("Asia/Almaty")
SCALE = 3600.0  # the compressed clock: a real second is an hour


@dataclass
class Run:
    lab: IncidentLab
    times: dict[str, float] = field(default_factory=dict)

    @property
    def step(self) -> float:
        """The longest gap between two attempt starts (module docstring)."""
        return self.lab.interval * 1.1 + self.lab.timeout + SLACK


def incidents(lab: IncidentLab, since: float, until: float, *extra: str) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["incidents", "--state-dir", str(lab.state), "--config", str(lab.config), "--json"]
    code = main([*argv, "--since", repr(since), "--until", repr(until), *extra], out, err)
    assert code == 0, err.getvalue()
    doc: dict[str, Any] = json.loads(out.getvalue())
    return doc


def _evenings(lab: IncidentLab, times: dict[str, float]) -> None:
    """Three evenings of blocking, 19:00-22:00 local, on the lab's compressed clock."""
    soon = datetime.fromtimestamp(lab.now() + 3600, ALMATY)  # an hour of reachable attempts before
    first = soon.replace(hour=19, minute=0, second=0, microsecond=0)
    if first < soon:
        first += timedelta(days=1)
    for day in range(3):
        evening = first.timestamp() + day * 86400
        lab.sleep_until(evening)
        times[f"block{day}"] = lab.block()
        lab.sleep_until(evening + 3 * 3600)
        times[f"unblock{day}"] = lab.unblock()
    lab.sleep_until(first.timestamp() + 2 * 86400 + 4 * 3600)  # the last evening's end confirmed
    (lab.dir / "censor-times.json").write_text(json.dumps(times))


@pytest.fixture(scope="module")
def evenings(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Run, threading.Thread, list[BaseException]]]:
    """The compressed-clock lab, run in a thread while the real-clock run goes on (both mostly wait)."""
    workdir = tmp_path_factory.mktemp("evenings")
    noon = datetime(2022, 1, 10, 12, 0, tzinfo=ALMATY).timestamp()  # startup takes a few fake hours
    lab = Lab("eve")
    lab.build()
    run = Run(IncidentLab(lab, workdir, interval=0.2, clock=(time.time() + 1.0, noon, SCALE)))
    errors: list[BaseException] = []

    def scenario() -> None:
        try:
            run.lab.start()
            _evenings(run.lab, run.times)
        except BaseException as exc:  # reported by the test that joins
            errors.append(exc)

    thread = threading.Thread(target=scenario, name="evenings", daemon=True)
    thread.start()
    try:
        yield run, thread, errors
    finally:
        thread.join(timeout=300)
        lab.close()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, evenings: Any) -> Iterator[Run]:
    """Block (with a kill -9 and restart inside), a two-minute international shutdown (another restart
    inside), an offline period; the censor's times recorded."""
    with Lab("inc") as lab:
        r = Run(IncidentLab(lab, tmp_path_factory.mktemp("incidents"), interval=INTERVAL))
        r.lab.start()
        t = r.times
        t["begin"] = r.lab.now()
        t["block"] = r.lab.block()
        wait(lambda: set(r.lab.verdicts()[n] for n in TARGETS) == {"blocked"}, 20, "blocked")
        time.sleep(2)
        r.lab.kill_daemon()
        t["killed"] = r.lab.now()
        time.sleep(2)
        r.lab.run_daemon()
        time.sleep(4)
        t["unblock"] = r.lab.unblock()
        wait(lambda: set(r.lab.verdicts()[n] for n in TARGETS) == {"reachable"}, 20, "reachable again")
        time.sleep(2)
        t["shutdown"] = r.lab.shutdown()
        time.sleep(60)
        r.lab.kill_daemon()
        r.lab.run_daemon()
        time.sleep(max(0.0, t["shutdown"] + 120 - r.lab.now()))
        t["restore"] = r.lab.online()
        wait(lambda: r.lab.verdicts().get("wiki") == "reachable", 20, "online again")
        time.sleep(3)
        t["offline"] = r.lab.offline()
        r.lab.shutdown()
        time.sleep(15)
        t["back"] = r.lab.online()
        wait(lambda: r.lab.verdicts().get("egov") == r.lab.verdicts().get("wiki") == "reachable", 20, "back")
        time.sleep(3)
        t["end"] = r.lab.now()
        (r.lab.dir / "censor-times.json").write_text(json.dumps(t))  # for a look after a failure
        yield r


def _within(value: float, expected: float, step: float) -> bool:
    return expected - step <= value <= expected + step


def test_a_block_that_starts_and_stops_is_one_incident_per_target_within_one_interval(run: Run) -> None:
    t = run.times
    doc = incidents(run.lab, t["begin"], t["shutdown"], "--scope", "social-a")
    by_scope = {(i["scope_type"], i["scope"]): i for i in doc["incidents"]}
    a = by_scope[("target", "social-a")]
    assert _within(a["start"]["at"], t["block"], run.step), (a["start"], t["block"])
    assert _within(a["end"]["at"], t["unblock"], run.step), (a["end"], t["unblock"])
    assert a["start"]["after"] < t["block"] + SLACK < a["start"]["at"] + run.step
    assert (a["technique"], a["verdicts"]) == ("tcp_reset", ["blocked"])
    # blocked because the reference abroad reached the same target at the same time: that is journaled
    change = next(c for c in a["verdict_changes"] if c["verdict"] == "blocked")
    assert change["reference"]["reference"] == "abroad" and change["reference"]["success"] is True
    # the two targets went together: one group incident holds both
    group = by_scope[("group", "social")]
    assert sorted(group["targets"]) == sorted(TARGETS)


def test_a_restart_in_the_middle_neither_splits_nor_loses_the_incident(run: Run) -> None:
    t = run.times
    doc = incidents(run.lab, t["begin"], t["shutdown"], "--scope", "social-b")
    (b,) = [i for i in doc["incidents"] if i["scope_type"] == "target"]
    assert b["start"]["at"] < t["killed"] < b["end"]["at"]
    # the attempts before the kill and after the restart both count (about 4 s, 2 s down, 4 s)
    assert b["attempts"] >= 6


def test_a_two_minute_international_shutdown_is_one_vantage_incident_within_one_interval(run: Run) -> None:
    t = run.times
    doc = incidents(run.lab, t["shutdown"] - 1, t["offline"], "--scope", "kz-almaty-1")
    (shutdown,) = doc["incidents"]
    assert shutdown["scope_type"] == "vantage" and shutdown["technique"] == "international_shutdown"
    assert _within(shutdown["start"]["at"], t["shutdown"], run.step), (shutdown["start"], t["shutdown"])
    assert _within(shutdown["end"]["at"], t["restore"], run.step), (shutdown["end"], t["restore"])
    assert 120 - 2 * run.step <= shutdown["duration_s"] <= 120 + 2 * run.step
    states = [p["state"] for p in shutdown["phases"]]
    assert states[0] == "international_shutdown" and states[-1] == "online"
    assert "unknown" in states  # the restart inside: the daemon starts unknown, the incident goes on
    # no target was called blocked while the vantage was cut off: no target incident began inside
    targets = incidents(run.lab, t["shutdown"] + run.step, t["restore"], "--scope", "social")["incidents"]
    assert [i for i in targets if i["start"]["at"] > t["shutdown"] + run.step] == []


def test_an_offline_period_is_a_vantage_incident_within_one_interval(run: Run) -> None:
    t = run.times
    doc = incidents(run.lab, t["offline"] - 1, t["end"], "--scope", "kz-almaty-1")
    (offline,) = doc["incidents"]
    assert "offline" in offline["verdicts"]
    assert _within(offline["start"]["at"], t["offline"], run.step), (offline["start"], t["offline"])
    assert _within(offline["end"]["at"], t["back"], run.step), (offline["end"], t["back"])


def test_the_api_serves_what_the_cli_derives_and_the_report_validates(run: Run, tmp_path: Path) -> None:
    t = run.times
    code = (
        "import sys, urllib.request\n"
        "with urllib.request.urlopen(sys.argv[1], timeout=10) as r: sys.stdout.write(r.read().decode())\n"
    )
    url = f"http://127.0.0.1:{WEB_PORT}/api/v1/incidents?since={t['begin']!r}&until={t['end']!r}"
    api = json.loads(run.lab.lab.client.run([sys.executable, "-c", code, url]).stdout)
    cli = incidents(run.lab, t["begin"], t["end"])
    assert [i["id"] for i in api["incidents"]] == [i["id"] for i in cli["incidents"]]
    out = tmp_path / "run.json"
    argv = ["report", "--state-dir", str(run.lab.state), "--config", str(run.lab.config)]
    argv += ["--since", repr(t["begin"]), "--until", repr(t["end"]), "--format", "json", "--output", str(out)]
    assert main(argv, io.StringIO(), io.StringIO()) == 0
    report = json.loads(out.read_text())
    jsonschema.validate(report, json.loads(SCHEMA.read_text()))
    assert report["summary"]["shutdowns"] == 2 and report["summary"]["blocked"] >= 1


def test_evening_blocking_on_three_days_is_one_pattern_with_its_local_schedule(evenings: Any) -> None:
    run, thread, errors = evenings
    thread.join(timeout=240)
    assert not thread.is_alive(), "the evening scenario did not finish"
    assert not errors, errors
    lab, t = run.lab, run.times
    doc = incidents(lab, t["block0"] - 3600, t["unblock2"] + 3600)
    (pattern,) = doc["patterns"]
    assert pattern["scope_type"] == "group" and pattern["scope"] == "social"
    assert len(pattern["incidents"]) == 3 and len(pattern["days"]) == 3
    sched = pattern["schedule"]
    step = run.step * SCALE  # one probe interval, in the lab's fake seconds
    for key, hour in (("start_local", 19), ("end_local", 22)):
        hh, mm = (int(x) for x in sched[key].split(":"))
        assert abs((hh * 60 + mm) - hour * 60) <= step / 60, sched
    assert sched["timezone"] == "Asia/Almaty"
    listed = {i["id"]: i for i in doc["incidents"]}
    for day in range(3):
        inc = listed[pattern["incidents"][day]]
        assert _within(inc["start"]["at"], t[f"block{day}"], step)
        assert _within(inc["end"]["at"], t[f"unblock{day}"], step)
