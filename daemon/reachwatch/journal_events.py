"""The journal's decision records: what the daemon concluded, and from what, beside the raw attempts.

A results row says what one attempt saw. An incident report also has to say what the daemon *decided*
and why, after the fact: when the vantage left ``online`` and which controls' results decided it, when a
target's confirmed verdict changed and the evidence of the attempt that confirmed it, and which
reference observation (another vantage abroad) a verdict relied on. Those facts exist only in memory at
the moment of the decision, so they are journaled then, through the same writer thread and the same
committed batches as results (same crash guarantees).

Three records, three tables (migration 2 in ``journal_store``):

- ``VantageChange``: the new and previous vantage state, the reason in words, and every control's
  latest attempt at that moment (name, role, started_at, success, failure, stage);
- ``VerdictChange``: a target's confirmed verdict and technique before and after, with the confirming
  attempt's failure, stage, local evidence and facts, and the key of the reference observation relied on;
- ``ReferenceObservation``: a reference vantage's attempt at the same target (its time, outcome and
  comparable facts), stored once per (reference, target, observed_at) however many verdicts used it.

This module is pure: dataclasses, their SQL values and their decoding. Decoding raises ``ValueError``/
``TypeError``/``KeyError`` for a row this version cannot read; the readers skip and count it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reachwatch.failures import Failure, Stage, Technique, VantageState, Verdict
from reachwatch.model import FactValue, ProbeResult
from reachwatch.state import StateStore, TargetState

# the observation the verdict engine keeps (issue 12) may name its fields differently; these are read
_OBS_NAME_FIELDS = ("reference", "reference_name", "name")
_OBS_TIME_FIELDS = ("observed_at", "started_at")


@dataclass(frozen=True)
class ControlReading:
    """One control's latest attempt when the vantage state was decided (``None`` fields: no attempt yet)."""

    name: str
    role: str  # "domestic" or "international"
    started_at: float | None
    success: bool | None
    failure: str | None = None
    stage: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "started_at": self.started_at,
            "success": self.success,
            "failure": self.failure,
            "stage": self.stage,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ControlReading:
        role = str(data["role"])
        if role not in ("domestic", "international"):
            raise ValueError(f"control role {role!r}")
        started = data.get("started_at")
        success = data.get("success")
        failure, stage = data.get("failure"), data.get("stage")
        return cls(
            name=str(data["name"]),
            role=role,
            started_at=_finite(started) if started is not None else None,
            success=bool(success) if success is not None else None,
            failure=Failure(failure).value if failure is not None else None,
            stage=Stage(stage).value if stage is not None else None,
        )


@dataclass(frozen=True)
class VantageChange:
    """The vantage state changed (``at``: wall time of the decision)."""

    at: float
    state: str
    previous: str
    reason: str
    controls: tuple[ControlReading, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "state": self.state,
            "previous": self.previous,
            "reason": self.reason,
            "controls": [c.to_dict() for c in self.controls],
        }


@dataclass(frozen=True)
class ReferenceObservation:
    """A reference vantage's attempt at a target, kept because a verdict relied on it."""

    reference: str
    target: str
    observed_at: float  # the reference's attempt's started_at (its clock)
    relied_at: float  # when our verdict first used it (our clock)
    success: bool
    failure: str | None = None
    stage: str | None = None
    destination: str | None = None
    facts: dict[str, FactValue] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, float]:
        return (self.reference, self.target, self.observed_at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "target": self.target,
            "observed_at": self.observed_at,
            "relied_at": self.relied_at,
            "success": self.success,
            "failure": self.failure,
            "stage": self.stage,
            "destination": self.destination,
            "facts": dict(self.facts),
        }


@dataclass(frozen=True)
class VerdictChange:
    """A target's confirmed verdict changed; ``at`` is the confirming attempt's ``started_at``."""

    at: float
    target: str
    kind: str
    group: str
    role: str
    verdict: str
    technique: str | None
    previous_verdict: str
    previous_technique: str | None
    failure: str | None = None
    stage: str | None = None
    evidence: str | None = None  # the technique the probe itself saw (local evidence)
    facts: dict[str, FactValue] = field(default_factory=dict)
    reference: ReferenceObservation | None = None  # the observation this verdict relied on
    compared: dict[str, FactValue] = field(default_factory=dict)  # the figures the verdict compared

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "target": self.target,
            "kind": self.kind,
            "group": self.group,
            "role": self.role,
            "verdict": self.verdict,
            "technique": self.technique,
            "previous_verdict": self.previous_verdict,
            "previous_technique": self.previous_technique,
            "failure": self.failure,
            "stage": self.stage,
            "evidence": self.evidence,
            "facts": dict(self.facts),
            "reference": self.reference.to_dict() if self.reference is not None else None,
            "compared": dict(self.compared),
        }


