"""Sweep N local TLS endpoints (half of them blackholed) with reachwatch and with blackbox_exporter.

Prints probes/s, CPU milliseconds per probe and peak RSS for both, and their ratio. A benchmark, not a
test: run it by hand (``make bench`` or ``python bench/sweep.py --endpoints 10000``); figures go in
bench/README.md with the command that produced them.

Set-up (needs root: it builds its own network namespace so nothing else on the machine is touched):
- one TLS server process (uvloop, a trustme certificate for ``bench.test``) on 0.0.0.0:8443 inside the
  namespace; reachable endpoints are 127.1.x.y:8443 (every 127/8 address reaches it);
- blackholed endpoints are 127.2.x.y:8443, whose SYNs an nftables rule drops: each such attempt costs
  the full timeout, so a sweep is bounded by timeouts, not by the prober, when the prober is efficient;
- reachwatch: its real scheduler (``Scheduler.sweep``) and ``tls`` probe, in a fresh worker process so its
  CPU and peak RSS are its own;
- blackbox_exporter (Debian ``prometheus-blackbox-exporter``), module ``tcp`` with ``tls: true``, driven
  with the same concurrency by a separate load process; its CPU is read from /proc (the load generator's
  own CPU is not counted against it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

import aiohttp
import trustme
import uvloop

from reachwatch import logging as rwlog
from reachwatch.config.load import parse_config
from reachwatch.scheduler import Scheduler
from reachwatch.state import StateStore

PORT = 8443
SNI = "bench.test"


def endpoints(n: int) -> list[tuple[str, bool]]:
    """(ip, reachable) pairs: even indices reachable (127.1/16), odd blackholed (127.2/16)."""
    out = []
    for i in range(n):
        j = i // 2
        net = 1 if i % 2 == 0 else 2
        out.append((f"127.{net}.{j // 250}.{j % 250 + 1}", net == 1))
    return out


SERVER = r"""
import asyncio, ssl, sys
import uvloop
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
async def handle(reader, writer):
    writer.close()
async def main():
    server = await asyncio.start_server(handle, "0.0.0.0", int(sys.argv[3]), ssl=ctx, backlog=8192)
    print("ready", flush=True)
    await server.serve_forever()
