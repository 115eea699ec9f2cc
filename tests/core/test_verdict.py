"""Verdict rules: blocked only with evidence, unknown when the vantage is cut off, k-of-n confirmation."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from reachwatch.config.load import parse_config
from reachwatch.config.schema import ConfirmationConfig
from reachwatch.failures import Failure, Stage, Technique, VantageState, Verdict
from reachwatch.model import FactValue, Observation, ProbeResult
from reachwatch.state import Outcome, StateStore, TargetState
from reachwatch.verdict import (
    confirm,
    judge,
    reference_consensus,
    reference_quorum,
    technique_with_reference,
    update_verdict,
)

F, S, T, V, VS = Failure, Stage, Technique, Verdict, VantageState


def ok() -> ProbeResult:
    return ProbeResult(target="t", kind="tcp", started_at=time.time(), duration_s=0.1, success=True)


def fail(
    failure: Failure,
    stage: Stage | None,
    evidence: Technique | None = None,
    facts: dict[str, FactValue] | None = None,
) -> ProbeResult:
    return ProbeResult(
        target="t",
        kind="tcp",
        started_at=time.time(),
        duration_s=0.1,
        success=False,
        failure=failure,
        stage=stage,
        evidence=evidence,
        facts=dict(facts or {}),
    )


def seen(
    success: bool | None,
    facts: dict[str, FactValue] | None = None,
    *,
    durations: dict[str, float] | None = None,
    at: float | None = None,
    reference: str = "abroad",
) -> Observation | None:
    """A reference's fresh observation of the target (``None`` stays "no reference")."""
    if success is None:
        return None
    return Observation(
        reference=reference,
        target="t",
        observed_at=time.time() if at is None else at,
        success=success,
        failure=None if success else F.GENERIC_TIMEOUT_ERROR,
        stage=None if success else S.CONNECT,
        facts=dict(facts or {}),
        stage_durations=dict(durations or {}),
    )


BLACKHOLE = fail(F.GENERIC_TIMEOUT_ERROR, S.CONNECT)
REFUSED = fail(F.CONNECTION_REFUSED, S.CONNECT)
RESET = fail(F.CONNECTION_RESET, S.CONNECT)
MITM = fail(F.SSL_UNKNOWN_AUTHORITY, S.TLS_HANDSHAKE, T.TLS_INTERCEPTION)


