"""Incidents read from a real journal (``incident_store``), shown to readers (``incident_view``, the CLI,
``/api/v1/incidents``) and counted in ``/metrics`` (``incident_live``).

Proves: a period that starts in the middle of an incident still reports its real start; examples carry
the facts of their attempts and verdict changes the reference observation relied on; a shutdown is a
vantage incident bounded by the international controls; a private target (or one the config does not
know) shows no facts or destinations; filters and "open first" hold; the CLI lists, shows and refuses
bad input in one line (exit 2); the daemon serves the same document as the CLI and exports bounded
``reachwatch_incident_open`` series.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from reachwatch.app import Daemon, RunOptions
from reachwatch.cli import main
from reachwatch.config.load import parse_config
from reachwatch.failures import Failure, Stage
from reachwatch.incident_live import LiveIncidents, OpenIncident, QueryError
from reachwatch.incident_store import Period, is_private_in, read
from reachwatch.incident_view import Filters, incidents_document
from reachwatch.journal import Journal, JournalRow
from reachwatch.journal_events import ControlReading, ReferenceObservation, VantageChange, VerdictChange
from reachwatch.metrics import DaemonStatus, build_registry
from reachwatch.model import ProbeResult
from reachwatch.state import StateStore

NOW = time.time()
T0 = NOW - 3 * 3600  # within retention, well in the past
STEP = 60.0
CONFIG = """
vantage: {name: almaty-1, timezone: Asia/Almaty, country: KZ}
controls:
  domestic: [{name: egov, kind: tcp, host: 192.0.2.1, port: 443}]
  international: [{name: wiki, kind: tcp, host: 192.0.2.2, port: 443}]
targets:
  - {name: site, kind: tls, host: 192.0.2.10, group: web}
  - {name: hidden, kind: tls, host: 192.0.2.11, group: web, private: true}
