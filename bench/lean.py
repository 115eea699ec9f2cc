"""How lean the daemon is, every goal of issue 9 measured in one run.

    .venv/bin/python bench/lean.py                       # startup, validate, daemon RSS, modules
    .venv/bin/python bench/lean.py --tree ../other/tree  # the same for another checkout (before/after)
    sudo flock /work/.heavy.lock .venv/bin/python bench/lean.py --sweep 10000   # + bench/sweep.py

Prints, for the tree under test:
- ``reachwatch --help`` and ``reachwatch validate`` (the embedded default config): median wall time of
  ``--runs`` runs after one warm-up (warm page cache, like a user typing the command twice);
- modules imported by ``--help`` (``import reachwatch.cli``) and by the running daemon;
- the daemon's peak RSS (VmHWM) on the embedded default config, read after ``--settle`` seconds and one
  /metrics scrape. The default config probes public endpoints; this machine has no Internet, so every
  attempt fails fast (no route / DNS): realistic for memory, as a censored vantage sees the same;
- one /metrics render for ``--targets`` targets (bench/outputs.py);
- what the scheduler's state keeps per target after 20 results each, and what each target's task
  costs while it waits for its turn (the daemon's steady state; a sweep sees one result per target);
- with ``--sweep N``: bench/sweep.py at N TLS endpoints beside blackbox_exporter (root, both cores),
  whose RSS and CPU-per-probe ratios are the last two goals.

Each command runs as ``python -c "from reachwatch.cli import main; main()"`` with ``PYTHONPATH`` set to
the tree's ``daemon/`` folder, so two checkouts are measured by the same interpreter and packages.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLI = "import sys; from reachwatch.cli import main; sys.exit(main())"
# the daemon, reporting how many modules it holds once it has settled (a thread, so the loop runs on)
DAEMON = r"""
import sys, threading, time
from pathlib import Path
out, settle = Path(sys.argv.pop(1)), float(sys.argv.pop(1))
def report():
    time.sleep(settle)
    mods = list(sys.modules)
    out.write_text(f"{len(mods)} {sum(m.split('.')[0] == 'reachwatch' for m in mods)}")
threading.Thread(target=report, daemon=True).start()
from reachwatch.cli import main
sys.exit(main())
"""

STATE = r"""
import asyncio, sys, time, tracemalloc
from pathlib import Path
from reachwatch.config.load import parse_config
from reachwatch.failures import Failure, Stage
from reachwatch.model import ProbeResult
from reachwatch.scheduler import Scheduler
from reachwatch.state import StateStore

n, rounds = int(sys.argv[1]), int(sys.argv[2])
text = "defaults: {interval: 1h}\ntargets:\n" + "".join(
    f"  - {{name: t{i}, kind: tls, host: 127.0.{i // 250 % 250}.{i % 250 + 1}, port: 443}}\n"
    for i in range(n)
)
loaded = parse_config(text, "bench.yaml", Path.cwd())

async def main() -> None:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    sched = Scheduler(loaded, StateStore())
    for k in range(rounds):
        for i, t in enumerate(loaded.config.targets):
            ok = (i + k) % 3 != 0
            await sched.record(t, None, ProbeResult(
                target=t.name, kind="tls", started_at=time.time(), duration_s=0.01, success=ok,
                failure=None if ok else Failure.GENERIC_TIMEOUT_ERROR, stage=None if ok else Stage.CONNECT,
                stage_durations={"resolve": 0.0, "connect": 0.01, "tls_handshake": 0.002},
                facts={"ip": "127.0.0.1", "tls_version": "TLSv1.3"} if ok else {"ip": "127.0.0.1"}))
    kept = tracemalloc.get_traced_memory()[0]
    sched.start()  # one task per target, each asleep until its first attempt (interval 1 h)
    await asyncio.sleep(1.0)
    print((kept - before) / n, (tracemalloc.get_traced_memory()[0] - kept) / n)
    await sched.drain(10)