@pytest.mark.parametrize(
    ("result", "role", "vantage", "reference", "expected"),
    [
        # success is success, whatever else is going on
        (ok(), None, VS.ONLINE, None, Outcome(V.REACHABLE)),
        (ok(), None, VS.OFFLINE, False, Outcome(V.REACHABLE)),
        # dead server never blocked: refused or silent with no reference, or the reference fails too
        (REFUSED, None, VS.ONLINE, None, Outcome(V.UNREACHABLE)),
        (REFUSED, None, VS.ONLINE, False, Outcome(V.UNREACHABLE)),
        (BLACKHOLE, None, VS.ONLINE, False, Outcome(V.UNREACHABLE)),
        # the same blackhole without a reference stays unreachable...
        (BLACKHOLE, None, VS.ONLINE, None, Outcome(V.UNREACHABLE)),
        # ...and with a reference that reached it, it is a blackhole
        (BLACKHOLE, None, VS.ONLINE, True, Outcome(V.BLOCKED, T.TCP_BLACKHOLE)),
        (fail(F.HOST_UNREACHABLE, S.CONNECT), None, VS.ONLINE, True, Outcome(V.BLOCKED, T.TCP_BLACKHOLE)),
        # RST at connect (forged RST answers the SYN as "refused") or right after: tcp_reset
        (RESET, None, VS.ONLINE, True, Outcome(V.BLOCKED, T.TCP_RESET)),
        (REFUSED, None, VS.ONLINE, True, Outcome(V.BLOCKED, T.TCP_RESET)),
        (
            fail(F.CONNECTION_RESET, S.PROTOCOL_HANDSHAKE),
            None,
            VS.ONLINE,
            True,
            Outcome(V.BLOCKED, T.TCP_RESET),
        ),
        (fail(F.CONNECTION_RESET, S.HTTP), None, VS.ONLINE, True, Outcome(V.BLOCKED, T.TCP_RESET)),
        # SNI-triggered drop or reset after the ClientHello
        (
            fail(F.GENERIC_TIMEOUT_ERROR, S.TLS_HANDSHAKE),
            None,
            VS.ONLINE,
            True,
            Outcome(V.BLOCKED, T.TLS_INTERFERENCE),
        ),
        (
            fail(F.CONNECTION_RESET, S.TLS_HANDSHAKE),
            None,
            VS.ONLINE,
            True,
            Outcome(V.BLOCKED, T.TLS_INTERFERENCE),
        ),
        (fail(F.EOF_ERROR, S.TLS_HANDSHAKE), None, VS.ONLINE, True, Outcome(V.BLOCKED, T.TLS_INTERFERENCE)),
        (fail(F.GENERIC_TIMEOUT_ERROR, S.TLS_HANDSHAKE), None, VS.ONLINE, None, Outcome(V.UNREACHABLE)),
        # a protocol handshake that dies in silence on a path that connected
        (
            fail(F.GENERIC_TIMEOUT_ERROR, S.PROTOCOL_HANDSHAKE),
            None,
            VS.ONLINE,
            True,
            Outcome(V.BLOCKED, T.PROTOCOL_BLOCKING),
        ),
        (
            fail(F.PROTOCOL_NO_RESPONSE, S.PROTOCOL_HANDSHAKE),
            None,
            VS.ONLINE,
            True,
            Outcome(V.BLOCKED, T.PROTOCOL_BLOCKING),
        ),
        (fail(F.PROTOCOL_NO_RESPONSE, S.PROTOCOL_HANDSHAKE), None, VS.ONLINE, None, Outcome(V.UNREACHABLE)),
        # failures a reference cannot attribute (need local evidence)
        # (a name that does not exist here while the reference reached it: dns_tampering, see below)
        (fail(F.DNS_SERVFAIL_ERROR, S.RESOLVE), None, VS.ONLINE, True, Outcome(V.UNREACHABLE)),
        (fail(F.AUTH_FAILED, S.PROTOCOL_HANDSHAKE), None, VS.ONLINE, True, Outcome(V.UNREACHABLE)),
        (fail(F.INTERNAL_ERROR, S.CONNECT), None, VS.ONLINE, True, Outcome(V.UNREACHABLE)),
        # local evidence needs no reference
        (MITM, None, VS.ONLINE, None, Outcome(V.BLOCKED, T.TLS_INTERCEPTION)),
        (
            fail(F.HTTP_BLOCKPAGE, S.HTTP, T.HTTP_BLOCKPAGE),
            None,
            VS.ONLINE,
            False,
            Outcome(V.BLOCKED, T.HTTP_BLOCKPAGE),
        ),
        (
            fail(F.DNS_BOGON_ERROR, S.RESOLVE, T.DNS_TAMPERING),
            None,
            VS.ONLINE,
            None,
            Outcome(V.BLOCKED, T.DNS_TAMPERING),
        ),
        (
            fail(F.THROUGHPUT_BELOW_THRESHOLD, S.TRANSFER, T.THROTTLED),
            None,
            VS.ONLINE,
            None,
            Outcome(V.BLOCKED, T.THROTTLED),
        ),
        (MITM, None, VS.UNKNOWN, None, Outcome(V.BLOCKED, T.TLS_INTERCEPTION)),
        # a success the probe saw tampered with is blocked too (it worked, throttled to a crawl)
        (
            ProbeResult(target="t", kind="t", started_at=0, duration_s=1, success=True, evidence=T.THROTTLED),
            None,
            VS.ONLINE,
            None,
            Outcome(V.BLOCKED, T.THROTTLED),
        ),
        # a crashed probe's stray evidence is not evidence
        (
            fail(F.INTERNAL_ERROR, S.TLS_HANDSHAKE, T.TLS_INTERCEPTION),
            None,
            VS.ONLINE,
            None,
            Outcome(V.UNREACHABLE),
        ),
        # control-less outage never blocked: without controls a reference cannot rule out our own outage
        (BLACKHOLE, None, VS.UNKNOWN, True, Outcome(V.UNREACHABLE)),
        (RESET, None, VS.UNKNOWN, True, Outcome(V.UNREACHABLE)),
        # vantage offline: nothing is blocked, nothing is known, evidence or reference notwithstanding
        (BLACKHOLE, None, VS.OFFLINE, True, Outcome(V.UNKNOWN)),
        (MITM, None, VS.OFFLINE, None, Outcome(V.UNKNOWN)),
        (REFUSED, "domestic", VS.OFFLINE, None, Outcome(V.UNKNOWN)),
        # international shutdown: international targets and controls unknown, domestic ones judged
        (BLACKHOLE, None, VS.INTERNATIONAL_SHUTDOWN, True, Outcome(V.UNKNOWN)),
        (MITM, None, VS.INTERNATIONAL_SHUTDOWN, None, Outcome(V.UNKNOWN)),
        (BLACKHOLE, "international", VS.INTERNATIONAL_SHUTDOWN, None, Outcome(V.UNKNOWN)),
        (BLACKHOLE, "domestic", VS.INTERNATIONAL_SHUTDOWN, None, Outcome(V.UNREACHABLE)),
        # an international control that fails while another works is just unreachable
        (BLACKHOLE, "international", VS.ONLINE, None, Outcome(V.UNREACHABLE)),
    ],
)
def test_judge_table(
    result: ProbeResult,
    role: str | None,
    vantage: VantageState,
    reference: bool | None,
    expected: Outcome,
) -> None:
    assert judge(result, role=role, vantage=vantage, reference=seen(reference)) == expected


