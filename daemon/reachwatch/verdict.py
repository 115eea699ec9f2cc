"""The verdict engine: what an attempt means, and when a target's verdict may change.

Two steps, both pure:

1. ``judge`` turns ONE result into an ``Outcome`` (verdict + technique) in its context: the vantage
   state from the controls, the target's role, and what a reference vantage outside the country saw of
   the same target recently (an ``Observation``: success, and the comparable facts: bytes moved,
   throughput...). The outcome keeps the observation it relied on.
2. ``confirm`` moves the target's verdict only when ``required`` of the last ``attempts`` outcomes agree
   (censors block probabilistically; one failure is not a verdict).

The one rule everything else serves: ``blocked`` needs evidence. A dead server fails too, and so does
every target while the vantage itself is cut off. Evidence is either local (the probe saw a substituted
certificate, a block page, poisoned DNS, a throttled transfer...: ``ProbeResult.evidence``) or external
(a reference vantage reached the target while we failed in a way a censor produces). Without evidence a
failure is ``unreachable``; with the vantage offline or internationally cut off it is ``unknown``.

``update_verdict`` applies both steps to a ``TargetState`` (the only impure function here).
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from reachwatch.config.schema import ConfirmationConfig
from reachwatch.failures import Failure, Stage, Technique, VantageState, Verdict
from reachwatch.model import LOCAL_CAUSE_FACT, FactValue, Observation, ProbeResult, number_fact
from reachwatch.state import Outcome, TargetState, plain_outcome

# Failures that, at a given stage, a censor produces and a reference success makes attributable.
# Anything not listed (e.g. a DNS failure, an HTTP status) needs local evidence from the probe.
_SILENCE = frozenset({Failure.GENERIC_TIMEOUT_ERROR, Failure.PROTOCOL_NO_RESPONSE})
_RESET = frozenset({Failure.CONNECTION_RESET, Failure.CONNECTION_ABORTED})
_TLS_INTERRUPTED = frozenset({*_RESET, Failure.GENERIC_TIMEOUT_ERROR, Failure.EOF_ERROR})
# after the connection was up, a reset "right after" the first payload is RST injection
_AFTER_CONNECT = frozenset({Stage.PROTOCOL_HANDSHAKE, Stage.HTTP, Stage.TUNNEL, Stage.TRANSFER})
# where a flow that carried data can die, and how its death looks (CONTRACTS.md, "Flow cut")
_DATA_STAGES = frozenset({Stage.HTTP, Stage.TUNNEL, Stage.TRANSFER})
_CUT = frozenset({Failure.TRANSFER_INCOMPLETE, Failure.EOF_ERROR, *_SILENCE, *_RESET})
DEFAULT_THROTTLE_RATIO = 0.25


def reference_quorum(answers: Sequence[bool | None]) -> bool | None:
    """What several reference vantages say together: the majority of their fresh answers.

    ``True`` (reached from abroad) when more references reached the target than saw it fail, ``False``
    when more saw it fail, ``None`` on a tie or when none has a fresh answer (``None`` entries: no
    answer). Why a majority: a reference that lies (compromised, misconfigured, or answering about a
    different server of the same name) must not turn every local timeout into ``blocked`` while another
    reference saw the target fail too; with one reference its answer decides, as there is nothing to
    weigh it against.
    """
    reached = sum(1 for a in answers if a is True)
    failed = sum(1 for a in answers if a is False)
    if reached > failed:
        return True
    if failed > reached:
        return False
    return None


def reference_consensus(observations: Sequence[Observation | None]) -> Observation | None:
    """The observation that speaks for several references: the freshest one on the majority's side.

    ``None`` when the references disagree evenly or none has a fresh observation (see
    ``reference_quorum``).
    """
    side = reference_quorum([o.success if o is not None else None for o in observations])
    if side is None:
        return None
    agreeing = [o for o in observations if o is not None and o.success is side]
    return max(agreeing, key=lambda o: o.observed_at)


def moved_data(result: ProbeResult) -> bool:
    """Whether a failed attempt's flow had carried data before it died (``bytes_moved`` > 0 or a cut point).

    A ``cut_after_*`` fact counts even at 0 bytes: the probe says the data stage had started.
    """
    moved = number_fact(result.facts, "bytes_moved")
    return (moved is not None and moved > 0) or any(
        k in result.facts for k in ("cut_after_bytes", "cut_after_s")
    )


def reference_moved_data(observation: Observation, goal: float | None) -> bool:
    """Whether the reference carried what our flow was cut short of.

    It moved at least our goal (``bytes_moved`` >= our ``transfer_goal_bytes``), or it succeeded with a
    data stage: bytes or a throughput reported, or time spent in ``http``/``tunnel``/``transfer`` (what a
    v1 reference's ``stage_durations`` shows).
    """
    moved = observation.fact_number("bytes_moved")
    if goal is not None and goal > 0 and moved is not None and moved >= goal:
        return True
    if not observation.success:
        return False
    if (moved or 0) > 0 or (observation.fact_number("throughput_bps") or 0) > 0:
        return True
    return any(stage in observation.stage_durations for stage in _DATA_STAGES)


def flow_cut(result: ProbeResult, reference: Observation | None) -> bool:
    """The flow-cut rule (CONTRACTS.md): our flow died after carrying data, and the reference's did not.

    A local failure at ``http``/``tunnel``/``transfer`` that looks like a cut (early close, stall,
    reset), after data moved, while a reference moved at least our goal through the same target. The
    other way to ``flow_cut`` is local: a probe whose control transfer on the same path succeeded marks
    the evidence itself.
    """
    if result.success or result.stage not in _DATA_STAGES or result.failure not in _CUT:
        return False
    if result.facts.get(LOCAL_CAUSE_FACT) or not moved_data(result) or reference is None:
        return False
    return reference_moved_data(reference, number_fact(result.facts, "transfer_goal_bytes"))


# how far a page may drift from the reference's and still be "the same page" (a date, a counter, an ad)
PAGE_LENGTH_RATIO = 0.5
PAGE_SIMHASH_BITS = 12


def page_differs(result: ProbeResult, reference: Observation | None) -> dict[str, FactValue] | None:
    """What differs between our page and the reference's, when ours carries block-page words.

    Markers alone prove nothing (news about censorship uses the same words); a page that also differs
    from what a reference fetched of the same URL (status, title, length beyond a factor of 2, or a
    simhash more than ``PAGE_SIMHASH_BITS`` apart) is the censor's page. ``None``: not a block page.
    """
    if not result.facts.get("blockpage_markers") or reference is None or not reference.success:
        return None
    ours, theirs = result.facts, reference.facts
    figures: dict[str, FactValue] = {}
    for key, kind in (("status", int), ("title", str)):
        mine_value, their_value = ours.get(key), theirs.get(key)
        same_kind = isinstance(mine_value, kind) and isinstance(their_value, kind)
        if same_kind and mine_value != their_value and mine_value is not None and their_value is not None:
            figures |= {key: mine_value, f"reference_{key}": their_value}
    mine, other = number_fact(ours, "body_bytes"), reference.fact_number("body_bytes")
    if (
        mine is not None
        and other is not None
        and max(mine, other) > 0
        and min(mine, other) / max(mine, other) < PAGE_LENGTH_RATIO
    ):
        figures |= {"body_bytes": mine, "reference_body_bytes": other}
    a, b = ours.get("simhash"), theirs.get("simhash")
    if isinstance(a, str) and isinstance(b, str):
        distance = _simhash_distance(a, b)
        if distance is not None and distance > PAGE_SIMHASH_BITS:
            figures["simhash_distance"] = distance
    return figures or None


def _simhash_distance(a: str, b: str) -> int | None:
    try:
        return bin(int(a, 16) ^ int(b, 16)).count("1") if len(a) == len(b) == 16 else None
    except ValueError:
        return None


def intercepted(result: ProbeResult, reference: Observation | None) -> dict[str, FactValue] | None:
    """Interception by any root: our chain was refused, the reference validated another for the name.

    Our handshake failed with ``ssl_unknown_authority`` (a root we do not trust), the reference's
    attempt at the same target succeeded (so its chain validated), and the leaf we were shown
    (``tls_leaf_sha256``) is not the one it was shown. The same leaf on both sides would mean our trust
    store lacks a root, not a substitute certificate; without the reference's leaf (a reference older
    than this rule) nothing is attributed. The presented issuer stays in the facts (and the metrics).
    """
    if result.success or result.stage is not Stage.TLS_HANDSHAKE:
        return None
    if result.failure is not Failure.SSL_UNKNOWN_AUTHORITY or result.facts.get(LOCAL_CAUSE_FACT):
        return None
    if reference is None or not reference.success:
        return None
    ours, theirs = result.facts.get("tls_leaf_sha256"), reference.facts.get("tls_leaf_sha256")
    if not isinstance(ours, str) or not isinstance(theirs, str) or not ours or not theirs or ours == theirs:
        return None
    figures: dict[str, FactValue] = {"tls_leaf_sha256": ours, "reference_tls_leaf_sha256": theirs}
    issuer = result.facts.get("tls_issuer")
    if isinstance(issuer, str):
        figures["tls_issuer"] = issuer
    return figures


_NO_NAME = frozenset({Failure.DNS_NXDOMAIN_ERROR, Failure.DNS_NO_ANSWER})


def dns_tampered(result: ProbeResult, reference: Observation | None) -> dict[str, FactValue] | None:
    """DNS behind a hostname target: our resolver's answer against the one the reference used.

    A failed attempt is ``dns_tampering`` when a reference reached the same target and either our
    resolver said the name does not exist (NXDOMAIN / no answer at ``resolve``), or the address we were
    given (fact ``ip``) is a bogon (private, reserved, loopback: never a server abroad), or is not the
    address the reference reached (disjoint answers: the address we got does not work, the one abroad
    does). An IP-literal target has the same ``ip`` on both sides and is never attributed here.
    """
    if result.success or result.facts.get(LOCAL_CAUSE_FACT) or result.failure is Failure.INTERNAL_ERROR:
        return None
    if reference is None or not reference.success:
        return None
    theirs = reference.facts.get("ip")
    if result.stage is Stage.RESOLVE:
        if result.failure in _NO_NAME:
            return {
                "resolver_answer": result.failure.value,
                **({"reference_ip": theirs} if isinstance(theirs, str) else {}),
            }
        return None
    ours = result.facts.get("ip")
    if not isinstance(ours, str) or not isinstance(theirs, str) or ours == theirs:
        return None  # an IP-literal target, or an honest resolver: the other rules decide
    figures: dict[str, FactValue] = {"ip": ours, "reference_ip": theirs}
    try:
        there = ipaddress.ip_address(theirs)
        if there.is_loopback or there.is_unspecified:
            return None  # the reference reached itself, not the name on the Internet: nothing to compare
        if not ipaddress.ip_address(ours).is_global:
            figures["bogon"] = True
    except ValueError:
        return None
    return figures


def throttled(
    result: ProbeResult, reference: Observation | None, ratio: float
) -> dict[str, FactValue] | None:
    """Both throughputs when ours is far below the reference's for the same target, else ``None``.

    Only a local success is compared (a failure has its own rules) and only against a reference that
    succeeded: a reference struggling too says the server is slow, not that the path is throttled. A
    probe that already compared with a control download on the same path (``control_throughput_bps``,
    the ``throughput`` kind) has the better answer: a datacentre abroad is faster than a home line in any
    country, so the reference decides only where no same-path control was measured.
    """
    if not result.success or reference is None or not reference.success:
        return None
    if "control_throughput_bps" in result.facts:
        return None
    ours = number_fact(result.facts, "throughput_bps")
    theirs = reference.fact_number("throughput_bps")
    if ours is None or theirs is None or theirs <= 0 or ours / theirs >= ratio:
        return None
    return {
        "throughput_bps": ours,
        "reference_throughput_bps": theirs,
        "throughput_ratio": round(ours / theirs, 4),
        "throttle_ratio": ratio,
    }


def technique_with_reference(result: ProbeResult) -> Technique | None:
    """The technique a local failure points to once a reference vantage reached the same target.

    - ``connect`` timeout (SYN unanswered) or ICMP host unreachable -> ``tcp_blackhole``;
    - ``connect`` reset or refused -> ``tcp_reset``: the reference proves the server listens, so a
      RST answering our SYN was forged (a dead server refuses the reference too and stays unreachable);
    - reset right after the connection carried data -> ``tcp_reset``;
    - ``tls_handshake`` timeout/reset/EOF (typically an SNI-triggered drop) -> ``tls_interference``;
    - ``protocol_handshake`` silence on a path that connected -> ``protocol_blocking``.
    Anything else -> ``None`` (no attribution), and so is a failure whose probe named a cause on our
    side (``local_cause``, e.g. the prober's clock rejected by a Shadowsocks-2022 server).
    """
    failure, stage = result.failure, result.stage
    if result.success or failure is None or result.facts.get(LOCAL_CAUSE_FACT):
        return None
    if stage is Stage.CONNECT:
        if failure in (Failure.GENERIC_TIMEOUT_ERROR, Failure.HOST_UNREACHABLE):
            return Technique.TCP_BLACKHOLE
        if failure in (*_RESET, Failure.CONNECTION_REFUSED):
            return Technique.TCP_RESET
        return None
    if stage is Stage.TLS_HANDSHAKE and failure in _TLS_INTERRUPTED:
        return Technique.TLS_INTERFERENCE
    if stage is Stage.PROTOCOL_HANDSHAKE and failure in _SILENCE:
        return Technique.PROTOCOL_BLOCKING
    if stage in _AFTER_CONNECT and failure in _RESET:
        return Technique.TCP_RESET
    return None


def judge(
    result: ProbeResult,
    *,
    role: str | None,
    vantage: VantageState,
    reference: Observation | None,
    throttle_ratio: float = DEFAULT_THROTTLE_RATIO,
) -> Outcome:
    """What one attempt says on its own.

    ``role`` is ``"domestic"``/``"international"`` for controls and ``None`` for targets (which are
    treated as international: what a censor blocks lies abroad). ``reference`` is a reference vantage's
    fresh observation of the same target (``None``: none). An outcome that relied on it keeps it.
    """
    online = vantage is VantageState.ONLINE
    if result.success and result.evidence is None:
        if online and (figures := page_differs(result, reference)) is not None:
            return Outcome(Verdict.BLOCKED, Technique.HTTP_BLOCKPAGE, reference, figures)
        figures = throttled(result, reference, throttle_ratio) if online else None
        if figures is None:
            return plain_outcome(Verdict.REACHABLE)
        return Outcome(Verdict.BLOCKED, Technique.THROTTLED, reference, figures)
    # from here: a failure, or a success the probe itself saw tampered with (e.g. reachable but throttled)
    if vantage is VantageState.OFFLINE:
        return plain_outcome(Verdict.UNKNOWN)
    if vantage is VantageState.INTERNATIONAL_SHUTDOWN and role != "domestic":
        return plain_outcome(Verdict.UNKNOWN)
    if result.evidence is not None and result.failure is not Failure.INTERNAL_ERROR:
        # the probe itself saw the censor's hand (a forged certificate cannot come from a dead server)
        return plain_outcome(Verdict.BLOCKED, result.evidence)
    if online and (figures := page_differs(result, reference)) is not None:
        return Outcome(Verdict.BLOCKED, Technique.HTTP_BLOCKPAGE, reference, figures)
    if online and (figures := dns_tampered(result, reference)) is not None:
        return Outcome(Verdict.BLOCKED, Technique.DNS_TAMPERING, reference, figures)
    if online and (figures := intercepted(result, reference)) is not None:
        return Outcome(Verdict.BLOCKED, Technique.TLS_INTERCEPTION, reference, figures)
    if online and flow_cut(result, reference):
        return Outcome(Verdict.BLOCKED, Technique.FLOW_CUT, reference, _cut_figures(result, reference))
    if online and reference is not None and reference.success:
        technique = technique_with_reference(result)
        if technique is not None:
            return Outcome(Verdict.BLOCKED, technique, reference)
    # a dead server, an outage we cannot see without controls, or a failure nothing attributes
    return plain_outcome(Verdict.UNREACHABLE)


def _cut_figures(result: ProbeResult, reference: Observation | None) -> dict[str, FactValue]:
    """The numbers a ``flow_cut`` rests on: where ours stopped, what the reference moved."""
    figures: dict[str, FactValue] = {
        k: v
        for k in ("bytes_moved", "transfer_goal_bytes", "cut_after_bytes", "cut_after_s")
        if (v := result.facts.get(k)) is not None
    }
    if reference is not None:
        for key in ("bytes_moved", "throughput_bps"):
            value = reference.fact_number(key)
            if value is not None:
                figures[f"reference_{key}"] = value
    return figures


class Decision(NamedTuple):
    """The confirmed verdict after one more outcome, and whether it changed."""

    verdict: Verdict
    technique: Technique | None
    changed: bool


def confirm(
    outcomes: Sequence[Outcome],
    current: Outcome,
    *,
    attempts: int,
    required: int,
) -> Decision:
    """k-of-n confirmation over the latest outcomes (oldest first).

    The verdict becomes the latest outcome's verdict when at least ``required`` of the last ``attempts``
    outcomes share it; otherwise ``current`` stays. Among agreeing ``blocked`` outcomes the technique
    seen most often wins (ties: the most recent), so a censor alternating RST and drop still confirms
    ``blocked``.
    """
    window = list(outcomes)[-attempts:]
    if not window:
        return Decision(current.verdict, current.technique, False)
    latest = window[-1].verdict
    agreeing = [o for o in window if o.verdict is latest]
    if len(agreeing) < required:
        return Decision(current.verdict, current.technique, False)
    technique: Technique | None = None
    if latest is Verdict.BLOCKED:
        counts = Counter(o.technique for o in agreeing)
        best = max(counts.values())
        technique = next(o.technique for o in reversed(agreeing) if counts[o.technique] == best)
    changed = (latest, technique) != (current.verdict, current.technique)
    return Decision(latest, technique, changed)


def update_verdict(
    state: TargetState,
    result: ProbeResult,
    *,
    vantage: VantageState,
    reference: Observation | None,
    confirmation: ConfirmationConfig,
    now: float,
    throttle_ratio: float = DEFAULT_THROTTLE_RATIO,
) -> bool:
    """Judge ``result`` (already recorded in ``state``) and apply confirmation; True when the verdict changed.

    Sets ``state.reference_observation``, appends to ``state.outcomes`` and, on a change, updates
    ``verdict``, ``technique`` and ``verdict_since``.
    """
    state.reference_observation = reference
    state.outcomes.append(
        judge(
            result,
            role=state.role,
            vantage=vantage,
            reference=reference,
            throttle_ratio=throttle_ratio,
        )
    )
    decision = confirm(
        state.outcomes,
        plain_outcome(state.verdict, state.technique),
        attempts=confirmation.attempts,
        required=confirmation.required,
    )
    if decision.changed:
        state.verdict, state.technique = decision.verdict, decision.technique
        state.verdict_since = now
    return decision.changed
