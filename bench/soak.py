"""Soak: the real daemon for ~90 minutes on >1,000 targets in a lab network, under reloads, a tor kill
and socket floods; figures for memory, descriptors, event-loop lag and lost attempts.

    sudo .venv/bin/python bench/soak.py [--minutes 90] [--interval 30] [--out /tmp/reachwatch-soak]

Needs root (tests/netlab.py namespaces), tor, curl. The lab: the daemon in the client namespace
("inside the country"), the peers (bench/soak_peers.py) in the server namespace ("abroad"), a censor on
the router that blackholes one address and injects RSTs for another. 1,010 targets: healthy TCP, TLS and
HTTP peers, dead ports, the blackhole, injected resets, peers sending endless bytes, tarpits, resets
after accept, and tor bridges; plus a domestic and an international control. At the default 30 s
interval the run makes 180 attempts per target, more than a day at the default 10 minutes (144).

Events: a reload every 5 minutes (SIGHUP and POST /-/reload in turn; adding and removing 20 targets,
and every fourth one a bad config that must be refused), the daemon's tor killed at half time, and two
socket floods on the listener (30 % and 70 % of the run, 120 s each: thousands of idle connections held
and reopened, some trickling headers).

Figures (printed, and written to OUT/results.json and OUT/soak.png):
- RSS and descriptors every 10 s; RSS growth from the end of warm-up (the first 15 minutes, or a fifth of
  a shorter run) to the end; descriptors outside the floods;
- event-loop lag p99 from the daemon's ``reachwatch_event_loop_lag_seconds`` histogram;
- attempts lost: for every healthy peer, connections it accepted minus the journal rows of its target
  (an attempt that reached its peer but was never recorded); journal rows vs the daemon's own count of
  committed rows at shutdown, and journal write errors.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trustme
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.netlab import ROUTER_INNER_IP, SERVER_IP, Lab  # noqa: E402

PEERS = Path(__file__).with_name("soak_peers.py")
LISTEN = "127.0.0.1:10491"
WARMUP_S = 15 * 60
SAMPLE_S = 10.0
SCRAPE_S = 30.0
RELOAD_S = 300.0
FLOOD_S = 120.0
FLOOD_CONNECTIONS = 3000
# reload churn on ports of its own (a run where it shared tcp-ok's ports counted churn attempts as lost)
CHURN, CHURN_PORT = 20, 20500

# (name prefix, count, kind, address, first port, peer role or None)
HEALTHY = [("tcp-ok", 500, "tcp", 20000, "tcp"), ("tls-ok", 150, "tls", 21000, "tls")]
HEALTHY += [("http-ok", 100, "http", 22000, "http")]
HOSTILE = [
    ("tls-endless", 25, "tls", 23000, "endless"),
    ("tls-tarpit", 25, "tls", 23100, "tarpit"),
    ("tcp-rst", 25, "tcp", 23200, "rst"),
    ("http-endless", 25, "http", 23300, "endless"),
]


@dataclass
class Plan:
    """Targets, peers, and which peer port belongs to which target."""

    blackhole_ip: str
    injected_ip: str
    ca_file: str
    targets: list[dict[str, Any]] = field(default_factory=list)
    peers: list[dict[str, Any]] = field(default_factory=list)
    counted: dict[str, str] = field(default_factory=dict)  # "ip:port" -> target name (healthy peers)


def build_plan(blackhole_ip: str, injected_ip: str, ca_file: str) -> Plan:
    plan = Plan(blackhole_ip, injected_ip, ca_file)

    def target(name: str, kind: str, ip: str, port: int) -> dict[str, Any]:
        group = name.split("-", maxsplit=1)[0]
        if kind == "http":
            return {"name": name, "kind": "http", "url": f"http://{ip}:{port}/", "group": group}
        entry = {"name": name, "kind": kind, "host": ip, "port": port, "group": group}
        if kind == "tls":
            entry["ca_file"] = ca_file
        return entry

    for prefix, n, kind, first, role in HEALTHY + HOSTILE:
        for i in range(n):
            name = f"{prefix}-{i:03d}"
            plan.targets.append(target(name, kind, SERVER_IP, first + i))
            plan.peers.append({"ip": SERVER_IP, "port": first + i, "role": role})
            if role in ("tcp", "tls", "http"):
                plan.counted[f"{SERVER_IP}:{first + i}"] = name
    for i in range(50):
        plan.targets.append(target(f"dead-{i:03d}", "tcp", SERVER_IP, 40000 + i))  # nothing listens
        plan.targets.append(target(f"blackhole-{i:03d}", "tcp", blackhole_ip, 20000 + i))
        plan.targets.append(target(f"injected-{i:03d}", "tls", injected_ip, 443))
    for i in range(10):
        line = f"{SERVER_IP}:{40100 + i} {f'{i:02d}' * 20}"
        # a bridge waits for its batch (tor.batch_timeout 15 s): its deadline must be longer
        bridge = {"name": f"bridge-{i:03d}", "kind": "tor_bridge", "bridge": line, "group": "bridge"}
        bridge["timeout"] = "40s"
        plan.targets.append(bridge)
    plan.peers.append({"ip": SERVER_IP, "port": 20999, "role": "tcp"})  # the international control
    for i in range(CHURN):  # targets reloads add and remove, on peers of their own (counted too)
        plan.peers.append({"ip": SERVER_IP, "port": CHURN_PORT + i, "role": "tcp"})
        plan.counted[f"{SERVER_IP}:{CHURN_PORT + i}"] = f"churn-{i:02d}"
    return plan


def config(plan: Plan, interval: float, *, churn: bool) -> dict[str, Any]:
    targets = list(plan.targets)
    if churn:
        targets += [
            {"name": f"churn-{i:02d}", "kind": "tcp", "host": SERVER_IP, "port": port, "group": "churn"}
            for i, port in enumerate(range(CHURN_PORT, CHURN_PORT + CHURN))
        ]
    return {
        "vantage": {"name": "soak"},
        "defaults": {"interval": f"{interval}s", "timeout": "8s", "jitter": 0.2},
        "scheduler": {
            "max_concurrency": 64,
            "per_destination": 4,
            "min_destination_spacing": "100ms",
            "controls_interval": f"{interval}s",
        },
        "confirmation": {"attempts": 3, "required": 2, "residual_window": "60s"},
        "controls": {
            "domestic": [{"name": "dom", "kind": "tcp", "host": ROUTER_INNER_IP, "port": 9000}],
            "international": [{"name": "intl", "kind": "tcp", "host": SERVER_IP, "port": 20999}],
        },
        "tor": {"batch_size": 10, "batch_timeout": "15s", "bootstrap_timeout": "30s"},
        "log": {"level": "info", "format": "json"},
        "targets": targets,
    }


def write_yaml(path: Path, doc: dict[str, Any] | str) -> None:
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    path.chmod(0o600)


# --- the daemon as seen from outside -------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    try:  # a tor child may be gone between listing and reading (killed, restarting)
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def children(pid: int, comm: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        if ppid == pid and name == comm:
            found.append(int(entry))
    return found


def parse_metrics(text: str) -> dict[str, float]:
    """The daemon-level samples (no per-target series: 150 scrapes of 1,000 targets kept whole took
    500 MB of this script's memory) and the loop-lag buckets."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        wanted = "{" not in line or line.startswith("reachwatch_event_loop")
        if line and not line.startswith("#") and wanted:
            key, _, value = line.rpartition(" ")
            try:
                out[key] = float(value)
            except ValueError:
                continue
    return out


def lag_buckets(metrics: dict[str, float]) -> list[tuple[float, float]]:
    prefix = 'reachwatch_event_loop_lag_seconds_bucket{le="'
    pairs = [(k[len(prefix) : -2], v) for k, v in metrics.items() if k.startswith(prefix)]
    return sorted((math.inf if le == "+Inf" else float(le), v) for le, v in pairs)


def quantile(q: float, buckets: list[tuple[float, float]]) -> float:
    """histogram_quantile over cumulative (le, count) pairs, as Prometheus computes it."""
    if not buckets or buckets[-1][1] == 0:
        return 0.0
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / max(count - lower_count, 1e-9)
        lower_bound, lower_count = bound, count
    return lower_bound


# --- the run -------------------------------------------------------------------------------------------


@dataclass
class Soak:
    lab: Lab
    plan: Plan
    args: argparse.Namespace
    work: Path
    samples: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    scrapes: list[dict[str, Any]] = field(default_factory=list)
    pid: int = 0

    def curl(self, path: str, *, post: bool = False) -> tuple[int, str]:
        argv = ["curl", "-s", "-m", "10", "-o", "-", "-w", "\n%{http_code}"]
        argv += ["-X", "POST"] if post else []
        proc = self.lab.client.run([*argv, f"http://{LISTEN}{path}"], check=False)
        body, _, code = proc.stdout.rpartition("\n")
        return int(code or 0), body

    def event(self, t0: float, what: str, **info: Any) -> None:
        self.events.append({"t": time.time() - t0, "event": what, **info})
        print(f"[{(time.time() - t0) / 60:6.1f} min] {what} {info if info else ''}", flush=True)

    def run(self) -> dict[str, Any]:
        cfg = self.work / "soak.yaml"
        write_yaml(cfg, config(self.plan, self.args.interval, churn=False))
        state = self.work / "state"
        log = (self.work / "daemon.log").open("wb")
        src = self.work / "src"  # a snapshot: edits to the tree during the run must not reach the daemon
        subprocess.run(f"git -C {REPO} archive HEAD daemon | tar -x -C {src}", shell=True, check=True)
        env = {**os.environ, "PYTHONPATH": str(src / "daemon")}
        argv = [sys.executable, "-m", "reachwatch", "run", "--config", str(cfg), "--state-dir", str(state)]
        argv += ["--web.listen-address", LISTEN]
        daemon = self.lab.client.popen(argv, stdout=log, stderr=log, env=env)
        self.pid = daemon.pid
        t0 = time.time()
        end = t0 + self.args.minutes * 60
        floods = [t0 + f * self.args.minutes * 60 for f in (0.3, 0.7)]
        tor_kill = t0 + 0.5 * self.args.minutes * 60
        next_sample = next_scrape = t0
        reload_every = min(RELOAD_S, max(30.0, self.args.minutes * 60 / 8))  # a short run reloads too
        next_reload = t0 + reload_every
        reloads = 0
        flood_proc: subprocess.Popen[bytes] | None = None
        flood_until = 0.0
        while time.time() < end:
            now = time.time()
            if daemon.poll() is not None:
                raise RuntimeError(f"daemon exited with {daemon.returncode}; see {self.work / 'daemon.log'}")
            if now >= next_sample:
                self.sample(t0, flooding=flood_proc is not None)
                next_sample += SAMPLE_S
            if now >= next_scrape and flood_proc is None:
                self.scrape(t0)
                next_scrape += SCRAPE_S
            if now >= next_reload and flood_proc is None:
                # not while a flood holds the listener at its cap: POST /-/reload and the gauge read that
                # checks a reload are connections too (a short run's reloads fell inside its floods)
                self.reload(t0, cfg, reloads)
                reloads += 1
                next_reload = max(next_reload + reload_every, now + reload_every / 2)
            if floods and now >= floods[0] and flood_proc is None:
                floods.pop(0)
                flood_proc = self.flood_start(t0)
                flood_until = now + FLOOD_S + 5
            if flood_proc is not None and (flood_proc.poll() is not None or now > flood_until + 30):
                self.flood_end(t0, flood_proc)
                flood_proc = None
            if tor_kill and now >= tor_kill:
                tor_kill = 0.0
                pids = children(self.pid, "tor")
                for p in pids:
                    os.kill(p, signal.SIGKILL)
                self.event(t0, "tor killed", pids=pids)
            time.sleep(1.0)
        self.scrape(t0)
        final = self.scrapes[-1]["metrics"] if self.scrapes else {}
        daemon.send_signal(signal.SIGTERM)
        rc = daemon.wait(timeout=60)
        log.close()
        self.event(t0, "daemon stopped", rc=rc)
        return {"final_metrics": final, "t0": t0, "rc": rc}

    def sample(self, t0: float, *, flooding: bool) -> None:
        tor = children(self.pid, "tor")
        self.samples.append(
            {
                "t": time.time() - t0,
                "rss_kib": rss_kib(self.pid),
                "fds": fds(self.pid),
                "tor_rss_kib": sum(rss_kib(p) for p in tor),
                "flooding": flooding,
            }
        )

    def scrape(self, t0: float) -> None:
        code, body = self.curl("/metrics")
        if code == 200:
            self.scrapes.append({"t": time.time() - t0, "metrics": parse_metrics(body)})

    def reload(self, t0: float, cfg: Path, n: int) -> None:
        step = n % 4
        if step == 3:
            write_yaml(cfg, "targets: [{name: x, kind: tcp, host: a, port: 1, bogus: 1}]\n")
        else:
            write_yaml(cfg, config(self.plan, self.args.interval, churn=step in (0, 2)))
        via = "SIGHUP" if n % 2 == 0 else "POST"
        if via == "SIGHUP":
            done = self._reloads_logged()
            os.kill(self.pid, signal.SIGHUP)
            deadline = time.time() + 30  # a reload of 1,000 targets took 1-3.5 s on the loaded machine
            while self._reloads_logged() == done and time.time() < deadline:
                time.sleep(0.5)
            code = 0
        else:
            code, _ = self.curl("/-/reload", post=True)
        _, body = self.curl("/metrics")
        ok = parse_metrics(body).get("reachwatch_config_last_reload_successful")
        self.event(t0, "reload", via=via, bad=step == 3, http=code, successful_gauge=ok)

    def _reloads_logged(self) -> int:
        text = (self.work / "daemon.log").read_text(errors="replace")
        return text.count('"config_reloaded"') + text.count('"config_reload_failed"')

    def flood_start(self, t0: float) -> subprocess.Popen[bytes]:
        out = self.work / f"flood-{len(self.events)}.json"
        argv = [sys.executable, __file__, "--role", "flood", "--flood-out", str(out)]
        self.event(t0, "flood start", connections=FLOOD_CONNECTIONS, seconds=FLOOD_S)
        proc = self.lab.client.popen(argv)
        proc.flood_out = out  # type: ignore[attr-defined]
        return proc

    def flood_end(self, t0: float, proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        out: Path = proc.flood_out  # type: ignore[attr-defined]
        stats = json.loads(out.read_text()) if out.exists() else {}
        self.event(t0, "flood end", **stats)


# --- the flood (runs in the client namespace) -----------------------------------------------------------


def flood(out: Path, seconds: float = FLOOD_S, connections: int = FLOOD_CONNECTIONS) -> None:
    import asyncio  # noqa: PLC0415
    import resource  # noqa: PLC0415

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    host, port = LISTEN.rsplit(":", 1)
    stats = {"attempts": 0, "connected": 0, "refused": 0, "closed_by_server": 0, "max_open": 0}
    open_now = 0

    async def one(i: int, deadline: float) -> None:
        nonlocal open_now
        while time.monotonic() < deadline:
            stats["attempts"] += 1
            try:
                reader, writer = await asyncio.open_connection(host, int(port))
            except OSError:
                stats["refused"] += 1
                await asyncio.sleep(0.5)
                continue
            stats["connected"] += 1
            open_now += 1
            stats["max_open"] = max(stats["max_open"], open_now)
            try:
                if i % 10 == 0:  # a tenth trickle headers
                    writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                while time.monotonic() < deadline:
                    try:
                        async with asyncio.timeout(1.0):
                            data = await reader.read(1024)
                    except TimeoutError:
                        if i % 10 == 0:
                            writer.write(b"X-Trickle: 1\r\n")
                        continue
                    if not data:
                        stats["closed_by_server"] += 1
                        break
            except OSError:
                stats["closed_by_server"] += 1
            finally:
                open_now -= 1
                writer.close()
            await asyncio.sleep(0.2)

    async def main() -> None:
        deadline = time.monotonic() + seconds
        tasks = []
        for i in range(connections):
            tasks.append(asyncio.create_task(one(i, deadline)))
            if i % 200 == 0:
                await asyncio.sleep(0.1)  # ramp up over a few seconds
        await asyncio.gather(*tasks)

    asyncio.run(main())
    out.write_text(json.dumps(stats))


# --- figures ---------------------------------------------------------------------------------------------


def journal_records(state: Path) -> int:
    """Rows in every table the writer fills (results and, since issue 11, the daemon's decisions): what
    the daemon's ``journal_closed committed=N`` counts."""
    conn = sqlite3.connect(f"file:{state / 'journal.sqlite3'}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return sum(int(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]) for t in tables)
    finally:
        conn.close()


def journal_counts(state: Path) -> dict[str, int]:
    conn = sqlite3.connect(f"file:{state / 'journal.sqlite3'}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT target, COUNT(*) FROM results GROUP BY target").fetchall())
    finally:
        conn.close()


def median(values: list[float]) -> float:
    s = sorted(values)
    return s[len(s) // 2] if s else 0.0


def figures(soak: Soak, run: dict[str, Any], peer_counts: dict[str, int]) -> dict[str, Any]:
    minutes = soak.args.minutes
    warmup = min(WARMUP_S, minutes * 60 / 5)
    calm = [s for s in soak.samples if not s["flooding"]]
    after = [s["rss_kib"] for s in calm if warmup <= s["t"] < warmup + 300]
    last = [s["rss_kib"] for s in calm if s["t"] >= minutes * 60 - 300]
    rss_growth = (median(last) - median(after)) / median(after) * 100 if after else float("nan")
    calm_fds = [s["fds"] for s in calm if s["t"] >= warmup]
    rows = journal_counts(soak.work / "state")
    lost = {name: peer_counts.get(key, 0) - rows.get(name, 0) for key, name in soak.plan.counted.items()}
    log_lines = (soak.work / "daemon.log").read_text().splitlines()
    log_events = [json.loads(x) for x in log_lines if x.startswith("{")]
    closed = [e for e in log_events if e.get("event") == "journal_closed"]
    committed = closed[-1].get("committed") if closed else None
    final = run["final_metrics"]
    kills = [e["t"] for e in soak.events if e["event"] == "tor killed"]
    conn = sqlite3.connect(f"file:{soak.work / 'state' / 'journal.sqlite3'}?mode=ro", uri=True)
    after_kill = conn.execute(
        "SELECT COUNT(*), SUM(failure = 'tor_unavailable') FROM results WHERE kind = 'tor_bridge'"
        " AND started_at > ?",
        (run["t0"] + (kills[0] if kills else math.inf),),
    ).fetchone()
    conn.close()
    buckets = lag_buckets(final)
    window_p99 = []
    for a, b in zip(soak.scrapes, soak.scrapes[1:], strict=False):
        ba, bb = lag_buckets(a["metrics"]), lag_buckets(b["metrics"])
        if ba and bb:
            delta = [(le, cb - ca) for (le, ca), (_, cb) in zip(ba, bb, strict=True)]
            window_p99.append({"t": b["t"], "p99": quantile(0.99, delta)})
    stable = [t["name"] for t in soak.plan.targets]
    per_target = [rows.get(name, 0) for name in stable]
    return {
        "minutes": minutes,
        "interval_s": soak.args.interval,
        "targets": len(soak.plan.targets) + 2,
        "attempts_journaled": sum(rows.values()),
        "attempts_per_stable_target": {
            "min": min(per_target),
            "median": median(per_target),
            "max": max(per_target),
        },
        "default_day_attempts_same_targets": len(soak.plan.targets) * 144,
        "rss_mib": {
            "after_warmup": round(median(after) / 1024, 1),
            "end": round(median(last) / 1024, 1),
            "max": round(max(s["rss_kib"] for s in soak.samples) / 1024, 1),
            "growth_percent": round(rss_growth, 2),
        },
        "fds": {
            "calm_min": min(calm_fds, default=0),
            "calm_max": max(calm_fds, default=0),
            "flood_max": max((s["fds"] for s in soak.samples if s["flooding"]), default=0),
        },
        "loop_lag_s": {
            "p50": round(quantile(0.5, buckets), 4),
            "p99": round(quantile(0.99, buckets), 4),
            "worst_window_p99": round(max((w["p99"] for w in window_p99), default=0.0), 4),
            "samples": int(buckets[-1][1]) if buckets else 0,
        },
        "attempts_lost": sum(v for k, v in lost.items() if v > 0 and not k.startswith("churn-")),
        # attempts of targets a reload removed while they were in flight (cancelled with their target)
        "churn_attempts_cancelled_by_reload": sum(
            v for k, v in lost.items() if v > 0 and k.startswith("churn-")
        ),
        "rows_without_peer_connection": -sum(v for v in lost.values() if v < 0),
        "peer_connections_counted": sum(peer_counts.get(k, 0) for k in soak.plan.counted),
        "journal_rows_vs_committed": {
            "rows": journal_records(soak.work / "state"),
            "committed_logged": committed,
            "of_which_attempts": sum(rows.values()),
        },
        "journal_write_errors": final.get("reachwatch_journal_write_errors_total"),
        "tor_bridge_attempts_after_kill": {"rows": after_kill[0], "tor_unavailable": after_kill[1] or 0},
        "web_connections_refused": final.get("reachwatch_web_connections_refused_total"),
        "auth_throttled": final.get("reachwatch_web_auth_throttled_total"),
        "events": soak.events,
        "lag_windows": window_p99,
    }


def plot(soak: Soak, result: dict[str, Any], path: Path) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    t = [s["t"] / 60 for s in soak.samples]
    fig, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    axes[0].plot(t, [s["rss_kib"] / 1024 for s in soak.samples], label="daemon RSS")
    axes[0].plot(t, [s["tor_rss_kib"] / 1024 for s in soak.samples], label="its tor", alpha=0.6)
    axes[0].set_ylabel("MiB")
    axes[0].legend(loc="upper left")
    axes[1].plot(t, [s["fds"] for s in soak.samples], color="tab:green")
    axes[1].set_ylabel("open descriptors")
    lag = result["lag_windows"]
    axes[2].plot([w["t"] / 60 for w in lag], [w["p99"] * 1000 for w in lag], color="tab:red")
    axes[2].set_ylabel("loop lag p99 (ms, per 30 s)")
    axes[2].set_xlabel("minutes")
    colors = {"reload": "0.7", "flood start": "tab:orange", "tor killed": "tab:purple"}
    for ev in result["events"]:
        color = colors.get(ev["event"])
        if color:
            for ax in axes:
                ax.axvline(ev["t"] / 60, color=color, linewidth=0.8, linestyle="--")
    fig.suptitle(
        f"reachwatch soak: {result['targets']} targets, {result['minutes']} min, "
        f"{result['attempts_journaled']} attempts (grey: reloads, orange: floods, purple: tor killed)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=90.0)
    parser.add_argument("--interval", type=float, default=30.0, help="seconds between attempts per target")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "reachwatch-soak")
    parser.add_argument("--png", type=Path, default=Path(__file__).with_name("soak.png"))
    parser.add_argument("--role", choices=["main", "flood"], default="main", help=argparse.SUPPRESS)
    parser.add_argument("--flood-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "flood":
        flood(args.flood_out)
        return
    if os.geteuid() != 0:
        sys.exit("soak.py needs root (network namespaces)")
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="run-", dir=args.out))
    (work / "src").mkdir()
    ca = trustme.CA()
    with Lab("soak") as lab:
        blackhole_ip, injected_ip = lab.server_ip(3), lab.server_ip(4)
        rules = f"ip daddr {blackhole_ip} drop\nip daddr {injected_ip} tcp dport 443 reject with tcp reset"
        lab.censor(rules)
        cert = ca.issue_cert(SERVER_IP)
        cert.private_key_and_cert_chain_pem.write_to_path(str(work / "peer.pem"))
        ca.cert_pem.write_to_path(str(work / "ca.pem"))
        plan = build_plan(blackhole_ip, injected_ip, str(work / "ca.pem"))
        layout = {"cert": str(work / "peer.pem"), "key": str(work / "peer.pem"), "peers": plan.peers}
        (work / "peers.json").write_text(json.dumps(layout))
        domestic = {"peers": [{"ip": ROUTER_INNER_IP, "port": 9000, "role": "tcp"}]}
        (work / "domestic.json").write_text(json.dumps(domestic))
        peers_argv = [sys.executable, str(PEERS), str(work / "peers.json"), str(work / "counts.json")]
        peers = lab.server.popen(peers_argv)
        lab.router.popen([sys.executable, str(PEERS), str(work / "domestic.json"), str(work / "dom.json")])
        time.sleep(3)
        soak = Soak(lab, plan, args, work)
        started = time.time()
        run = soak.run()
        peers.send_signal(signal.SIGTERM)
        peers.wait(timeout=30)
        counts = json.loads((work / "counts.json").read_text())
    result = figures(soak, run, counts)
    result["wall_minutes"] = round((time.time() - started) / 60, 1)
    result["load_average_end"] = os.getloadavg()
    (work / "results.json").write_text(json.dumps({**result, "samples": soak.samples}, indent=1))
    plot(soak, result, args.png)
    summary = {k: v for k, v in result.items() if k not in ("events", "lag_windows")}
    print(json.dumps(summary, indent=1))
    print(f"details: {work / 'results.json'}; plot: {args.png}")


if __name__ == "__main__":
    main()