def test_every_reference_attribution_is_a_blocking_technique_never_a_success() -> None:
    assert technique_with_reference(ok()) is None
    assert technique_with_reference(fail(F.GENERIC_TIMEOUT_ERROR, S.RESOLVE)) is None
    assert technique_with_reference(fail(F.NETWORK_UNREACHABLE, S.CONNECT)) is None


R, B, U, K = (
    Outcome(V.REACHABLE),
    Outcome(V.BLOCKED, T.TCP_BLACKHOLE),
    Outcome(V.UNREACHABLE),
    Outcome(V.UNKNOWN),
)
RST = Outcome(V.BLOCKED, T.TCP_RESET)


def test_a_failure_with_a_local_cause_is_never_attributed_through_a_reference() -> None:
    """A Shadowsocks-2022 server ignoring a prober whose clock is off looks like protocol blocking."""
    skewed = ProbeResult(
        target="t",
        kind="shadowsocks",
        started_at=time.time(),
        duration_s=1.0,
        success=False,
        failure=F.PROTOCOL_NO_RESPONSE,
        stage=S.PROTOCOL_HANDSHAKE,
        facts={"local_cause": "clock_skew"},
    )
    plain = fail(F.PROTOCOL_NO_RESPONSE, S.PROTOCOL_HANDSHAKE)
    assert technique_with_reference(plain) is T.PROTOCOL_BLOCKING
    assert technique_with_reference(skewed) is None
    outcome = judge(skewed, role=None, vantage=VS.ONLINE, reference=seen(True))
    assert outcome == Outcome(V.UNREACHABLE)


@pytest.mark.parametrize(
    ("outcomes", "current", "attempts", "required", "expected"),
    [
        # nothing seen: stay
        ([], K, 3, 2, (V.UNKNOWN, None, False)),
        # one failure among successes is not a verdict
        ([R, R, B], R, 3, 2, (V.REACHABLE, None, False)),
        # two of the last three agree: it changes
        ([R, B, B], R, 3, 2, (V.BLOCKED, T.TCP_BLACKHOLE, True)),
        ([B, R, B], R, 3, 2, (V.BLOCKED, T.TCP_BLACKHOLE, True)),
        # flapping: only the last ``attempts`` count
        ([B, B, R, R, B], R, 3, 2, (V.REACHABLE, None, False)),
        ([B, R, B, R, B, R], B, 3, 3, (V.BLOCKED, T.TCP_BLACKHOLE, False)),
        ([B, R, B, R, B, R], R, 4, 3, (V.REACHABLE, None, False)),
        ([B, R, B, R, R, R], B, 3, 3, (V.REACHABLE, None, True)),
        # 1 of 1: every outcome is final
        ([R, B], R, 1, 1, (V.BLOCKED, T.TCP_BLACKHOLE, True)),
        # 3 of 3 needs unanimity
        ([U, U, R], U, 3, 3, (V.UNREACHABLE, None, False)),
        ([R, R, R], U, 3, 3, (V.REACHABLE, None, True)),
        # the first results after start: unknown until confirmed
        ([U], K, 3, 2, (V.UNKNOWN, None, False)),
        ([U, U], K, 3, 2, (V.UNREACHABLE, None, True)),
        # a censor alternating RST and drop is still confirmed blocked, with its most frequent technique
        ([RST, B, RST], R, 3, 2, (V.BLOCKED, T.TCP_RESET, True)),
        ([B, RST], R, 3, 2, (V.BLOCKED, T.TCP_RESET, True)),
        ([RST, B, B], RST, 3, 2, (V.BLOCKED, T.TCP_BLACKHOLE, True)),
        # same verdict and technique again: no change reported
        ([B, B, B], B, 3, 2, (V.BLOCKED, T.TCP_BLACKHOLE, False)),
    ],
)
def test_confirm_table(
    outcomes: list[Outcome],
    current: Outcome,
    attempts: int,
    required: int,
    expected: tuple[Verdict, Technique | None, bool],
) -> None:
    assert tuple(confirm(outcomes, current, attempts=attempts, required=required)) == expected


