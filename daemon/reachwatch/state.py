"""Current state of every target and of the vantage: what metrics, the API and ``check`` render.

The store holds data only; deciding verdicts is ``verdict.py``'s job and scheduling is
``scheduler.py``'s. Everything here is rendered at scrape time, so a target removed by a reload simply
disappears from ``/metrics`` (``StateStore.retain``).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from reachwatch.config.types import TargetBase
from reachwatch.failures import Failure, Stage, Technique, VantageState, Verdict
from reachwatch.model import FactValue, Observation, ProbeResult

# how many recent outcomes are kept per target (k-of-n confirmation)
RECENT = 20
# upper bounds of the cut-point histogram (``reachwatch_probe_transfer_bytes``): 1 KiB to 8 MiB, doubling,
# so a censor's threshold (Russia's 15-20 KB, Kazakhstan's ~50 KB) lands in a bucket of its own scale
CUT_BUCKETS: tuple[int, ...] = tuple(1024 * 2**i for i in range(14))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one attempt says on its own, judged in its context (vantage state, reference vantage).

    The confirmed verdict (``TargetState.verdict``) moves only when enough recent outcomes agree
    (``verdict.confirm``). Two outcomes are equal when verdict and technique are: ``reference`` (the
    reference observation the verdict relied on, for the journal) and ``evidence`` (the figures compared,
    e.g. both throughputs of a ``throttled``) explain an outcome, they do not make it a different one.
    """

    verdict: Verdict
    technique: Technique | None = None
    reference: Observation | None = field(default=None, compare=False)
    # read-only once built: outcomes with no reference and no figures are shared (``plain_outcome``)
    evidence: dict[str, FactValue] = field(default_factory=dict, compare=False)


# one shared instance per (verdict, technique) for outcomes that carry nothing else: a target keeps its
# last RECENT outcomes, and a fresh one per attempt (with its own empty dict) cost ~2.7 kB a target
_PLAIN_OUTCOMES: dict[tuple[Verdict, Technique | None], Outcome] = {}


def plain_outcome(verdict: Verdict, technique: Technique | None = None) -> Outcome:
    """The shared ``Outcome(verdict, technique)`` with no reference and no evidence figures."""
    outcome = _PLAIN_OUTCOMES.get((verdict, technique))
    if outcome is None:
        outcome = _PLAIN_OUTCOMES[(verdict, technique)] = Outcome(verdict, technique)
    return outcome


@dataclass
class CutPoints:
    """Counts of the byte counts at which data stages were cut (the ``cut_after_bytes`` fact), per bucket
    of ``CUT_BUCKETS`` plus one for larger cuts; summed per group and kind at scrape time."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(CUT_BUCKETS) + 1))
    total: int = 0
    sum: float = 0.0

    def observe(self, cut_bytes: int) -> None:
        index = next((i for i, bound in enumerate(CUT_BUCKETS) if cut_bytes <= bound), len(CUT_BUCKETS))
        self.counts[index] += 1
        self.total += 1
        self.sum += cut_bytes


@dataclass(slots=True)
class TargetState:
    """What we know about one target right now.

    Kept small (slots, no history of results: the journal has it): a daemon holds one per target, and
    20 kept results cost ~10 kB a target, 100 MB at 10,000 targets (bench/lean.py).
    """

    target: TargetBase
    role: str | None = None  # "domestic" / "international" for controls, None for ordinary targets
    last: ProbeResult | None = None
    verdict: Verdict = Verdict.UNKNOWN
    technique: Technique | None = None
    verdict_since: float = field(default_factory=time.time)
    probes_total: int = 0
    failures_total: Counter[tuple[Stage | None, Failure]] = field(default_factory=Counter)
    # the reference observation consulted for the latest attempt (None: no reference asked, none fresh);
    # the one a verdict relied on is also on that attempt's outcome (``last_outcome.reference``)
    reference_observation: Observation | None = None
    # per-attempt outcomes, oldest first (input of k-of-n confirmation)
    outcomes: deque[Outcome] = field(default_factory=lambda: deque(maxlen=RECENT))
    # where this target's data stages were cut (``reachwatch_probe_transfer_bytes``)
    cuts: CutPoints = field(default_factory=CutPoints)

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def role_label(self) -> str:
        """Label value for metrics: ``target``, ``domestic_control`` or ``international_control``."""
        return f"{self.role}_control" if self.role else "target"

    @property
    def reference_success(self) -> bool | None:
        """Whether the consulted reference reached the target (None: no fresh observation)."""
        return None if self.reference_observation is None else self.reference_observation.success

    @property
    def last_outcome(self) -> Outcome | None:
        """The latest attempt's own outcome (unconfirmed); what a one-shot ``check`` reports."""
        return self.outcomes[-1] if self.outcomes else None

    @property
    def unconfirmed(self) -> bool:
        """True while the latest outcome disagrees with the confirmed verdict.

        The scheduler then retries after ``confirmation.residual_window`` instead of a full interval.
        """
        last = self.last_outcome
        return last is not None and (last.verdict, last.technique) != (self.verdict, self.technique)

    def record(self, result: ProbeResult) -> None:
        """Count one attempt and keep it as the latest (counters feed the ``*_total`` metrics)."""
        self.probes_total += 1
        if not result.success and result.failure is not None:
            self.failures_total[(result.stage, result.failure)] += 1
        cut = result.facts.get("cut_after_bytes")
        if isinstance(cut, int) and not isinstance(cut, bool) and cut >= 0:
            self.cuts.observe(cut)
        self.last = result


@dataclass
class StateStore:
    """All target states plus the vantage state, keyed by target name."""

    targets: dict[str, TargetState] = field(default_factory=dict)
    vantage_state: VantageState = VantageState.UNKNOWN
    vantage_since: float = field(default_factory=time.time)
    # why the vantage state is what it is, in words (e.g. "no controls configured"), for logs and the API
    vantage_reason: str = "no control results yet"
    # names of the states that have a role: the vantage is recomputed after every result, and finding
    # the few controls by scanning every target made a sweep of N targets cost N²/2 steps (10,000
    # targets: ~0.2 ms a probe, bench/sweep.py). Entries whose state left ``targets`` are skipped.
    _control_names: dict[str, None] = field(default_factory=dict, repr=False)

    def ensure(self, target: TargetBase, role: str | None) -> TargetState:
        """The state for ``target``, created on first sight; a reload keeps history when the name stays."""
        state = self.targets.get(target.name)
        if state is None:
            state = TargetState(target=target, role=role)
            self.targets[target.name] = state
        else:
            state.target = target
            state.role = role
        if role is None:
            self._control_names.pop(target.name, None)
        else:
            self._control_names[target.name] = None
        return state

    def retain(self, names: set[str]) -> None:
        """Forget targets that are no longer configured (their series vanish from /metrics)."""
        for name in list(self.targets):
            if name not in names:
                del self.targets[name]
        for name in list(self._control_names):
            if name not in names:
                del self._control_names[name]

    def controls(self) -> Iterator[TargetState]:
        """The states of the configured controls (domestic and international)."""
        for name in self._control_names:
            state = self.targets.get(name)
            if state is not None and state.role is not None:
                yield state

    def set_vantage(self, state: VantageState, reason: str | None = None) -> bool:
        """Update the vantage state (and its reason when given); True when the state changed."""
        if reason is not None:
            self.vantage_reason = reason
        if state is self.vantage_state:
            return False
        self.vantage_state = state
        self.vantage_since = time.time()
        return True
