"""Incidents from journal records (``incidents.py``, ``incident_patterns.py``): tables of attempt
sequences in, incidents out.

A sequence is one letter per attempt, ten minutes apart, for one target:

    G  succeeded, confirmed reachable          g  succeeded, the verdict has not followed yet (blocked)
    b  failed, the verdict has not followed     B  failed, confirmed blocked (tcp_reset)
    U  failed, confirmed unreachable            ?  failed, verdict unknown (vantage cut off, or just
                                                   restarted and not yet confirmed)
"""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from reachwatch.incident_patterns import ArrangeSettings, arrange
from reachwatch.incident_text import fact_order
from reachwatch.incidents import Attempt, Bound, Incident, target_incidents, vantage_incidents
from reachwatch.journal_events import ControlReading, VantageChange, VerdictChange

T0 = 1641340800.0  # 2022-01-05T00:00:00Z
STEP = 600.0
ALMATY = ZoneInfo("Asia/Almaty")  # UTC+6 in 2022 (UTC+5 since March 2024)

_LETTERS = {
    "G": (True, "reachable", None),
    "g": (True, "blocked", "tcp_reset"),
    "b": (False, "reachable", None),
    "B": (False, "blocked", "tcp_reset"),
    "U": (False, "unreachable", None),
    "?": (False, "unknown", None),
}


def attempts(
    seq: str, target: str = "site", *, t0: float = T0, role: str = "target", **kw: str
) -> list[Attempt]:
    out = []
    for i, letter in enumerate(seq):
        success, verdict, technique = _LETTERS[letter]
        out.append(
            Attempt(
                target=target,
                kind=kw.get("kind", "tls"),
                group=kw.get("group", "web"),
                role=role,
                started_at=t0 + i * STEP,
                success=success,
                verdict=verdict,
                technique=technique,
                failure=None if success else "connection_reset",
                stage=None if success else "tls_handshake",
                facts=json.dumps({"seq": i}),
                row_id=i + 1,
            )
        )
    return out


def t(i: float) -> float:
    return T0 + i * STEP


def summary(incident: Incident) -> tuple[object, ...]:
    end = (incident.end.after, incident.end.by) if incident.end is not None else None
    return (
        (incident.start.after, incident.start.by),
        end,
        incident.attempts,
        incident.failed_attempts,
        incident.verdicts,
        incident.technique,
    )


@pytest.mark.parametrize(
    ("seq", "expected"),
    [
        pytest.param(
            "GGbBBBgGG",
            [((t(1), t(2)), (t(5), t(6)), 6, 4, ["blocked"], "tcp_reset")],
            id="a block that starts and stops: bounded by the last good and first bad attempts",
        ),
        pytest.param("GGbBB", [((t(1), t(2)), None, 3, 3, ["blocked"], "tcp_reset")], id="still open"),
        pytest.param(
            "GGbB??BgG",
            [((t(1), t(2)), (t(6), t(7)), 7, 5, ["blocked"], "tcp_reset")],
            id="unknown in the middle (shutdown, restart) neither closes nor splits it",
        ),
        pytest.param(
            "BBgG",
            [((None, t(0)), (t(1), t(2)), 4, 2, ["blocked"], "tcp_reset")],
            id="blocked when the record starts",
        ),
        pytest.param(
            "GbBgGbBgG",
            [
                ((t(0), t(1)), (t(2), t(3)), 4, 2, ["blocked"], "tcp_reset"),
                ((t(4), t(5)), (t(6), t(7)), 4, 2, ["blocked"], "tcp_reset"),
            ],
            id="blocked twice is two incidents",
        ),
        pytest.param(
            "GGUUBBgG",
            [((t(1), t(2)), (t(5), t(6)), 6, 4, ["unreachable", "blocked"], "tcp_reset")],
            id="unreachable, then evidence: one incident with both verdicts",
        ),
        pytest.param(
            "GGUUG", [((t(1), t(2)), (t(3), t(4)), 3, 2, ["unreachable"], "none")], id="no evidence"
        ),
        pytest.param("GGbbGG", [], id="never confirmed: no incident"),
        pytest.param("??BBgBgG", [((None, t(0)), (t(5), t(6)), 8, 5, ["blocked"], "tcp_reset")], id="flaky"),
    ],
)
def test_target_incidents_from_attempt_sequences(seq: str, expected: list[tuple[object, ...]]) -> None:
    assert [summary(i) for i in target_incidents(attempts(seq))] == expected