def _state() -> TargetState:
    cfg = parse_config("targets: [{name: t, kind: tcp, host: 127.0.0.1, port: 9}]", "t.yaml", Path.cwd())
    return StateStore().ensure(cfg.config.targets[0], None)


def test_update_verdict_needs_confirmation_and_stamps_the_change() -> None:
    state = _state()
    conf = ConfirmationConfig(attempts=3, required=2)
    now = 1_700_000_000.0
    first, second = ok(), ok()
    state.record(first)
    assert not update_verdict(state, first, vantage=VS.ONLINE, reference=None, confirmation=conf, now=now)
    assert state.unconfirmed  # reachable once, verdict still unknown
    state.record(second)
    assert update_verdict(state, second, vantage=VS.ONLINE, reference=None, confirmation=conf, now=now + 1)
    assert (state.verdict, state.technique, state.verdict_since) == (V.REACHABLE, None, now + 1)
    assert not state.unconfirmed

    # one blackhole seen with a reference: an unconfirmed outcome, the verdict holds
    state.record(BLACKHOLE)
    assert not update_verdict(
        state, BLACKHOLE, vantage=VS.ONLINE, reference=seen(True), confirmation=conf, now=now + 2
    )
    assert state.verdict is V.REACHABLE
    assert state.unconfirmed
    assert state.reference_success is True
    assert state.last_outcome == B
    state.record(BLACKHOLE)
    assert update_verdict(
        state, BLACKHOLE, vantage=VS.ONLINE, reference=seen(True), confirmation=conf, now=now + 3
    )
    assert (state.verdict, state.technique, state.verdict_since) == (V.BLOCKED, T.TCP_BLACKHOLE, now + 3)


def test_record_counts_attempts_and_failures_by_stage_and_failure() -> None:
    state = _state()
    for result in (ok(), BLACKHOLE, BLACKHOLE, REFUSED):
        state.record(result)
    assert state.probes_total == 4
    assert state.failures_total == {
        (S.CONNECT, F.GENERIC_TIMEOUT_ERROR): 2,
        (S.CONNECT, F.CONNECTION_REFUSED): 1,
    }
    assert state.last is REFUSED


@pytest.mark.parametrize(
    ("answers", "combined"),
    [
        ([], None),
        ([None, None], None),
        ([True], True),  # one reference alone decides: nothing to weigh it against
        ([False], False),
        ([True, False], None),  # disagreement is no evidence: one liar cannot make "blocked"
        ([True, False, None], None),  # a reference without a fresh answer does not vote
        ([True, True, False], True),
        ([True, False, False], False),
        ([True, None, None], True),
    ],
)
def test_reference_quorum_table(answers: list[bool | None], combined: bool | None) -> None:
    assert reference_quorum(answers) is combined


# -- flow cut and throttling against a reference's comparable facts (CONTRACTS.md, "Flow cut") ---------

MIB = 1024 * 1024
CUT = {"bytes_moved": 40_000, "transfer_goal_bytes": MIB, "cut_after_bytes": 40_000, "cut_after_s": 1.5}
REF_MOVED = {"bytes_moved": MIB, "throughput_bps": 2e6}
FLOW_CUT = Outcome(V.BLOCKED, T.FLOW_CUT)


