"""Event-loop lag: how much later than asked the loop runs a task that slept.

Why it matters: every probe's timing (connect and handshake durations, deadlines) is taken on this loop.
A loop stalled by a blocking call makes probes time out that would have succeeded and inflates the
durations dashboards show, and it stalls scrapes. ``LoopLagMonitor`` sleeps ``interval`` over and over
and records the oversleep in a histogram (``reachwatch_event_loop_lag_seconds``), so a stall shows up
on the dashboard and in the soak's figures (bench/soak.py) instead of as mysterious timeouts.
"""

from __future__ import annotations

import asyncio
import bisect

BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
DEFAULT_INTERVAL = 0.25


class LoopLagMonitor:
    """A histogram of event-loop lag, fed by ``run`` (one sample per ``interval``)."""

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self.interval = interval
        self.bucket_counts = [0] * (len(BUCKETS) + 1)  # per bucket, the last one above every bound
        self.total = 0.0
        self.count = 0

    def observe(self, lag: float) -> None:
        lag = max(0.0, lag)
        self.bucket_counts[bisect.bisect_left(BUCKETS, lag)] += 1
        self.total += lag
        self.count += 1

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, count)`` pairs as Prometheus histograms carry them, ``+Inf`` last."""
        out: list[tuple[str, int]] = []
        running = 0
        for bound, n in zip((*map(str, BUCKETS), "+Inf"), self.bucket_counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            before = loop.time()
            await asyncio.sleep(self.interval)
            self.observe(loop.time() - before - self.interval)