uvloop.run(main())
"""


def raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- reachwatch worker ---------------------------------------------------------------------------------
def reachwatch_worker(n: int, timeout: float, concurrency: int, ca_file: str) -> dict[str, float]:
    # as the daemon runs: info level (unconfigured structlog printed a debug line per failed attempt)
    rwlog.configure("info", stream=sys.stderr)
    lines = [
        f"defaults: {{timeout: {timeout}s}}",
        f"scheduler: {{max_concurrency: {concurrency}, per_destination: 1, min_destination_spacing: 0.001s}}",
        "journal: {enabled: false}",
        "targets:",
    ]
    lines += [
        f"  - {{name: e{i}, kind: tls, host: {ip}, port: {PORT}, server_name: {SNI}, ca_file: {ca_file}}}"
        for i, (ip, _) in enumerate(endpoints(n))
    ]
    loaded = parse_config("\n".join(lines), "bench", Path("."))

    failures: Counter[str] = Counter()
    # CPU per probe counts the sweep, not start-up: blackbox_exporter's is read once it is healthy. So the
    # clock starts after the scheduler is built, which imports the probe modules of the config's kinds
    # (lazily since issue 9: ~0.14 s that the first version of this script counted as probing)
    setup0 = time.process_time()
    scheduler = Scheduler(loaded, StateStore())
    setup = time.process_time() - setup0

    async def run() -> tuple[int, float, float]:
        cpu0 = time.process_time()
        t0 = time.monotonic()
        results = await scheduler.sweep()
        wall, cpu = time.monotonic() - t0, time.process_time() - cpu0
        failures.update(f"{r.stage}/{r.failure}" for r in results if not r.success)
        return sum(r.success for r in results), wall, cpu

    ok, wall, cpu = uvloop.run(run())
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(dict(failures)), file=sys.stderr)
    return {"ok": ok, "wall_s": wall, "cpu_s": cpu, "setup_cpu_s": setup, "peak_rss_mb": rss_kb / 1024}


# -- blackbox_exporter ---------------------------------------------------------------------------------
def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def blackbox_load(n: int, concurrency: int, bb_port: int, timeout: float) -> dict[str, float]:
    """Runs in its own process: drive /probe for every endpoint with `concurrency` requests in flight."""

    async def run() -> tuple[int, float]:
        ok = 0
        queue: asyncio.Queue[str] = asyncio.Queue()
        for ip, _ in endpoints(n):
            queue.put_nowait(f"{ip}:{PORT}")
        conn = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=conn) as session:

            async def worker() -> None:
                nonlocal ok
                while not queue.empty():
                    target = queue.get_nowait()
                    url = f"http://127.0.0.1:{bb_port}/probe?module=tls&target={target}"
                    headers = {"X-Prometheus-Scrape-Timeout-Seconds": str(timeout + 0.5)}
                    async with session.get(url, headers=headers) as resp:
                        body = await resp.text()
                    if "\nprobe_success 1" in body:
                        ok += 1

            t0 = time.monotonic()
            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return ok, time.monotonic() - t0

    ok, wall = asyncio.run(run())
    return {"ok": ok, "wall_s": wall}


def run_blackbox(n: int, timeout: float, concurrency: int, ca_file: str, tmp: Path) -> dict[str, float]:
    cfg = tmp / "blackbox.yml"
    cfg.write_text(
        "modules:\n  tls:\n    prober: tcp\n"
        f"    timeout: {timeout}s\n"
        f"    tcp:\n      preferred_ip_protocol: ip4\n      tls: true\n"
        f"      tls_config: {{ca_file: {ca_file}, server_name: {SNI}}}\n"
    )
    bb_port = 19115
    log = (tmp / "blackbox.log").open("wb")
    proc = subprocess.Popen(
        [
            "prometheus-blackbox-exporter",
            f"--config.file={cfg}",
            f"--web.listen-address=127.0.0.1:{bb_port}",
            "--log.level=error",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{bb_port}/-/healthy", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        cpu0 = proc_cpu_seconds(proc.pid)
        load = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                "blackbox-load",
                "--endpoints",
                str(n),
                "--concurrency",
                str(concurrency),
                "--timeout",
                str(timeout),
                "--bb-port",
                str(bb_port),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        res = json.loads(load.stdout)
        res["cpu_s"] = proc_cpu_seconds(proc.pid) - cpu0
        res["peak_rss_mb"] = proc_peak_rss_mb(proc.pid)
        return res
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


# -- orchestration -------------------------------------------------------------------------------------
def in_fresh_netns(argv: list[str]) -> int:
    """Re-run this script inside a new network namespace with the blackhole rule, then delete it."""
    name = f"rwbench-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        rules = (
            "table inet bench {\n  chain input {\n    type filter hook input priority 0; policy accept;\n"
            f"    ip daddr 127.2.0.0/16 tcp dport {PORT} drop\n  }}\n}}\n"
        )
        subprocess.run(["ip", "netns", "exec", name, "nft", "-f", "-"], input=rules, text=True, check=True)
        return subprocess.run(
            ["ip", "netns", "exec", name, sys.executable, __file__, "--in-netns", *argv], check=False
        ).returncode
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def report(
    n: int, timeout: float, concurrency: int, rw: dict[str, float], bb: dict[str, float] | None
) -> None:
    bound = (n / 2) * timeout / concurrency
    print(f"endpoints: {n} (half blackholed), timeout {timeout:g}s, concurrency {concurrency}")
    print(f"timeout-bound sweep time (blackholed x timeout / concurrency): {bound:.1f}s")
    print(f"{'prober':<22}{'ok':>7}{'wall s':>9}{'probes/s':>10}{'CPU ms/probe':>14}{'peak RSS MB':>13}")
    rows = [("reachwatch", rw)] + ([("blackbox_exporter", bb)] if bb else [])
    for name, r in rows:
        print(
            f"{name:<22}{int(r['ok']):>7}{r['wall_s']:>9.1f}{n / r['wall_s']:>10.0f}"
            f"{1000 * r['cpu_s'] / n:>14.3f}{r['peak_rss_mb']:>13.0f}"
        )
    setup = rw.get("setup_cpu_s", 0.0)
    print(f"reachwatch start-up before the sweep (scheduler, probe imports; not counted): {setup:.2f} s CPU")
    if bb:
        print(f"CPU per probe, reachwatch / blackbox_exporter: {rw['cpu_s'] / bb['cpu_s']:.2f}")
        print(f"peak RSS, reachwatch / blackbox_exporter: {rw['peak_rss_mb'] / bb['peak_rss_mb']:.2f}")


def summary(n: int, rw: dict[str, float], bb: dict[str, float] | None) -> dict[str, float]:
    """The figures bench/lean.py checks against issue 9's goals (ratios only when blackbox ran)."""
    out = {
        "endpoints": n,
        "rw_ok": rw["ok"],
        "rw_cpu_ms": 1000 * rw["cpu_s"] / n,
        "rw_rss_mb": rw["peak_rss_mb"],
    }
    if bb:
        out |= {
            "bb_ok": bb["ok"],
            "bb_cpu_ms": 1000 * bb["cpu_s"] / n,
            "bb_rss_mb": bb["peak_rss_mb"],
            "cpu_ratio": rw["cpu_s"] / bb["cpu_s"],
            "rss_ratio": rw["peak_rss_mb"] / bb["peak_rss_mb"],
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--endpoints", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--concurrency", type=int, default=500)
    ap.add_argument("--no-blackbox", action="store_true")
    ap.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    ap.add_argument("--in-netns", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--worker", choices=["reachwatch", "blackbox-load"], help=argparse.SUPPRESS)
    ap.add_argument("--ca-file", help=argparse.SUPPRESS)
    ap.add_argument("--bb-port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    raise_nofile()

    if args.worker == "reachwatch":
        print(json.dumps(reachwatch_worker(args.endpoints, args.timeout, args.concurrency, args.ca_file)))
        return 0
    if args.worker == "blackbox-load":
        print(json.dumps(blackbox_load(args.endpoints, args.concurrency, args.bb_port, args.timeout)))
        return 0
    if not args.in_netns:
        if os.geteuid() != 0:
            print("bench/sweep.py needs root (it builds its own network namespace)", file=sys.stderr)
            return 2
        return in_fresh_netns(sys.argv[1:])

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ca = trustme.CA()
        cert = ca.issue_cert(SNI)
        ca_file, cert_file, key_file = tmp / "ca.pem", tmp / "cert.pem", tmp / "key.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        cert.cert_chain_pems[0].write_to_path(str(cert_file))
        cert.private_key_pem.write_to_path(str(key_file))
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(cert_file), str(key_file), str(PORT)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert server.stdout is not None and server.stdout.readline().strip() == "ready"
            worker = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    "reachwatch",
                    "--endpoints",
                    str(args.endpoints),
                    "--timeout",
                    str(args.timeout),
                    "--concurrency",
                    str(args.concurrency),
                    "--ca-file",
                    str(ca_file),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            rw = json.loads(worker.stdout.strip().splitlines()[-1])
            print(f"reachwatch failures by stage/failure: {worker.stderr.strip().splitlines()[-1]}")
            bb = None
            if not args.no_blackbox and shutil.which("prometheus-blackbox-exporter"):
                bb = run_blackbox(args.endpoints, args.timeout, args.concurrency, str(ca_file), tmp)
        finally:
            server.terminate()
            server.wait(timeout=10)
        report(args.endpoints, args.timeout, args.concurrency, rw, bb)
        if args.json:
            print(json.dumps(summary(args.endpoints, rw, bb)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