@pytest.mark.parametrize(
    ("result", "vantage", "reference", "expected"),
    [
        # cut after data, the reference moved our whole goal: flow_cut, for every shape of a cut
        (fail(F.TRANSFER_INCOMPLETE, S.TRANSFER, facts=CUT), VS.ONLINE, seen(True, REF_MOVED), FLOW_CUT),
        (fail(F.GENERIC_TIMEOUT_ERROR, S.TRANSFER, facts=CUT), VS.ONLINE, seen(True, REF_MOVED), FLOW_CUT),
        (fail(F.CONNECTION_RESET, S.TRANSFER, facts=CUT), VS.ONLINE, seen(True, REF_MOVED), FLOW_CUT),
        (fail(F.EOF_ERROR, S.HTTP, facts=CUT), VS.ONLINE, seen(True, REF_MOVED), FLOW_CUT),
        (fail(F.GENERIC_TIMEOUT_ERROR, S.TUNNEL, facts=CUT), VS.ONLINE, seen(True, REF_MOVED), FLOW_CUT),
        # a cut point alone (the tunnel died before its first payload came back) says the stage had started
        (
            fail(F.GENERIC_TIMEOUT_ERROR, S.TUNNEL, facts={"cut_after_bytes": 0, "cut_after_s": 3.0}),
            VS.ONLINE,
            seen(True, REF_MOVED),
            FLOW_CUT,
        ),
        # the reference moved less than our goal but succeeded with a data stage (a v1 reference:
        # success and its stage durations only)
        (
            fail(F.TRANSFER_INCOMPLETE, S.TRANSFER, facts=CUT),
            VS.ONLINE,
            seen(True, durations={"connect": 0.01, "transfer": 2.0}),
            FLOW_CUT,
        ),
        (
            fail(F.TRANSFER_INCOMPLETE, S.HTTP, facts=CUT),
            VS.ONLINE,
            seen(True, durations={"http": 0.3}),
            FLOW_CUT,
        ),
        # ... or moved our goal and then failed at something else
        (
            fail(F.TRANSFER_INCOMPLETE, S.TRANSFER, facts=CUT),
            VS.ONLINE,
            seen(False, {"bytes_moved": MIB}),
            FLOW_CUT,
        ),
        # no evidence: no reference, a reference that failed too (a dead server), or one without a data
        # stage (it only connected) -> unreachable as before
        (fail(F.TRANSFER_INCOMPLETE, S.TRANSFER, facts=CUT), VS.ONLINE, None, Outcome(V.UNREACHABLE)),
        (
            fail(F.TRANSFER_INCOMPLETE, S.TRANSFER, facts=CUT),
            VS.ONLINE,
            seen(False, {"bytes_moved": 10_000}),
            Outcome(V.UNREACHABLE),
        ),
        (
            fail(F.TRANSFER_INCOMPLETE, S.TRANSFER, facts=CUT),
            VS.ONLINE,
            seen(True, durations={"connect": 0.01}),
            Outcome(V.UNREACHABLE),
        ),
        # a reset after data with a reference that only connected: today's rule (tcp_reset) still holds
        (
            fail(F.CONNECTION_RESET, S.TRANSFER, facts=CUT),
            VS.ONLINE,
            seen(True),
            Outcome(V.BLOCKED, T.TCP_RESET),
        ),
        # nothing moved and no cut point: not a flow cut (a reset is still tcp_reset, silence unattributed)
        (
            fail(F.CONNECTION_RESET, S.TRANSFER, facts={"bytes_moved": 0}),
            VS.ONLINE,
            seen(True, REF_MOVED),
            Outcome(V.BLOCKED, T.TCP_RESET),
        ),
        (fail(F.GENERIC_TIMEOUT_ERROR, S.TUNNEL), VS.ONLINE, seen(True, REF_MOVED), Outcome(V.UNREACHABLE)),
        # not at a data stage, or not a cut's failure
        (
            fail(F.GENERIC_TIMEOUT_ERROR, S.CONNECT, facts=CUT),
            VS.ONLINE,
            seen(True, REF_MOVED),
            Outcome(V.BLOCKED, T.TCP_BLACKHOLE),
        ),
        (
            fail(F.CANARY_MISMATCH, S.TUNNEL, facts=CUT),
            VS.ONLINE,
            seen(True, REF_MOVED),
            Outcome(V.UNREACHABLE),
        ),
        (
            fail(F.INTERNAL_ERROR, S.TRANSFER, facts=CUT),
            VS.ONLINE,
            seen(True, REF_MOVED),
            Outcome(V.UNREACHABLE),
        ),
        (
            fail(F.TRANSFER_INCOMPLETE, S.TRANSFER, facts={**CUT, "local_cause": "clock_skew"}),
            VS.ONLINE,
            seen(True, REF_MOVED),
            Outcome(V.UNREACHABLE),
        ),
        # the vantage must be online: without controls our own outage is not ruled out; offline is unknown
        (
            fail(F.TRANSFER_INCOMPLETE, S.TRANSFER, facts=CUT),
            VS.UNKNOWN,
            seen(True, REF_MOVED),
            Outcome(V.UNREACHABLE),
        ),
        (
            fail(F.TRANSFER_INCOMPLETE, S.TRANSFER, facts=CUT),
            VS.OFFLINE,
            seen(True, REF_MOVED),
            Outcome(V.UNKNOWN),
        ),
        (
            fail(F.TRANSFER_INCOMPLETE, S.TRANSFER, facts=CUT),
            VS.INTERNATIONAL_SHUTDOWN,
            seen(True, REF_MOVED),
            Outcome(V.UNKNOWN),
        ),
        # local evidence from a control transfer on the same path: the probe marked flow_cut itself
        (fail(F.TRANSFER_INCOMPLETE, S.TRANSFER, T.FLOW_CUT, facts=CUT), VS.ONLINE, None, FLOW_CUT),
        (
            fail(F.TRANSFER_INCOMPLETE, S.TRANSFER, T.FLOW_CUT, facts=CUT),
            VS.OFFLINE,
            None,
            Outcome(V.UNKNOWN),
        ),
    ],
)
def test_flow_cut_table(
    result: ProbeResult, vantage: VantageState, reference: Observation | None, expected: Outcome
) -> None:
    assert judge(result, role=None, vantage=vantage, reference=reference) == expected


