"""Running one probe attempt from a plain dict, through the real registry, model and runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reachwatch.model import ProbeResult
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, Services, run_probe


async def run(
    target: dict[str, Any],
    *,
    timeout: float = 5.0,
    base_dir: Path | None = None,
    services: Services | None = None,
) -> ProbeResult:
    """Validate ``target`` with its kind's model and run one attempt through the real runner.

    Each call is a run of its own (fresh ``Services``, so nothing remembered) unless ``services`` is
    given: pass one to several calls to play attempts of the same daemon."""
    spec = PROBES[target["kind"]]
    model = spec.target_model.model_validate({"name": "t", **target})
    ctx = ProbeContext(
        target=model.name,
        kind=model.kind,
        timeout=timeout,
        private=model.private,
        base_dir=base_dir or Path.cwd(),
        services=services or Services(),
    )
    return await run_probe(spec, model, ctx)