# --- SQL ---------------------------------------------------------------------------------------------

VANTAGE_INSERT = "INSERT INTO vantage_changes (at, state, previous, reason, controls) VALUES (?, ?, ?, ?, ?)"
VERDICT_INSERT = (
    "INSERT INTO verdict_changes (at, target, kind, grp, role, verdict, technique, previous_verdict,"
    " previous_technique, failure, stage, evidence, facts, reference, reference_observed_at, compared)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# the same observation relied on by many attempts is stored once (UNIQUE reference, target, observed_at)
REFERENCE_INSERT = (
    "INSERT OR IGNORE INTO reference_observations (reference, target, observed_at, relied_at, success,"
    " failure, stage, destination, facts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
VANTAGE_COLUMNS = "at, state, previous, reason, controls"
VERDICT_COLUMNS = (
    "v.at, v.target, v.kind, v.grp, v.role, v.verdict, v.technique, v.previous_verdict, v.previous_technique,"
    " v.failure, v.stage, v.evidence, v.facts, v.compared, r.reference, r.target, r.observed_at, r.relied_at,"
    " r.success, r.failure, r.stage, r.destination, r.facts"
)
VERDICT_FROM = (
    "verdict_changes v LEFT JOIN reference_observations r ON r.reference = v.reference"
    " AND r.target = v.target AND r.observed_at = v.reference_observed_at"
)
REFERENCE_COLUMNS = "reference, target, observed_at, relied_at, success, failure, stage, destination, facts"


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=False, default=str)


def vantage_values(change: VantageChange) -> tuple[Any, ...]:
    controls = [c.to_dict() for c in change.controls]
    return (change.at, change.state, change.previous, change.reason, _dumps(controls))


def reference_values(obs: ReferenceObservation) -> tuple[Any, ...]:
    return (
        obs.reference,
        obs.target,
        obs.observed_at,
        obs.relied_at,
        1 if obs.success else 0,
        obs.failure,
        obs.stage,
        obs.destination,
        _dumps(_safe_facts(obs.facts)),
    )


def verdict_values(change: VerdictChange) -> tuple[Any, ...]:
    ref = change.reference
    return (
        change.at,
        change.target,
        change.kind,
        change.group,
        change.role,
        change.verdict,
        change.technique,
        change.previous_verdict,
        change.previous_technique,
        change.failure,
        change.stage,
        change.evidence,
        _dumps(_safe_facts(change.facts)),
        ref.reference if ref is not None else None,
        ref.observed_at if ref is not None else None,
        _dumps(_safe_facts(change.compared)),
    )


def _safe_facts(facts: Mapping[str, Any]) -> dict[str, Any]:
    """Facts as JSON accepts them: a NaN throughput must not cost the whole record."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in facts.items()}


def _finite(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("time is not finite")
    return number


def _facts(text: Any) -> dict[str, FactValue]:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise TypeError("facts are not an object")
    return data


def _enum(value: Any, vocabulary: type[Failure] | type[Stage] | type[Technique]) -> str | None:
    return vocabulary(value).value if value is not None else None


def decode_vantage(rec: Sequence[Any]) -> VantageChange:
    at, state, previous, reason, controls = rec
    items = json.loads(controls)
    if not isinstance(items, list):
        raise TypeError("controls are not a list")
    return VantageChange(
        at=_finite(at),
        state=VantageState(state).value,
        previous=VantageState(previous).value,
        reason=str(reason),
        controls=tuple(ControlReading.from_dict(c) for c in items),
    )


def decode_reference(rec: Sequence[Any]) -> ReferenceObservation:
    reference, target, observed, relied, success, failure, stage, destination, facts = rec
    return ReferenceObservation(
        reference=str(reference),
        target=str(target),
        observed_at=_finite(observed),
        relied_at=_finite(relied),
        success=bool(success),
        failure=_enum(failure, Failure),
        stage=_enum(stage, Stage),
        destination=str(destination) if destination is not None else None,
        facts=_facts(facts),
    )


def decode_verdict(rec: Sequence[Any]) -> VerdictChange:
    (at, target, kind, grp, role, verdict, technique, prev_verdict, prev_technique, failure, stage) = rec[:11]
    evidence, facts, compared = rec[11], rec[12], rec[13]
    reference = decode_reference(rec[14:]) if rec[14] is not None else None
    return VerdictChange(
        at=_finite(at),
        target=str(target),
        kind=str(kind),
        group=str(grp),
        role=str(role),
        verdict=Verdict(verdict).value,
        technique=_enum(technique, Technique),
        previous_verdict=Verdict(prev_verdict).value,
        previous_technique=_enum(prev_technique, Technique),
        failure=_enum(failure, Failure),
        stage=_enum(stage, Stage),
        evidence=_enum(evidence, Technique),
        facts=_facts(facts),
        reference=reference,
        compared=_facts(compared) if compared is not None else {},
    )


# --- the verdict engine's observation -> a record ----------------------------------------------------


def _known(vocabulary: type[Failure] | type[Stage], value: Any) -> str | None:
    """A vocabulary value, or ``None`` for one this version does not know (the record stays readable)."""
    if value is None:
        return None
    try:
        return vocabulary(str(getattr(value, "value", value))).value
    except ValueError:
        return None


def observation_record(obs: Any, target: str, relied_at: float) -> ReferenceObservation | None:
    """The reference observation a verdict kept (``TargetState.reference_observation``, issue 12) as a
    journal record; ``None`` when there is none or it lacks a reference name, a time or an outcome.

    Read by attribute so the verdict engine's type stays its own: a name (``reference``), a time
    (``observed_at``), ``success``, and optionally ``failure``, ``stage``, ``destination``, ``facts``.
    """
    if obs is None:
        return None
    if isinstance(obs, Mapping):
        get = obs.get
    else:

        def get(key: str, default: Any = None) -> Any:
            return getattr(obs, key, default)

    name = next((get(k) for k in _OBS_NAME_FIELDS if isinstance(get(k), str)), None)
    when = next((get(k) for k in _OBS_TIME_FIELDS if isinstance(get(k), int | float)), None)
    success = get("success")
    if name is None or when is None or not isinstance(success, bool) or not math.isfinite(when):
        return None
    facts = get("facts") or {}
    failure, stage = get("failure"), get("stage")
    destination = get("destination")
    return ReferenceObservation(
        reference=name,
        target=str(get("target") or target),
        observed_at=float(when),
        relied_at=relied_at,
        success=success,
        failure=_known(Failure, failure),
        stage=_known(Stage, stage),
        destination=str(destination) if destination is not None else None,
        facts=dict(facts) if isinstance(facts, Mapping) else {},
    )


# --- built from the daemon's state at the moment of a decision ----------------------------------------


def vantage_change(store: StateStore, previous: VantageState, at: float) -> VantageChange:
    """The store's (new) vantage state with every control's latest attempt: what decided it."""
    controls = []
    for state in sorted(store.controls(), key=lambda s: (s.role or "", s.name)):
        last = state.last
        controls.append(
            ControlReading(
                name=state.name,
                role=state.role or "international",
                started_at=last.started_at if last is not None else None,
                success=last.success if last is not None else None,
                failure=last.failure.value if last is not None and last.failure else None,
                stage=last.stage.value if last is not None and last.stage else None,
            )
        )
    return VantageChange(
        at=at,
        state=store.vantage_state.value,
        previous=previous.value,
        reason=store.vantage_reason,
        controls=tuple(controls),
    )


def relied_reference(state: TargetState, at: float) -> ReferenceObservation | None:
    """The reference observation the latest outcome relied on (``Outcome.reference``: the verdict engine
    keeps it when a reference made the attempt ``blocked``: a forged reset, a throttle, a cut flow)."""
    outcome = state.last_outcome
    if outcome is None:
        return None
    return observation_record(outcome.reference, state.name, at)


def verdict_change(
    state: TargetState,
    result: ProbeResult,
    previous: tuple[Verdict, Technique | None],
    reference: ReferenceObservation | None,
) -> VerdictChange:
    """The target's (new) confirmed verdict, the one before, and the confirming attempt's evidence."""
    return VerdictChange(
        at=result.started_at,
        target=state.name,
        kind=state.target.kind,
        group=state.target.group,
        role=state.role_label,
        verdict=state.verdict.value,
        technique=state.technique.value if state.technique else None,
        previous_verdict=previous[0].value,
        previous_technique=previous[1].value if previous[1] else None,
        failure=result.failure.value if result.failure else None,
        stage=result.stage.value if result.stage else None,
        evidence=result.evidence.value if result.evidence else None,
        facts=dict(result.facts),
        reference=reference,
        compared=dict(state.last_outcome.evidence) if state.last_outcome is not None else {},
    )
