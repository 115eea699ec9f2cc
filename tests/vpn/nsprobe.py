"""Worker that runs probes inside a test network namespace: one JSON request per stdin line.

``ip netns exec <client ns> python -m tests.vpn.nsprobe`` reads ``{"kind", "target", "timeout"}`` lines,
runs the real probe (same process and one ``Services`` for every line, so the "answered before" memory
and WireGuard timestamps carry over, as in the daemon) and prints one line:
``RESULT <ProbeResult.to_dict() as JSON>``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, Services, run_probe


async def main() -> None:
    services = Services()
    for line in sys.stdin:
        req = json.loads(line)
        spec = PROBES[req["kind"]]
        target = spec.target_model.model_validate(req["target"])
        ctx = ProbeContext(
            target=target.name,
            kind=spec.kind,
            timeout=float(req["timeout"]),
            base_dir=Path.cwd(),
            services=services,
        )
        result = await run_probe(spec, target, ctx)
        print("RESULT " + json.dumps(result.to_dict()), flush=True)  # logs may share stdout


if __name__ == "__main__":
    asyncio.run(main())
