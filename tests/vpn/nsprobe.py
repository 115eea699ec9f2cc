"""Worker that runs probes inside a test network namespace: one JSON request per stdin line.

``ip netns exec <client ns> python -m tests.vpn.nsprobe`` reads ``{"kind", "target", "timeout"}`` lines,
runs the real probe (same process and one ``Services`` for every line, so the "answered before" memory
and WireGuard timestamps carry over, as in the daemon) and prints one line:
``RESULT <ProbeResult.to_dict() as JSON>``.

A request may carry ``"tor": {"config": {...TorConfig...}, "client_options": {...}}``: the Tor probes then
get a ``TorService`` built from it (kept for later requests with the same settings, like the daemon's),
so the supervised tor, its SocksPort and the probe all live in this namespace.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from reachwatch.app import run_async
from reachwatch.config.schema import TorConfig
from reachwatch.probes import PROBES
from reachwatch.probes.base import ProbeContext, Services, run_probe
from reachwatch.tor.service import TorService


async def main() -> None:
    services = Services()
    tors: dict[str, TorService] = {}
    try:
        for line in sys.stdin:
            req = json.loads(line)
            spec = PROBES[req["kind"]]
            target = spec.target_model.model_validate(req["target"])
            if "tor" in req:
                key = json.dumps(req["tor"], sort_keys=True)
                if key not in tors:
                    config = TorConfig.model_validate(req["tor"]["config"])
                    tors[key] = TorService.from_config(config, req["tor"].get("client_options"))
                    tors[key].tester.gather_window = 0.2
                services.tor = tors[key]
            ctx = ProbeContext(
                target=target.name,
                kind=spec.kind,
                timeout=float(req["timeout"]),
                base_dir=Path.cwd(),
                services=services,
            )
            result = await run_probe(spec, target, ctx)
            print("RESULT " + json.dumps(result.to_dict()), flush=True)  # logs may share stdout
    finally:
        for tor in tors.values():
            await tor.close()


if __name__ == "__main__":
    run_async(main())  # the daemon's loop (uvloop when installed): a probe must work on what the daemon runs
