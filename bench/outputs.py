"""Cost of the daemon's outputs at scale: one /metrics render, journal append throughput, one export.

    .venv/bin/python bench/outputs.py [N_TARGETS]

Prints: /metrics render time and size for N targets (each with a result; what the web handler serves,
text and OpenMetrics), journal rows/s through the
writer thread (committed, synchronous=FULL), and OpenMetrics export time for those rows.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from reachwatch.config.load import parse_config
from reachwatch.exposition import encode
from reachwatch.failures import Failure, Stage
from reachwatch.journal import Journal, JournalRow, export
from reachwatch.metrics import DaemonStatus, build_registry
from reachwatch.model import ProbeResult
from reachwatch.state import StateStore


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    text = "targets:\n" + "".join(
        f"  - {{name: t{i}, kind: tcp, host: 127.0.0.1, port: {1 + i % 60000}}}\n" for i in range(n)
    )
    cfg = parse_config(text, "bench.yaml", Path.cwd()).config
    store = StateStore()
    now = time.time()
    results = []
    for i, t in enumerate(cfg.targets):
        st = store.ensure(t, None)
        ok = i % 2 == 0
        r = ProbeResult(
            target=t.name,
            kind="tcp",
            started_at=now - i,
            duration_s=0.01,
            success=ok,
            failure=None if ok else Failure.GENERIC_TIMEOUT_ERROR,
            stage=None if ok else Stage.CONNECT,
            stage_durations={"resolve": 0.0, "connect": 0.01},
        )
        st.record(r)
        results.append(r)
    registry = build_registry(store, DaemonStatus(config=cfg))
    for fmt, accept in (("text", ""), ("openmetrics", "application/openmetrics-text; version=1.0.0")):
        encode(registry, accept)  # first scrape builds the per-target label sets
        t0 = time.perf_counter()
        body, _ = encode(registry, accept)
        render = time.perf_counter() - t0
        print(f"metrics ({fmt}): {n} targets -> {len(body) / 1e6:.1f} MB, render {render * 1000:.0f} ms")

    with tempfile.TemporaryDirectory() as tmp:
        j = Journal(Path(tmp), retention=1e9)
        t0 = time.perf_counter()
        for r in results:
            j.append(
                JournalRow(result=r, group="default", role="target", verdict="reachable", technique=None)
            )
        append = time.perf_counter() - t0
        j.flush()
        total = time.perf_counter() - t0
        j.close()
        print(
            f"journal: {n} rows appended in {append * 1000:.0f} ms (event-loop side),"
            f" committed {n / total:.0f} rows/s"
        )
        t0 = time.perf_counter()
        size = sum(len(line) for line in export(Path(tmp), 0, now + 1, "openmetrics"))
        print(f"export openmetrics: {size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