def test_a_flow_cut_keeps_the_reference_and_both_sides_figures() -> None:
    reference = seen(True, REF_MOVED)
    outcome = judge(
        fail(F.TRANSFER_INCOMPLETE, S.TRANSFER, facts=CUT), role=None, vantage=VS.ONLINE, reference=reference
    )
    assert outcome == FLOW_CUT
    assert outcome.reference is reference
    assert outcome.evidence == {**CUT, "reference_bytes_moved": MIB, "reference_throughput_bps": 2e6}


def fast(bps: float | str) -> ProbeResult:
    return ProbeResult(
        target="t", kind="socks5", started_at=0, duration_s=1, success=True, facts={"throughput_bps": bps}
    )


@pytest.mark.parametrize(
    ("result", "vantage", "reference", "ratio", "expected"),
    [
        # far below the reference's throughput: throttled
        (fast(10_000), VS.ONLINE, seen(True, {"throughput_bps": 1e6}), 0.25, Outcome(V.BLOCKED, T.THROTTLED)),
        (
            fast(249_999),
            VS.ONLINE,
            seen(True, {"throughput_bps": 1e6}),
            0.25,
            Outcome(V.BLOCKED, T.THROTTLED),
        ),
        # at or above the threshold, or a higher threshold configured
        (fast(250_000), VS.ONLINE, seen(True, {"throughput_bps": 1e6}), 0.25, Outcome(V.REACHABLE)),
        (fast(400_000), VS.ONLINE, seen(True, {"throughput_bps": 1e6}), 0.25, Outcome(V.REACHABLE)),
        (fast(400_000), VS.ONLINE, seen(True, {"throughput_bps": 1e6}), 0.5, Outcome(V.BLOCKED, T.THROTTLED)),
        # nothing to compare with: no reference, a reference that failed, no or zero throughput there,
        # garbage figures here
        (fast(10_000), VS.ONLINE, None, 0.25, Outcome(V.REACHABLE)),
        (fast(10_000), VS.ONLINE, seen(False, {"throughput_bps": 1e6}), 0.25, Outcome(V.REACHABLE)),
        (fast(10_000), VS.ONLINE, seen(True), 0.25, Outcome(V.REACHABLE)),
        (fast(10_000), VS.ONLINE, seen(True, {"throughput_bps": 0}), 0.25, Outcome(V.REACHABLE)),
        (fast(10_000), VS.ONLINE, seen(True, {"throughput_bps": True}), 0.25, Outcome(V.REACHABLE)),
        (fast("10"), VS.ONLINE, seen(True, {"throughput_bps": 1e6}), 0.25, Outcome(V.REACHABLE)),
        (fast(float("nan")), VS.ONLINE, seen(True, {"throughput_bps": 1e6}), 0.25, Outcome(V.REACHABLE)),
        # a same-path control download already said "not throttled": it beats a datacentre abroad
        (
            ProbeResult(
                target="t",
                kind="throughput",
                started_at=0,
                duration_s=1,
                success=True,
                facts={"throughput_bps": 10_000, "control_throughput_bps": 12_000},
            ),
            VS.ONLINE,
            seen(True, {"throughput_bps": 1e6}),
            0.25,
            Outcome(V.REACHABLE),
        ),
        # the vantage must be online to compare paths
        (fast(10_000), VS.UNKNOWN, seen(True, {"throughput_bps": 1e6}), 0.25, Outcome(V.REACHABLE)),
        (fast(10_000), VS.OFFLINE, seen(True, {"throughput_bps": 1e6}), 0.25, Outcome(V.REACHABLE)),
    ],
)
def test_throttled_against_the_reference_table(
    result: ProbeResult, vantage: VantageState, reference: Observation | None, ratio: float, expected: Outcome
) -> None:
    assert judge(result, role=None, vantage=vantage, reference=reference, throttle_ratio=ratio) == expected


