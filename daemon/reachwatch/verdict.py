"""The verdict engine: what an attempt means, and when a target's verdict may change.

Two steps, both pure:

1. ``judge`` turns ONE result into an ``Outcome`` (verdict + technique) in its context: the vantage
   state from the controls, the target's role, and whether a reference vantage outside the country
   reached the same target (by name) recently.
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

from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

from reachwatch.config.schema import ConfirmationConfig
from reachwatch.failures import Failure, Stage, Technique, VantageState, Verdict
from reachwatch.model import LOCAL_CAUSE_FACT, ProbeResult
from reachwatch.state import Outcome, TargetState

# Failures that, at a given stage, a censor produces and a reference success makes attributable.
# Anything not listed (e.g. a DNS failure, an HTTP status) needs local evidence from the probe.
_SILENCE = frozenset({Failure.GENERIC_TIMEOUT_ERROR, Failure.PROTOCOL_NO_RESPONSE})
_RESET = frozenset({Failure.CONNECTION_RESET, Failure.CONNECTION_ABORTED})
_TLS_INTERRUPTED = frozenset({*_RESET, Failure.GENERIC_TIMEOUT_ERROR, Failure.EOF_ERROR})
# after the connection was up, a reset "right after" the first payload is RST injection
_AFTER_CONNECT = frozenset({Stage.PROTOCOL_HANDSHAKE, Stage.HTTP, Stage.TUNNEL, Stage.TRANSFER})


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
    reference_success: bool | None,
) -> Outcome:
    """What one attempt says on its own.

    ``role`` is ``"domestic"``/``"international"`` for controls and ``None`` for targets (which are
    treated as international: what a censor blocks lies abroad). ``reference_success`` is a reference
    vantage's fresh observation of the same target: ``True`` reached, ``False`` failed, ``None`` none.
    """
    if result.success and result.evidence is None:
        return Outcome(Verdict.REACHABLE)
    # from here: a failure, or a success the probe itself saw tampered with (e.g. reachable but throttled)
    if vantage is VantageState.OFFLINE:
        return Outcome(Verdict.UNKNOWN)
    if vantage is VantageState.INTERNATIONAL_SHUTDOWN and role != "domestic":
        return Outcome(Verdict.UNKNOWN)
    if result.evidence is not None and result.failure is not Failure.INTERNAL_ERROR:
        # the probe itself saw the censor's hand (a forged certificate cannot come from a dead server)
        return Outcome(Verdict.BLOCKED, result.evidence)
    if vantage is VantageState.ONLINE and reference_success is True:
        technique = technique_with_reference(result)
        if technique is not None:
            return Outcome(Verdict.BLOCKED, technique)
    # a dead server, an outage we cannot see without controls, or a failure nothing attributes
    return Outcome(Verdict.UNREACHABLE)


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
    reference_success: bool | None,
    confirmation: ConfirmationConfig,
    now: float,
) -> bool:
    """Judge ``result`` (already recorded in ``state``) and apply confirmation; True when the verdict changed.

    Sets ``state.reference_success``, appends to ``state.outcomes`` and, on a change, updates
    ``verdict``, ``technique`` and ``verdict_since``.
    """
    state.reference_success = reference_success
    state.outcomes.append(
        judge(result, role=state.role, vantage=vantage, reference_success=reference_success)
    )
    decision = confirm(
        state.outcomes,
        Outcome(state.verdict, state.technique),
        attempts=confirmation.attempts,
        required=confirmation.required,
    )
    if decision.changed:
        state.verdict, state.technique = decision.verdict, decision.technique
        state.verdict_since = now
    return decision.changed
