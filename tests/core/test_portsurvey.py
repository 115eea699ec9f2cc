"""What the port surveys found, read back for the status page, the metrics, the export and the report:
always bounded by the configured ports, and the sentence an operator needs during a shutdown."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from reachwatch import journal
from reachwatch.config.load import parse_config
from reachwatch.config.targets.port_survey import PortSurveyTarget
from reachwatch.exposition import encode
from reachwatch.failures import Failure, Stage, VantageState
from reachwatch.incidents import Bound, Incident
from reachwatch.journal import Journal, JournalRow
from reachwatch.journal_events import ControlReading, VantageChange
from reachwatch.metrics import DaemonStatus, build_registry
from reachwatch.model import ProbeResult
from reachwatch.portsurvey import (
    PortsSeen,
    configured_labels,
    incident_ports,
    port_results,
    ports_reached,
    reached_sentence,
    status_section,
    surveys_between,
)
from reachwatch.report import build
from reachwatch.state import StateStore

ALMATY = timezone(timedelta(hours=6))

TARGET = PortSurveyTarget.model_validate(
    {
        "name": "ports-abroad",
        "kind": "port_survey",
        "host": "canary.example.org",
        "secret_env": "S",
        "tcp_ports": [179, 443],
        "udp_ports": [3785],
        "icmp": True,
    }
)


def survey(at: float, open_: list[str], filtered: list[str], untested: tuple[str, ...] = ()) -> ProbeResult:
    facts = {
        "ports_open": open_,
        "ports_closed": [],
        "ports_filtered": filtered,
        "ports_untested": list(untested),
        "ports_redirected": [],
        "port_failures": [f"{label}:connect:generic_timeout_error" for label in filtered],
    }
    ok = bool(open_)
    return ProbeResult(
        target=TARGET.name,
        kind="port_survey",
        started_at=at,
        duration_s=3.0,
        success=ok,
        failure=None if ok else Failure.GENERIC_TIMEOUT_ERROR,
        stage=None if ok else Stage.CONNECT,
        facts=facts,
    )


def test_a_survey_reads_back_port_by_port_and_only_for_configured_ports() -> None:
    result = survey(1.0, ["179/tcp", "3785/udp", "22/tcp", "bogus"], ["443/tcp"], ("icmp",))
    ports = port_results(configured_labels(TARGET), result.facts)
    assert [(p.label, p.state, p.failure, p.stage) for p in ports] == [
        ("179/tcp", "open", None, None),
        ("443/tcp", "filtered", "generic_timeout_error", "connect"),
        ("3785/udp", "open", None, None),
        ("icmp", "untested", None, None),
    ]  # 22/tcp and "bogus" are not configured: never a series, never a row


def test_the_sentence_names_the_ports_that_still_reached_abroad() -> None:
    shutdown = VantageState.INTERNATIONAL_SHUTDOWN.value
    assert (
        reached_sentence(shutdown, ["179/tcp", "3785/udp"], 33)
        == "During this shutdown, 179/tcp and 3785/udp still reached abroad."
    )
    assert (
        reached_sentence(shutdown, ["22/tcp", "179/tcp", "3785/udp"], 33)
        == "During this shutdown, 22/tcp, 179/tcp and 3785/udp still reached abroad."
    )
    assert (
        reached_sentence(shutdown, [], 33)
        == "During this shutdown, none of the 33 surveyed ports reached abroad."
    )
    assert (
        reached_sentence("offline", [], 4)
        == "During this outage, none of the 4 surveyed ports reached abroad."
    )
    assert reached_sentence("online", ["179/tcp"], 4) == "1 of 4 surveyed ports reach the canary abroad."


def test_the_status_section_keeps_the_ports_seen_open_since_the_shutdown_began() -> None:
    store = StateStore()
    state = store.ensure(TARGET, None)
    seen = PortsSeen()
    store.set_vantage(VantageState.ONLINE)
    state.record(before := survey(time.time(), ["179/tcp", "443/tcp", "3785/udp"], []))
    seen.observe(store, TARGET, before)
    store.set_vantage(VantageState.INTERNATIONAL_SHUTDOWN)
    t0 = time.time()
    for at, open_ in ((t0 + 1, ["179/tcp"]), (t0 + 2, ["3785/udp"]), (t0 + 3, [])):
        result = survey(
            at, open_, [label for label in ("179/tcp", "443/tcp", "3785/udp") if label not in open_]
        )
        state.record(result)
        seen.observe(store, TARGET, result)
    doc = status_section(store, seen)
    assert doc is not None
    assert doc["vantage_state"] == "international_shutdown"
    assert doc["sentence"] == "During this shutdown, 179/tcp and 3785/udp still reached abroad."
    (one,) = doc["surveys"]
    assert one["counts"] == {"open": 0, "closed": 0, "filtered": 3, "untested": 0}  # the last survey
    assert one["open_in_state"] == [
        {"label": "179/tcp", "first": t0 + 1, "last": t0 + 1},
        {"label": "3785/udp", "first": t0 + 2, "last": t0 + 2},
    ]  # 443/tcp was open only before the shutdown
    assert status_section(StateStore()) is None  # no surveys, no section


def test_port_open_is_exported_for_configured_ports_and_absent_while_untested() -> None:
    store = StateStore()
    store.ensure(TARGET, None).record(
        survey(time.time(), ["179/tcp", "22/tcp"], ["443/tcp", "3785/udp"], ("icmp",))
    )
    text = encode(build_registry(store, DaemonStatus()), "")[0].decode()
    (family,) = (f for f in text_string_to_metric_families(text) if f.name == "reachwatch_port_open")
    got = {(s.labels["proto"], s.labels["port"]): s.value for s in family.samples}
    assert got == {("tcp", "179"): 1.0, ("tcp", "443"): 0.0, ("udp", "3785"): 0.0}
    assert {s.labels["target"] for s in family.samples} == {"ports-abroad"}


def test_the_journal_tells_which_ports_reached_abroad_during_a_shutdown(tmp_path: Path) -> None:
    t0 = time.time() - 3600
    j = Journal(tmp_path, retention=86400)
    plan = [
        (t0, ["179/tcp", "443/tcp", "3785/udp"]),  # before the shutdown
        (t0 + 600, ["179/tcp"]),
        (t0 + 900, ["179/tcp", "3785/udp"]),
        (t0 + 1200, []),
        (t0 + 2400, ["179/tcp", "443/tcp", "3785/udp"]),  # after
    ]
    labels = ["179/tcp", "443/tcp", "3785/udp"]
    for at, open_ in plan:
        result = survey(at, open_, [label for label in labels if label not in open_], ("icmp",))
        j.append(JournalRow(result=result, group="default", role="target", verdict="unknown", technique=None))
    assert j.flush(timeout=10)
    j.close()
    conn = journal.open_reader(tmp_path)
    try:
        during = surveys_between(conn, t0 + 300, t0 + 1800)
        assert [s.started_at for s in during] == [t0 + 600, t0 + 900, t0 + 1200]
        tallies = ports_reached(during)
        assert [(t.label, t.open, t.tried, t.first_open, t.last_open) for t in tallies] == [
            ("179/tcp", 2, 3, t0 + 600, t0 + 900),
            ("3785/udp", 1, 3, t0 + 900, t0 + 900),
            ("443/tcp", 0, 3, None, None),
        ]
        shutdown = Incident(
            id="inc-1",
            scope_type="vantage",
            scope="kz-1",
            start=Bound(t0 + 500, t0 + 600),
            end=Bound(t0 + 1500, t0 + 1800),
            last_seen=t0 + 1500,
        )
        shutdown.phases = [
            VantageChange(t0 + 600, "international_shutdown", "online", "every international control failed")
        ]
        section = incident_ports(conn, shutdown)
        blocked_target = Incident(
            id="inc-2", scope_type="target", scope="x", start=Bound(None, t0), end=None, last_seen=t0
        )
        assert incident_ports(conn, blocked_target) is None
    finally:
        conn.close()
    assert section is not None
    assert section["id"] == "ports"
    assert section["paragraphs"] == [
        "During this shutdown, 179/tcp and 3785/udp still reached abroad.",
        "3 port surveys ran in this period.",
    ]
    assert section["table"]["rows"] == [
        ["179/tcp", "yes", "2 of 3", f"{t0 + 600:.0f}", f"{t0 + 900:.0f}"],
        ["3785/udp", "yes", "1 of 3", f"{t0 + 900:.0f}", f"{t0 + 900:.0f}"],
        ["443/tcp", "no", "0 of 3", "-", "-"],
    ]
    exported = "".join(journal.export(tmp_path, t0 - 1, t0 + 3600, "openmetrics"))
    assert 'reachwatch_port_open{group="default",kind="port_survey",port="179",proto="tcp",' in exported
    assert 'port="0",proto="icmp"' not in exported  # untested is not a sample


def test_a_reports_shutdown_incident_names_the_ports_that_still_reached_abroad(tmp_path: Path) -> None:
    """Through the report's per-incident hook (report_sections.INCIDENT_SECTIONS): a journal with an
    international shutdown from 00:10 to 00:30 and port surveys before, during and after it."""
    t0 = datetime(2022, 1, 5, 17, 0, tzinfo=ALMATY).timestamp()
    j = Journal(tmp_path, retention=10 * 365 * 86400)
    vantage = "online"
    for minute in range(60):
        t = t0 + 60 * minute
        shutdown = 10 <= minute < 30
        for name, role, ok in (("egov", "domestic", True), ("wiki", "international", not shutdown)):
            result = ProbeResult(name, "https", t, 0.3, ok, None if ok else Failure.GENERIC_TIMEOUT_ERROR,
                                 None if ok else Stage.CONNECT)  # fmt: skip
            j.append(
                JournalRow(result, "controls", f"{role}_control", "reachable" if ok else "unknown", None)
            )
        state = "international_shutdown" if shutdown else "online"
        if state != vantage:
            failed = ("generic_timeout_error", "connect") if shutdown else (None, None)
            controls = (
                ControlReading("egov", "domestic", t, True, None, None),
                ControlReading("wiki", "international", t, not shutdown, *failed),
            )
            j.append(VantageChange(t + 0.5, state, vantage, "controls", controls))
            vantage = state
        if minute % 5 == 2:
            open_ = (
                ["179/tcp", "3785/udp"]
                if shutdown and minute < 20
                else ([] if shutdown else ["179/tcp", "443/tcp", "3785/udp"])
            )
            labels = ["179/tcp", "443/tcp", "3785/udp"]
            result = survey(t + 1, open_, [label for label in labels if label not in open_])
            j.append(JournalRow(result, "default", "target", "unknown", None))
    assert j.flush(timeout=10)
    j.close()
    config_text = (
        "vantage: {name: kz-almaty-1, timezone: Asia/Almaty}\n"
        "controls:\n"
        "  domestic: [{name: egov, kind: https, url: 'https://egov.kz/'}]\n"
        "  international: [{name: wiki, kind: https, url: 'https://www.wikipedia.org/'}]\n"
        "targets: [{name: ports-abroad, kind: port_survey, host: canary.example.org, secret_env: S,"
        " tcp_ports: [179, 443], udp_ports: [3785]}]\n"
    )
    config = parse_config(config_text, "kz.yaml", tmp_path).config
    conn = journal.open_reader(tmp_path)
    try:
        doc = build(conn, config, t0, t0 + 3600).doc
    finally:
        conn.close()
    (shutdown,) = (i for i in doc["incidents"] if i["scope_type"] == "vantage")
    (ports,) = (s for s in shutdown["sections"] if s["id"] == "ports")
    assert ports["paragraphs"][0] == "During this shutdown, 179/tcp and 3785/udp still reached abroad."
    rows = {row[0]: row for row in ports["table"]["rows"]}
    assert rows["443/tcp"][1:] == ["no", "0 of 4", "-", "-"]
    assert rows["179/tcp"][1:3] == ["yes", "2 of 4"]
    assert rows["179/tcp"][3] == "2022-01-05 17:12:01 +06"  # the vantage's local time
    assert not [s for i in doc["incidents"] if i["scope_type"] != "vantage" for s in i["sections"]]
