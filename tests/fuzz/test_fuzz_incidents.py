"""Incidents from any sequence of journaled attempts and vantage changes (Hypothesis): the rule's
invariants hold whatever the censor, the daemon's restarts or a journal's gaps did.

For one target: incidents never overlap and come in order; each start lies after its last good attempt
and an end after its last bad one; an open incident is the last one; every attempt confirmed blocked or
unreachable lies inside an incident (up to its closing attempt: a confirmed verdict lags); fed one at a
time (the daemon's live view) gives what the batch gives. For the vantage: the same for shutdowns, and
the input's order does not matter.
"""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from reachwatch.incidents import Attempt, TargetIncidents, target_incidents, vantage_incidents
from reachwatch.journal_events import VantageChange

VERDICTS = ("reachable", "blocked", "unreachable", "unknown")
STATES = ("online", "international_shutdown", "offline", "unknown")

attempt_steps = st.lists(
    st.tuples(
        st.floats(min_value=0.001, max_value=3600.0),  # time since the previous attempt (gaps: restarts)
        st.booleans(),  # success
        st.sampled_from(VERDICTS),
        st.sampled_from((None, "tcp_reset", "tls_interference")),
        st.booleans(),  # local evidence
    ),
    max_size=80,
)


def _attempts(steps: list[tuple[float, bool, str, str | None, bool]]) -> list[Attempt]:
    t = 1.6e9
    out = []
    for gap, success, verdict, technique, evidence in steps:
        t += gap
        out.append(
            Attempt(
                "t",
                "tcp",
                "g",
                "target",
                t,
                success,
                verdict,
                technique if verdict == "blocked" else None,
                None if success else "connection_reset",
                None if success else "connect",
                "tcp_reset" if evidence else None,
            )
        )
    return out


@given(attempt_steps)
def test_target_incidents_are_ordered_bounded_and_cover_every_bad_verdict(steps: list[tuple]) -> None:
    attempts = _attempts(steps)
    incidents = target_incidents(attempts)
    for before, after in pairwise(incidents):
        assert before.end is not None and before.end.by <= after.start.by
    for inc in incidents:
        assert inc.start.after is None or inc.start.after < inc.start.by
        if inc.end is not None:
            assert inc.start.by <= inc.end.by and (inc.end.after is None or inc.end.after < inc.end.by)
        assert inc.attempts >= inc.failed_attempts >= 0
    assert all(i.end is not None for i in incidents[:-1])
    for a in attempts:  # a confirmed verdict may lag the attempts: up to the closing attempt
        if a.verdict in ("blocked", "unreachable"):
            assert any(i.start.by <= a.started_at <= i.last_seen for i in incidents), a
    live = TargetIncidents()
    for a in attempts:
        live.feed(a)
    assert [i.to_dict() for i in live.incidents] == [i.to_dict() for i in incidents]


@given(
    st.lists(st.tuples(st.floats(0.001, 600.0), st.sampled_from(STATES), st.booleans()), max_size=40),
    st.randoms(use_true_random=False),
)
def test_shutdowns_are_ordered_and_the_input_order_does_not_matter(
    steps: list[tuple[float, str, bool]], rng: object
) -> None:
    t, state = 1.6e9, "unknown"
    changes, controls = [], []
    for gap, new, ok in steps:
        t += gap
        controls.append(Attempt("wiki", "http", "c", "international_control", t, ok, None, None))
        if new != state:
            changes.append(VantageChange(t + 0.5, new, state, "r"))
            state = new
    incidents = vantage_incidents("v", changes, controls)
    for before, after in pairwise(incidents):
        assert before.end is not None and before.end.by <= after.start.by + 1
    assert all(i.end is not None for i in incidents[:-1])
    shuffled_changes, shuffled_controls = list(changes), list(controls)
    rng.shuffle(shuffled_changes)  # type: ignore[attr-defined]
    rng.shuffle(shuffled_controls)  # type: ignore[attr-defined]
    again = vantage_incidents("v", shuffled_changes, shuffled_controls)
    assert [i.to_dict() for i in again] == [i.to_dict() for i in incidents]