def test_a_control_has_no_target_incidents() -> None:
    assert target_incidents(attempts("GGBBBG", role="international_control")) == []


def test_evidence_keeps_the_first_and_latest_attempt_per_technique_and_the_changes_inside() -> None:
    seq = attempts("GbBBBBgG")
    change = VerdictChange(
        at=t(2),
        target="site",
        kind="tls",
        group="web",
        role="target",
        verdict="blocked",
        technique="tcp_reset",
        previous_verdict="reachable",
        previous_technique=None,
    )
    outside = VerdictChange(**{**change.__dict__, "at": t(9), "verdict": "reachable"})
    (incident,) = target_incidents(seq, [change, outside])
    doc = incident.to_dict()
    (evidence,) = doc["evidence"]
    assert evidence["technique"] == "tcp_reset"
    # the first bad attempt (before the verdict followed) and the latest
    assert [e["facts"]["seq"] for e in evidence["examples"]] == [1, 5]
    assert doc["verdict_changes"] == [change.to_dict()]
    assert doc["start"] == {"at": t(1), "after": t(0), "uncertainty_s": STEP}
    assert doc["duration_s"] == t(6) - t(1)
    assert doc["id"] == target_incidents(seq)[0].id  # stable: named by scope and first bad attempt


def _change(at: float, state: str, previous: str) -> VantageChange:
    return VantageChange(
        at, state, previous, "r", (ControlReading("wiki", "international", at - 1, state == "online"),)
    )


def controls(seq: str, *, step: float = 60.0) -> list[Attempt]:
    return [
        Attempt("wiki", "http", "controls", "international_control", T0 + i * step, c == "G", None, None)
        for i, c in enumerate(seq)
    ]


def test_a_shutdown_with_phases_is_one_vantage_incident_bounded_by_the_controls() -> None:
    changes = [
        _change(T0 + 1, "online", "unknown"),
        _change(T0 + 361, "international_shutdown", "online"),
        _change(T0 + 481, "offline", "international_shutdown"),
        _change(T0 + 541, "unknown", "offline"),  # a restart in the middle
        _change(T0 + 542, "offline", "unknown"),
        _change(T0 + 601, "online", "offline"),
    ]
    (incident,) = vantage_incidents("almaty-1", changes, controls("GGGGGGBBBBGG"))
    assert (incident.start, incident.end) == (Bound(T0 + 300, T0 + 360), Bound(T0 + 540, T0 + 600))
    assert incident.verdicts == ["international_shutdown", "offline"]
    assert incident.technique == "international_shutdown" and incident.blocked
    assert [p.state for p in incident.phases] == [
        "international_shutdown",
        "offline",
        "unknown",
        "offline",
        "online",
    ]
    assert (incident.attempts, incident.failed_attempts) == (5, 4)


def test_two_shutdowns_are_two_incidents_and_an_open_one_has_no_end() -> None:
    changes = [
        _change(T0 + 61, "offline", "online"),
        _change(T0 + 121, "online", "offline"),
        _change(T0 + 241, "international_shutdown", "online"),
    ]
    first, second = vantage_incidents("v", changes, controls("GBGGBB"))
    assert (first.start.by, first.end) == (T0 + 60, Bound(T0 + 60, T0 + 120))
    assert (second.start.by, second.end, second.open) == (T0 + 240, None, True)


def _evening(
    day: int, start_local: str, hours: float, target: str = "social", group: str = "social"
) -> list[Attempt]:
    """A target blocked from ``start_local`` (Almaty) for ``hours`` on 2022-01-(1+day)."""
    local = datetime.fromisoformat(f"2022-01-{1 + day:02d}T{start_local}:00").replace(tzinfo=ALMATY)
    n = int(hours * 3600 / STEP)
    return attempts("GG" + "B" * n + "GG", target, t0=local.timestamp() - 2 * STEP, group=group)


SETTINGS = ArrangeSettings(timezone=ALMATY, rollup_window=900, min_days=3, tolerance=3600)


