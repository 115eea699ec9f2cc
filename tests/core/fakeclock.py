"""Run ``reachwatch`` with a compressed wall clock: ``time.time()`` runs ``SCALE`` times faster.

    python fakeclock.py REAL0 FAKE0 SCALE reachwatch-arguments...

From the real instant ``REAL0`` on, ``time.time()`` answers ``FAKE0 + (real - REAL0) * SCALE``; two
processes started with the same three numbers share one fake clock (the in-country daemon and its
reference vantage agree on "now"). Only the wall clock changes: sleeps, timeouts and the event loop use
the monotonic clock, so a "10-minute interval" in fake time is written in the config as its real
length. Everything the daemon journals (attempt starts, decisions) is in fake time, so several evenings
pass in a minute; the journal, incident and report code that reads it is the shipped code, unchanged.
"""

from __future__ import annotations

import sys
import time


def main() -> int:
    real0, fake0, scale = (float(a) for a in sys.argv[1:4])
    real_time = time.time

    def fake_time() -> float:
        return fake0 + (real_time() - real0) * scale

    time.time = fake_time  # before reachwatch is imported: every module sees the fake clock
    from reachwatch.cli import main as reachwatch_main  # noqa: PLC0415 - after the patch, on purpose

    return reachwatch_main(sys.argv[4:])


if __name__ == "__main__":
    sys.exit(main())