"""


def t(i: float) -> float:
    return T0 + i * STEP


def _result(target: str, kind: str, i: int, ok: bool, **facts: Any) -> ProbeResult:
    return ProbeResult(
        target=target,
        kind=kind,
        started_at=t(i),
        duration_s=0.1,
        success=ok,
        failure=None if ok else Failure.CONNECTION_RESET,
        stage=None if ok else Stage.TLS_HANDSHAKE,
        facts={"seq": i, **facts},
    )


Record = JournalRow | VerdictChange | VantageChange


def records() -> list[Record]:
    """60 minutes in journal order: site blocked (RST, by reference) at 10..19, hidden blocked at 12..14,
    an international shutdown at 30..39 (each decision right after the attempt that made it)."""
    out: list[Record] = []
    reference = ReferenceObservation("abroad", "site", t(10) - 20, t(11), True, destination="192.0.2.10:443")
    for i in range(60):
        shutdown = 30 <= i < 40
        out.append(
            JournalRow(_result("egov", "tcp", i, True), "controls", "domestic_control", "reachable", None)
        )
        wiki = _result("wiki", "tcp", i, not shutdown)
        out.append(
            JournalRow(
                wiki, "controls", "international_control", "unknown" if shutdown else "reachable", None
            )
        )
        if i in (30, 40):
            state, previous = (
                ("international_shutdown", "online") if i == 30 else ("online", "international_shutdown")
            )
            controls = (
                ControlReading("egov", "domestic", t(i), True),
                ControlReading("wiki", "international", t(i), state == "online"),
            )
            out.append(VantageChange(t(i) + 1, state, previous, "r", controls))
        for name, first, last in (("site", 10, 19), ("hidden", 12, 14)):
            bad = first <= i <= last
            verdict = "blocked" if first + 1 <= i <= last else "reachable"  # confirmed one attempt late
            if shutdown:
                verdict = "unknown"
            result = _result(name, "tls", i, not bad and not shutdown, tls_issuer="CN=Evil", ip="192.0.2.10")
            out.append(
                JournalRow(result, "web", "target", verdict, "tcp_reset" if verdict == "blocked" else None)
            )
            if name == "site" and i == 11:
                out.append(
                    VerdictChange(
                        at=t(11),
                        target="site",
                        kind="tls",
                        group="web",
                        role="target",
                        verdict="blocked",
                        technique="tcp_reset",
                        previous_verdict="reachable",
                        previous_technique=None,
                        failure="connection_reset",
                        stage="tls_handshake",
                        facts={"ip": "192.0.2.10"},
                        reference=reference,
                    )
                )
    return out


def write_journal(state: Path, items: list[Record] | None = None) -> None:
    j = Journal(state, retention=86400)
    for item in records() if items is None else items:
        j.append(item)
    j.close()


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("incidents")
    write_journal(path)
    return path


@pytest.fixture(scope="module")
def config() -> Any:
    return parse_config(CONFIG, "c.yaml", Path.cwd()).config


def test_a_period_starting_inside_an_incident_keeps_its_real_start(state: Path, config: Any) -> None:
    arranged = read(state, Period(t(15), NOW), config)
    site = next(i for i in arranged.incidents if i.scope == "site")
    assert (site.start.after, site.start.by) == (t(9), t(10))
    assert site.end is not None and (site.end.after, site.end.by) == (t(19), t(20))
    assert site.technique == "tcp_reset" and site.attempts == 11
    (change,) = site.changes
    assert change.reference is not None and change.reference.observed_at == t(10) - 20
    examples = site.examples["tcp_reset"]
    assert [json.loads(a.facts)["seq"] for a in examples] == [10, 19]  # facts fetched for examples only


def test_a_shutdown_is_a_vantage_incident_bounded_by_the_international_control(
    state: Path, config: Any
) -> None:
    arranged = read(state, Period(T0, NOW), config)
    (shutdown,) = [i for i in arranged.incidents if i.scope_type == "vantage"]
    assert (shutdown.scope, shutdown.verdicts) == ("almaty-1", ["international_shutdown"])
    assert (shutdown.start.after, shutdown.start.by) == (t(29), t(30))
    assert shutdown.end is not None and (shutdown.end.after, shutdown.end.by) == (t(39), t(40))
    # the two blocked targets of group "web" started two minutes apart: rolled up
    (rollup,) = [i for i in arranged.incidents if i.scope_type == "group"]
    assert rollup.targets == ["hidden", "site"]


def test_a_private_or_unknown_target_is_shown_by_name_only(state: Path, config: Any) -> None:
    arranged = read(state, Period(T0, NOW), config)
    doc = incidents_document(
        arranged,
        vantage="almaty-1",
        zone=config.vantage.zone(),
        is_private=is_private_in(config),
        filters=Filters(scope="web"),
    )
    by_scope = {i["scope"]: i for i in doc["incidents"] if i["scope_type"] == "target"}
    assert by_scope["site"]["private"] is False
    assert by_scope["site"]["evidence"][0]["examples"][0]["facts"]["tls_issuer"] == "CN=Evil"
    assert by_scope["site"]["verdict_changes"][0]["reference"]["destination"] == "192.0.2.10:443"
    hidden = json.dumps(by_scope["hidden"])
    assert by_scope["hidden"]["private"] is True and "192.0.2" not in hidden and "CN=Evil" not in hidden
    assert is_private_in(config)("not-in-the-config") is True
    assert by_scope["site"]["start"]["local"].endswith("+06") or by_scope["site"]["start"]["local"].endswith(
        "+05"
    )


def test_filters_and_open_first(state: Path, config: Any) -> None:
    arranged = read(state, Period(T0, NOW), config)
    kwargs: dict[str, Any] = {"vantage": "v", "zone": config.vantage.zone(), "is_private": lambda _n: False}
    everything = incidents_document(arranged, **kwargs)
    assert [(i["scope_type"], i["scope"]) for i in everything["incidents"]] == [
        ("vantage", "almaty-1"),
        ("group", "web"),
    ]
    only = incidents_document(arranged, filters=Filters(technique="international_shutdown"), **kwargs)
    assert [i["scope"] for i in only["incidents"]] == ["almaty-1"]
    assert incidents_document(arranged, filters=Filters(status="open"), **kwargs)["incidents"] == []


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


def test_cli_lists_shows_and_refuses_bad_input_in_one_line(state: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG)
    cfg.chmod(0o600)
    common = ["--state-dir", str(state), "--config", str(cfg), "--since", "4h"]
    code, out, err = _cli("incidents", *common)
    assert code == 0 and err == "", err
    assert "vantage almaty-1" in out and "group web (2 targets)" in out and "Asia/Almaty" in out
    code, out, _ = _cli("incidents", *common, "--json")
    doc = json.loads(out)
    ident = doc["incidents"][1]["id"]
    code, out, _ = _cli("incidents", "show", ident, *common)
    assert code == 0 and "targets: hidden, site" in out and "relied on reference abroad: reached it" in out
    for argv, message in (
        (["incidents", "show", *common], "which incident?"),
        (["incidents", "show", "inc-0000000000", *common], "no incident or pattern 'inc-0000000000'"),
        (["incidents", *common, "--technique", "lasers"], "unknown technique 'lasers'"),
        (["incidents", *common, "--timezone", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (["incidents", "--state-dir", str(tmp_path / "none")], "no journal in"),
    ):
        code, out, err = _cli(*argv)
        assert code == 2 and message in err and err.count("\n") == 1, (argv, err)


async def test_live_view_refuses_bad_queries_and_answers_a_period(state: Path, config: Any) -> None:
    live = LiveIncidents(state, config)
    await live.seed()
    doc = await live.document({})
    assert doc["counts"]["closed"] == 2 and doc["vantage"] == "almaty-1"
    for query in (
        {"since": "yesterday"},
        {"since": "10", "until": "5"},
        {"colour": "red"},
        {"status": "maybe"},
    ):
        with pytest.raises(QueryError):
            await live.document(query)
    old = await live.document({"since": str(T0), "until": str(t(20))})
    assert [i["scope_type"] for i in old["incidents"]] == ["group"]


class _OpenShutdown:
    def open_incidents(self) -> list[Any]:
        return [
            OpenIncident("vantage", "almaty-1", "international_shutdown", 1000.0),
            OpenIncident("group", "web", "tcp_reset", 900.0),
            OpenIncident("group", "web", "tcp_reset", 950.0),
        ]

    def counts(self) -> dict[tuple[str, str], int]:
        return {("vantage", "open"): 1, ("group", "open"): 2}


def test_open_incidents_are_bounded_series_with_their_start() -> None:
    registry = build_registry(StateStore(), DaemonStatus(incidents=_OpenShutdown()))
    text = generate_latest(registry).decode()
    assert 'reachwatch_incident_open{scope="web",scope_type="group",technique="tcp_reset"} 2.0' in text
    assert (
        'reachwatch_incident_open_since_timestamp_seconds{scope="almaty-1",scope_type="vantage",'
        'technique="international_shutdown"} 1000.0' in text
    )
    assert 'reachwatch_incidents{scope_type="group",status="open"} 2.0' in text
    assert 'reachwatch_incidents{scope_type="kind",status="closed"} 0.0' in text


def _listener() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


async def test_the_daemon_serves_incidents_and_metrics_from_its_own_journal(tmp_path: Path) -> None:
    control, site = _listener(), _listener()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "vantage: {name: lab, timezone: Asia/Almaty}\n"
        "scheduler: {min_destination_spacing: 1ms, controls_interval: 200ms}\n"
        "defaults: {interval: 200ms, timeout: 1s, jitter: 0.1}\n"
        "confirmation: {attempts: 1, required: 1, residual_window: 200ms}\n"
        "controls:\n  international:\n"
        f"    - {{name: ctl, kind: tcp, host: 127.0.0.1, port: {control.getsockname()[1]}}}\n"
        f"targets:\n  - {{name: site, kind: tcp, host: 127.0.0.1, port: {site.getsockname()[1]}}}\n"
    )
    cfg.chmod(0o600)
    daemon = Daemon(RunOptions(config_path=cfg, state_dir=tmp_path / "state", listen_address="127.0.0.1:0"))
    await daemon.start()
    assert daemon.web is not None
    base = f"http://127.0.0.1:{daemon.web.port}"

    def get(path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(base + path, timeout=10) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    try:
        await asyncio.sleep(1.0)
        site.close()  # the target's server goes away: an outage without evidence
        for _ in range(100):
            _, body = await asyncio.to_thread(get, "/api/v1/incidents")
            doc = json.loads(body)
            if doc["counts"]["open"]:
                break
            await asyncio.sleep(0.2)
        (incident,) = doc["incidents"]
        assert (incident["scope"], incident["status"], incident["technique"]) == ("site", "open", "none")
        _, metrics = await asyncio.to_thread(get, "/metrics")
        assert 'reachwatch_incident_open{scope="site",scope_type="target",technique="none"} 1.0' in metrics
        status, text = await asyncio.to_thread(get, "/api/v1/incidents?technique=lasers")
        assert (status, text) == (400, "unknown technique 'lasers'\n")
    finally:
        await daemon.shutdown(quiet=True)
        control.close()
        site.close()


async def test_the_live_view_fed_as_results_come_equals_the_journals_derivation(
    state: Path, config: Any, tmp_path: Path
) -> None:
    """The daemon seeds from its journal and is fed the rest: the same incidents as a derivation of the
    whole journal (what ``reachwatch incidents`` and a report show later)."""
    items = records()
    half = len(items) // 2
    write_journal(tmp_path, items[:half])
    live = LiveIncidents(tmp_path, config)
    await live.seed()
    for item in items[half:]:
        if isinstance(item, JournalRow):
            live.attempt(item)
        elif isinstance(item, VerdictChange):
            live.verdict_change(item)
        else:
            live.vantage_change(item)
    fed = (await live.document({}))["incidents"]
    derived = incidents_document(
        read(state, Period(NOW - 7 * 86400, NOW + 1), config),
        vantage="almaty-1",
        zone=config.vantage.zone(),
        is_private=is_private_in(config),
    )["incidents"]
    assert [i["id"] for i in fed] == [i["id"] for i in derived] and len(fed) == 2

    def comparable(doc: dict[str, Any]) -> dict[str, Any]:
        # the live view keeps an example's facts as the daemon had them; the journal's are the same JSON
        return {k: v for k, v in doc.items() if k not in ("member_incidents",)}

    assert [comparable(i) for i in fed] == [comparable(i) for i in derived]
