"""The measurement record: what one probe attempt observed.

A ``ProbeResult`` is data, not an exception: a timeout, a reset or a substituted certificate are all
results. It is produced by ``probes.base.run_probe`` and consumed by the verdict engine, the journal, the
metrics collector and the API, so it carries only bounded, redaction-safe values: the target's *name*
(never its address), enum values, numbers and short facts chosen by the probe.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reachwatch.failures import Failure, Stage, Technique

# Facts are small typed observations (HTTP status, TLS issuer, bytes, throughput). They are exported to the
# API and journal; probes must not put addresses of private targets in them (see ProbeContext.fact).
FactValue = str | int | float | bool | list[str]

LOCAL_CAUSE_FACT = "local_cause"
"""Fact naming a cause on our side of a failure (e.g. ``clock_skew``): the verdict engine never turns such
a failure into ``blocked``, whatever a reference vantage saw."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One attempt against one target."""

    target: str
    kind: str
    started_at: float  # unix seconds
    duration_s: float
    success: bool
    failure: Failure | None = None
    stage: Stage | None = None
    # local evidence of a technique seen by the probe itself (a substituted certificate, DNS answers that
    # disagree with DoH, a block page, a throttled transfer); the verdict engine decides what it means.
    evidence: Technique | None = None
    stage_durations: dict[str, float] = field(default_factory=dict)
    facts: dict[str, FactValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.success and self.failure is not None:
            raise ValueError("a successful result cannot carry a failure")
        if not self.success and self.failure is None:
            raise ValueError("a failed result needs a failure value")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form used by the API, the journal and ``reachwatch check --json``."""
        return {
            "target": self.target,
            "kind": self.kind,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 6),
            "success": self.success,
            "failure": self.failure.value if self.failure else None,
            "stage": self.stage.value if self.stage else None,
            "evidence": self.evidence.value if self.evidence else None,
            "stage_durations": {k: round(v, 6) for k, v in self.stage_durations.items()},
            "facts": dict(self.facts),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProbeResult:
        """Inverse of ``to_dict`` (journal replay, reference vantage)."""
        return cls(
            target=str(data["target"]),
            kind=str(data["kind"]),
            started_at=float(data["started_at"]),
            duration_s=float(data["duration_s"]),
            success=bool(data["success"]),
            failure=Failure(data["failure"]) if data.get("failure") else None,
            stage=Stage(data["stage"]) if data.get("stage") else None,
            evidence=Technique(data["evidence"]) if data.get("evidence") else None,
            stage_durations={str(k): float(v) for k, v in (data.get("stage_durations") or {}).items()},
            facts=dict(data.get("facts") or {}),
        )


# A reference's fact values are bounded before they are kept: a lying or broken reference must not make
# us hold megabytes per target (the whole status document is already bounded by the reference client).
MAX_FACT_TEXT = 512
MAX_FACT_ITEMS = 32


def bounded_facts(raw: Any) -> dict[str, FactValue]:
    """The facts of a foreign document, kept only when they have a fact's shape and size.

    Scalars (str/int/float/bool) and short lists of short strings; strings over ``MAX_FACT_TEXT`` and
    non-finite floats are dropped (``NaN`` would pass every comparison the verdict makes).
    """
    facts: dict[str, FactValue] = {}
    if not isinstance(raw, dict):
        return facts
    for key, value in raw.items():
        if not isinstance(key, str) or len(key) > 64 or len(facts) >= 4 * MAX_FACT_ITEMS:
            continue
        if isinstance(value, bool | int):
            facts[key] = value
        elif isinstance(value, float):
            if math.isfinite(value):
                facts[key] = value
        elif isinstance(value, str):
            if len(value) <= MAX_FACT_TEXT:
                facts[key] = value
        elif (
            isinstance(value, list)
            and len(value) <= MAX_FACT_ITEMS
            and all(isinstance(v, str) and len(v) <= MAX_FACT_TEXT for v in value)
        ):
            facts[key] = list(value)
    return facts


@dataclass(frozen=True, slots=True)
class Observation:
    """What a reference vantage outside the country saw of one target: its latest attempt, as it reported it.

    The verdict engine compares it with our own attempt (did the reference reach the same server, move the
    same data, see the same certificate and the same DNS answers?); the outcome keeps the observation it
    relied on, so the journal can show *why* a target was called blocked. ``failure``/``stage`` are ``None``
    when the reference used a value this version does not know (it may run a newer reachwatch).
    """

    reference: str  # the reference vantage's configured name
    target: str  # the target's name at the reference
    observed_at: float  # its attempt's started_at (unix seconds)
    success: bool
    failure: Failure | None = None
    stage: Stage | None = None
    destination: str | None = None  # the destination the reference probed, when it said (protocol v2)
    kind: str | None = None  # the reference's kind for the target (protocol v2)
    facts: dict[str, FactValue] = field(default_factory=dict)
    stage_durations: dict[str, float] = field(default_factory=dict)
    version: int = 1  # the reference protocol the observation came in
    signed: bool = False  # whether a pinned key's signature covered it

    def fact_number(self, key: str) -> float | None:
        """A numeric fact (bools are not numbers here), or ``None``."""
        return number_fact(self.facts, key)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for the API and the journal."""
        return {
            "reference": self.reference,
            "target": self.target,
            "observed_at": self.observed_at,
            "success": self.success,
            "failure": self.failure.value if self.failure else None,
            "stage": self.stage.value if self.stage else None,
            "destination": self.destination,
            "kind": self.kind,
            "facts": dict(self.facts),
            "stage_durations": dict(self.stage_durations),
            "version": self.version,
            "signed": self.signed,
        }


def number_fact(facts: Mapping[str, FactValue], key: str) -> float | None:
    """``facts[key]`` as a finite number, or ``None`` (absent, a bool, text, NaN)."""
    value = facts.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None