def test_a_throttled_outcome_keeps_both_figures() -> None:
    reference = seen(True, {"throughput_bps": 1e6})
    outcome = judge(fast(10_000), role=None, vantage=VS.ONLINE, reference=reference)
    assert outcome.reference is reference
    assert outcome.evidence == {
        "throughput_bps": 10_000,
        "reference_throughput_bps": 1e6,
        "throughput_ratio": 0.01,
        "throttle_ratio": 0.25,
    }


def test_references_agree_by_majority_and_the_freshest_of_the_majority_speaks() -> None:
    a, b = seen(True, at=100.0, reference="a"), seen(True, at=200.0, reference="b")
    c = seen(False, at=300.0, reference="c")
    assert reference_consensus([a, b, c]) is b
    assert reference_consensus([a, c]) is None  # one against one: nothing to go by
    assert reference_consensus([None, c]) is c
    assert reference_consensus([None, None]) is None
    assert reference_consensus([]) is None


def test_update_verdict_keeps_the_observation_it_consulted() -> None:
    state = _state()
    conf = ConfirmationConfig(attempts=1, required=1)
    reference = seen(True)
    state.record(BLACKHOLE)
    assert update_verdict(
        state, BLACKHOLE, vantage=VS.ONLINE, reference=reference, confirmation=conf, now=1.0
    )
    assert state.reference_observation is reference
    assert state.last_outcome is not None and state.last_outcome.reference is reference
    fine = ok()
    state.record(fine)
    update_verdict(state, fine, vantage=VS.ONLINE, reference=None, confirmation=conf, now=2.0)
    assert state.reference_observation is None and state.reference_success is None


# -- interception by any root: our chain refused, the reference validated another -----------------------

SUBSTITUTE = {"tls_leaf_sha256": "aa" * 32, "tls_issuer": "CN=Corporate Security Gateway CA,O=Example ISP"}
REAL_LEAF = {"tls_leaf_sha256": "bb" * 32}
INTERCEPTED = Outcome(V.BLOCKED, T.TLS_INTERCEPTION)


@pytest.mark.parametrize(
    ("result", "vantage", "reference", "expected"),
    [
        (
            fail(F.SSL_UNKNOWN_AUTHORITY, S.TLS_HANDSHAKE, facts=SUBSTITUTE),
            VS.ONLINE,
            seen(True, REAL_LEAF),
            INTERCEPTED,
        ),
        # the same leaf on both sides: our trust store lacks the root, nobody substituted anything
        (
            fail(F.SSL_UNKNOWN_AUTHORITY, S.TLS_HANDSHAKE, facts=SUBSTITUTE),
            VS.ONLINE,
            seen(True, {"tls_leaf_sha256": "aa" * 32}),
            Outcome(V.UNREACHABLE),
        ),
        # no reference, a reference that failed too, or one that does not say which leaf it saw
        (
            fail(F.SSL_UNKNOWN_AUTHORITY, S.TLS_HANDSHAKE, facts=SUBSTITUTE),
            VS.ONLINE,
            None,
            Outcome(V.UNREACHABLE),
        ),
        (
            fail(F.SSL_UNKNOWN_AUTHORITY, S.TLS_HANDSHAKE, facts=SUBSTITUTE),
            VS.ONLINE,
            seen(False, REAL_LEAF),
            Outcome(V.UNREACHABLE),
        ),
        (
            fail(F.SSL_UNKNOWN_AUTHORITY, S.TLS_HANDSHAKE, facts=SUBSTITUTE),
            VS.ONLINE,
            seen(True),
            Outcome(V.UNREACHABLE),
        ),
        # our leaf unknown (the diagnostic handshake failed), or another certificate failure (an expired
        # certificate may be our clock)
        (
            fail(F.SSL_UNKNOWN_AUTHORITY, S.TLS_HANDSHAKE),
            VS.ONLINE,
            seen(True, REAL_LEAF),
            Outcome(V.UNREACHABLE),
        ),
        (
            fail(F.SSL_INVALID_CERTIFICATE, S.TLS_HANDSHAKE, facts=SUBSTITUTE),
            VS.ONLINE,
            seen(True, REAL_LEAF),
            Outcome(V.UNREACHABLE),
        ),
        # the vantage must be online
        (
            fail(F.SSL_UNKNOWN_AUTHORITY, S.TLS_HANDSHAKE, facts=SUBSTITUTE),
            VS.UNKNOWN,
            seen(True, REAL_LEAF),
            Outcome(V.UNREACHABLE),
        ),
        (
            fail(F.SSL_UNKNOWN_AUTHORITY, S.TLS_HANDSHAKE, facts=SUBSTITUTE),
            VS.OFFLINE,
            seen(True, REAL_LEAF),
            Outcome(V.UNKNOWN),
        ),
    ],
)
def test_interception_by_any_root_table(
    result: ProbeResult, vantage: VantageState, reference: Observation | None, expected: Outcome
) -> None:
    outcome = judge(result, role=None, vantage=vantage, reference=reference)
    assert outcome == expected
    if expected == INTERCEPTED:
        assert outcome.evidence["tls_issuer"] == SUBSTITUTE["tls_issuer"] and outcome.reference is reference