def test_evening_blocking_on_several_days_is_one_pattern_with_its_local_schedule() -> None:
    found = []
    for day, start in enumerate(["19:00", "19:10", "18:50", "19:00", "03:00"]):
        found += target_incidents(_evening(day, start, 3))
    arranged = arrange(found, SETTINGS)
    (pattern,) = arranged.patterns
    doc = pattern.to_dict()
    assert doc["schedule"]["start_local"] == "19:00"
    assert doc["schedule"]["end_local"] == "22:00"
    assert doc["schedule"]["timezone"] == "Asia/Almaty"
    assert doc["days"] == ["2022-01-01", "2022-01-02", "2022-01-03", "2022-01-04"]
    assert len(doc["incidents"]) == 4
    night = [i for i in arranged.incidents if i.pattern is None]
    assert len(night) == 1 and datetime.fromtimestamp(night[0].start.by, ALMATY).hour == 3


def test_a_pattern_spans_midnight_and_needs_enough_days() -> None:
    across = []
    for day, start in enumerate(["23:40", "00:20", "23:50"]):
        across += target_incidents(_evening(day, start, 1))
    (pattern,) = arrange(across, SETTINGS).patterns
    assert len(pattern.incidents) == 3
    two_days = target_incidents(_evening(0, "19:00", 2)) + target_incidents(_evening(1, "19:00", 2))
    assert arrange(two_days, SETTINGS).patterns == []


def test_targets_going_down_together_roll_up_per_group_and_per_kind() -> None:
    found = []
    for n, name in enumerate(["br-1", "br-2", "br-3"]):
        found += target_incidents(
            attempts("GG" + "B" * 4 + "GG", name, t0=T0 + n * 60, kind="tor_bridge", group="bridges")
        )
    found += target_incidents(attempts("GGBBBBGG", "br-x", t0=T0 + 120, kind="tor_bridge", group="other"))
    found += target_incidents(attempts("GGBBBBGG", "late", t0=T0 + 5000, kind="tor_bridge", group="bridges"))
    arranged = arrange(found, SETTINGS)
    rollups = {(i.scope_type, i.scope): i for i in arranged.incidents if i.members}
    assert set(rollups) == {("group", "bridges"), ("kind", "tor_bridge")}
    assert rollups[("group", "bridges")].targets == ["br-1", "br-2", "br-3"]
    assert rollups[("kind", "tor_bridge")].targets == ["br-1", "br-2", "br-3", "br-x"]
    group = rollups[("group", "bridges")]
    assert (group.start.by, group.end.by if group.end else None) == (t(2), t(6) + 120)
    listed = {(i.scope_type, i.scope) for i in arranged.top_level()}
    assert listed == {("group", "bridges"), ("kind", "tor_bridge"), ("target", "late")}


def test_a_kind_rollup_with_the_members_of_a_group_rollup_is_left_out() -> None:
    found = []
    for n, name in enumerate(["a", "b"]):
        found += target_incidents(attempts("GBBG", name, t0=T0 + n, kind="openvpn", group="vpn"))
    arranged = arrange(found, SETTINGS)
    assert [(i.scope_type, i.scope) for i in arranged.incidents if i.members] == [("group", "vpn")]


def test_chance_outages_at_similar_hours_are_no_pattern_but_a_weekly_one_is() -> None:
    # three outages around 07:00 within a month, 10 days apart: not regular
    sparse = [i for day in (0, 10, 20) for i in target_incidents(_evening(day, "07:00", 2, "flaky", "flaky"))]
    assert arrange(sparse, SETTINGS).patterns == []
    # every Friday evening for three weeks (2022-01-07, 14, 21): weekly
    fridays = [i for day in (6, 13, 20) for i in target_incidents(_evening(day, "20:00", 2, "news", "news"))]
    (weekly,) = arrange(fridays, SETTINGS).patterns
    assert weekly.schedule()["weekdays"] == ["Fri"]


def test_every_incident_view_lists_the_evidence_facts_first_then_the_rest_alphabetically() -> None:
    """One order for the terminal, Markdown and HTML views (``incident_text.fact_order``)."""
    facts = {"zeta": 1, "status": 403, "alpha": 2, "tls_issuer": "CN=x", "bytes_moved": 5}
    assert fact_order(facts) == ["tls_issuer", "status", "bytes_moved", "alpha", "zeta"]
    assert fact_order({}) == []
