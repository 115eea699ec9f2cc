"""Running one probe attempt from a plain dict, through the real registry, model and runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reachwatch.model import ProbeResult
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, run_probe


async def run(target: dict[str, Any], *, timeout: float = 5.0, base_dir: Path | None = None) -> ProbeResult:
    """Validate ``target`` with its kind's model and run one attempt through the real runner."""
    spec = PROBES[target["kind"]]
    model = spec.target_model.model_validate({"name": "t", **target})
    ctx = ProbeContext(
        target=model.name,
        kind=model.kind,
        timeout=timeout,
        private=model.private,
        base_dir=base_dir or Path.cwd(),
    )
    return await run_probe(spec, model, ctx)