# -- DNS behind every hostname: our resolver's answer against the reference's --------------------------

DNS = Outcome(V.BLOCKED, T.DNS_TAMPERING)
THERE = {"ip": "151.101.1.69"}


@pytest.mark.parametrize(
    ("result", "reference", "expected"),
    [
        # NXDOMAIN (or no answer) here, the reference reached the name
        (fail(F.DNS_NXDOMAIN_ERROR, S.RESOLVE), seen(True, THERE), DNS),
        (fail(F.DNS_NO_ANSWER, S.RESOLVE), seen(True, THERE), DNS),
        # a bogon answer (tls, https, tcp: whatever stage then failed)
        (fail(F.GENERIC_TIMEOUT_ERROR, S.CONNECT, facts={"ip": "10.10.34.35"}), seen(True, THERE), DNS),
        (fail(F.CONNECTION_REFUSED, S.CONNECT, facts={"ip": "127.0.0.1"}), seen(True, THERE), DNS),
        (fail(F.SSL_UNKNOWN_AUTHORITY, S.TLS_HANDSHAKE, facts={"ip": "192.168.1.1"}), seen(True, THERE), DNS),
        # a disjoint answer: the address we were given fails, the reference's works
        (fail(F.GENERIC_TIMEOUT_ERROR, S.CONNECT, facts={"ip": "104.16.0.1"}), seen(True, THERE), DNS),
        # the same address on both sides (an IP target, or an honest resolver): today's rules
        (
            fail(F.GENERIC_TIMEOUT_ERROR, S.CONNECT, facts=THERE),
            seen(True, THERE),
            Outcome(V.BLOCKED, T.TCP_BLACKHOLE),
        ),
        # no evidence: no reference, a reference that failed too, no address known on either side
        (fail(F.DNS_NXDOMAIN_ERROR, S.RESOLVE), None, Outcome(V.UNREACHABLE)),
        (fail(F.DNS_NXDOMAIN_ERROR, S.RESOLVE), seen(False, THERE), Outcome(V.UNREACHABLE)),
        (
            fail(F.GENERIC_TIMEOUT_ERROR, S.CONNECT, facts={"ip": "10.1.1.1"}),
            seen(True),
            Outcome(V.BLOCKED, T.TCP_BLACKHOLE),
        ),
        (fail(F.GENERIC_TIMEOUT_ERROR, S.CONNECT), seen(True, THERE), Outcome(V.BLOCKED, T.TCP_BLACKHOLE)),
        # a reference that reached a loopback address measured its own host, not the name
        (
            fail(F.CONNECTION_REFUSED, S.CONNECT, facts={"ip": "127.0.0.2"}),
            seen(True, {"ip": "127.0.0.1"}),
            Outcome(V.BLOCKED, T.TCP_RESET),
        ),
        # a resolver that failed without saying the name is missing proves nothing
        (fail(F.DNS_SERVFAIL_ERROR, S.RESOLVE), seen(True, THERE), Outcome(V.UNREACHABLE)),
        # a success is not second-guessed
        (
            ProbeResult(
                target="t", kind="tls", started_at=0, duration_s=1, success=True, facts={"ip": "10.0.0.1"}
            ),
            seen(True, THERE),
            Outcome(V.REACHABLE),
        ),
    ],
)
def test_dns_behind_every_hostname_table(
    result: ProbeResult, reference: Observation | None, expected: Outcome
) -> None:
    assert judge(result, role=None, vantage=VS.ONLINE, reference=reference) == expected
    assert judge(result, role=None, vantage=VS.UNKNOWN, reference=reference) != DNS  # online only
