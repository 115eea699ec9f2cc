"""The measurement record: what one probe attempt observed.

A ``ProbeResult`` is data, not an exception: a timeout, a reset or a substituted certificate are all
results. It is produced by ``probes.base.run_probe`` and consumed by the verdict engine, the journal, the
metrics collector and the API, so it carries only bounded, redaction-safe values: the target's *name*
(never its address), enum values, numbers and short facts chosen by the probe.
"""

from __future__ import annotations

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