asyncio.run(main())
"""

GOALS = {
    "help_s": 0.3,
    "daemon_rss_mb": 55.0,
    "render_s": 0.5,
    "sweep_rss_ratio": 1.1,
    "sweep_cpu_ratio": 0.6,
}


def _env(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree / "daemon")}


def median_wall(argv: list[str], env: dict[str, str], runs: int) -> float:
    subprocess.run(argv, env=env, capture_output=True, check=False)  # warm-up
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, capture_output=True, check=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cli_modules(env: dict[str, str]) -> tuple[int, int]:
    code = (
        "import sys, reachwatch.cli; m = list(sys.modules);"
        "print(len(m), sum(x.split('.')[0] == 'reachwatch' for x in m))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    total, ours = out.stdout.split()
    return int(total), int(ours)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _status_kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


def daemon_rss(env: dict[str, str], settle: float) -> dict[str, float]:
    """Run the daemon on the embedded default config; peak RSS after ``settle`` s and one scrape."""
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        modules = Path(tmp) / "modules"
        argv = [sys.executable, "-c", DAEMON, str(modules), str(settle), "run"]
        argv += ["--state-dir", str(Path(tmp) / "state"), "--web.listen-address", f"127.0.0.1:{port}"]
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + settle + 30
            while not modules.exists() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.5)
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with {proc.returncode}")
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
                scrape = len(resp.read())
            total, ours = (int(x) for x in modules.read_text().split())
            return {
                "daemon_rss_mb": _status_kb(proc.pid, "VmHWM") / 1024,
                "daemon_rss_now_mb": _status_kb(proc.pid, "VmRSS") / 1024,
                "daemon_modules": total,
                "daemon_our_modules": ours,
                "scrape_bytes": scrape,
            }
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def render_time(env: dict[str, str], tree: Path, targets: int) -> float:
    out = subprocess.run(
        [sys.executable, str(tree / "bench" / "outputs.py"), str(targets)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # bench/outputs.py names the text format when it renders both; older trees print one line
    match = re.search(r"^metrics(?: \(text\))?: .* render (\d+) ms", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"no render time in bench/outputs.py output:\n{out}")
    return int(match.group(1)) / 1000


def state_per_target(env: dict[str, str], targets: int, rounds: int) -> tuple[float, float]:
    """Bytes per target (tracemalloc): the state kept after ``rounds`` results each, and a waiting task."""
    out = subprocess.run(
        [sys.executable, "-c", STATE, str(targets), str(rounds)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    state, task = out.split()[-2:]
    return float(state), float(task)


def sweep(env: dict[str, str], endpoints: int) -> dict[str, float]:
    # this tree's sweep script (it reports the ratios) against the tree under test's daemon code
    out = subprocess.run(
        [sys.executable, str(HERE / "sweep.py"), "--endpoints", str(endpoints), "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    print(out.rsplit("\n{", 1)[0])
    return {f"sweep_{k}": v for k, v in json.loads(out.strip().splitlines()[-1]).items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--tree", type=Path, default=HERE.parent, help="checkout to measure (default: this one)")
    ap.add_argument("--runs", type=int, default=9, help="runs per command for the median")
    ap.add_argument("--settle", type=float, default=40.0, help="seconds before reading the daemon's RSS")
    ap.add_argument("--targets", type=int, default=10_000, help="targets for the /metrics render")
    ap.add_argument("--sweep", type=int, default=0, metavar="N", help="also bench/sweep.py at N endpoints")
    args = ap.parse_args()
    tree = args.tree.resolve()
    env = _env(tree)
    commit = subprocess.run(
        ["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(f"tree: {tree} ({commit})")
    cli = [sys.executable, "-c", CLI]
    res: dict[str, float] = {
        "help_s": median_wall([*cli, "--help"], env, args.runs),
        "validate_s": median_wall([*cli, "validate"], env, args.runs),
    }
    res["help_modules"], res["help_our_modules"] = cli_modules(env)
    res.update(daemon_rss(env, args.settle))
    res["render_s"] = render_time(env, tree, args.targets)
    res["state_bytes_per_target"], res["waiting_task_bytes_per_target"] = state_per_target(
        env, args.targets, rounds=20
    )
    if args.sweep:
        res.update(sweep(env, args.sweep))
    print(f"{'measure':<34}{'value':>12}  goal")
    for key, value in res.items():
        goal = GOALS.get(key)
        verdict = "" if goal is None else f"<= {goal:g} {'met' if value <= goal else 'NOT met'}"
        shown = f"{value:.0f}" if float(value).is_integer() or value >= 100 else f"{value:.3f}"
        print(f"{key:<34}{shown:>12}  {verdict}")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
