"""The observability lab: real reachwatch, Prometheus and Alertmanager processes and what they read.

Used by ``test_e2e.py``. Everything listens on 127.0.0.1 (ephemeral ports) and every process is started
here and stopped by its own pid. The shipped files are used as they are, except where a test copy must
differ, and then only in time and addresses:

- rules: every ``for:`` becomes ``FOR`` and ``keep_firing_for:`` becomes ``KEEP`` (minutes -> seconds);
- Alertmanager: timing (group_wait ...) shortened, every receiver becomes a webhook to the test's
  receiver (path = receiver name), so routing is observable and no mail leaves the machine.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import aiohttp
import yaml
from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
RULE_FILES = sorted(RULES_DIR.glob("*.yml"))
ALERTMANAGER_YML = REPO / "deploy" / "alertmanager" / "alertmanager.yml"
# the daemon of the environment running the tests (a venv, tox, a distro build), not a path in the repo
REACHWATCH = [sys.executable, "-m", "reachwatch"]
T = TypeVar("T")
FOR = "2s"
KEEP = "90s"


def load_generator() -> ModuleType:
    """grafana/generate.py is a script, not a package module: load it by path (its ``dashgen`` package
    sits next to it, as it does when run as ``python grafana/generate.py``)."""
    if str(REPO / "grafana") not in sys.path:
        sys.path.insert(0, str(REPO / "grafana"))
    spec = importlib.util.spec_from_file_location(
        "reachwatch_grafana_generate", REPO / "grafana" / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve string annotations through sys.modules
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------------------------------------ config copies


def rule_copy(src: Path, dst: Path) -> Path:
    doc = yaml.safe_load(src.read_text())
    for group in doc["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                rule["for"] = FOR
                if "keep_firing_for" in rule:
                    rule["keep_firing_for"] = KEEP
    dst.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dst


def alertmanager_copy(dst: Path, hook_url: str) -> Path:
    doc = yaml.safe_load(ALERTMANAGER_YML.read_text())
    doc["global"] = {"resolve_timeout": "1m"}
    doc["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    for receiver in doc["receivers"]:
        name = receiver["name"]
        for key in [k for k in receiver if k.endswith("_configs")]:
            del receiver[key]
        receiver["webhook_configs"] = [{"url": f"{hook_url}/{name}", "send_resolved": True}]
    dst.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dst


def prometheus_config(dst: Path, rules: list[Path], am_port: int, vantages: list[dict[str, Any]]) -> Path:
    doc = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(r) for r in rules],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]},
        "scrape_configs": [
            {
                "job_name": "reachwatch",
                "static_configs": [{"targets": [v.pop("address")], "labels": v} for v in vantages],
            }
        ],
    }
    dst.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dst


def backfill_last_week(storage: Path, series: list[tuple[str, dict[str, str], float]]) -> None:
    """Write a week-old history (+/- 30 min around now - 1w) into Prometheus' storage before it starts,
    with ``promtool tsdb create-blocks-from openmetrics``: the baseline the week-over-week alerts compare
    against (``offset 1w``), which a two-minute lab cannot produce by waiting."""
    center = time.time() - 7 * 86400
    lines: list[str] = []
    for name, labels, value in series:
        rendered = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        lines.append(f"# TYPE {name} gauge")
        lines.extend(f"{name}{{{rendered}}} {value} {center + t:.3f}" for t in range(-1800, 1801, 15))
    text = "\n".join([*lines, "# EOF", ""])
    source = storage.parent / "last-week.om"
    source.write_text(text)
    storage.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["promtool", "tsdb", "create-blocks-from", "openmetrics", str(source), str(storage)],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------------------------------------ processes


@dataclass
class Processes:
    """Processes this lab started; stopped by pid, logs kept for failure messages."""

    tmp: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        if shutil.which(argv[0]) is None:
            raise RuntimeError(f"{argv[0]} is not installed (see tests/debian-packages.txt)")
        with (self.tmp / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.tmp)
        self.procs[name] = proc
        return proc

    def log(self, name: str, tail: int = 3000) -> str:
        path = self.tmp / f"{name}.log"
        return path.read_text(errors="replace")[-tail:] if path.exists() else ""

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


async def wait_until(
    check: Callable[[], Awaitable[Any]], timeout: float, what: str | Callable[[], str], interval: float = 0.5
) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = await check()
        except (aiohttp.ClientError, OSError) as exc:
            last = exc
        if last:
            return last
        await asyncio.sleep(interval)
    text = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout}s waiting for {text}; last: {last!r}")


class LoopThread:
    """An event loop in a daemon thread: a module-long lab whose lifetime pytest's fixture scope owns."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="observability-lab", daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    @staticmethod
    def unset(*_: Any, **__: Any) -> Any:
        raise RuntimeError("the lab's loop is not running")


# ------------------------------------------------------------------------------------------ HTTP APIs


class Prom:
    """The Prometheus HTTP API (the same calls Grafana makes)."""

    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session = session
        self.base = base

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        async with self.session.get(self.base + path, params=params) as resp:
            body = await resp.json()
        if body.get("status") != "success":
            raise AssertionError(f"{path} {params}: {body}")
        return body["data"]

    async def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        data = await self._get("/api/v1/query", params)
        return list(data["result"])

    async def query_range(
        self, expr: str, start: float, end: float, step: str = "1s"
    ) -> list[dict[str, Any]]:
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": step}
        data = await self._get("/api/v1/query_range", params)
        return list(data["result"])

    async def label_values(self, label: str, match: str, start: float, end: float) -> list[str]:
        params = {"match[]": match, "start": f"{start:.3f}", "end": f"{end:.3f}"}
        return list(await self._get(f"/api/v1/label/{label}/values", params))


class Webhook:
    """An Alertmanager webhook receiver: keeps every notification, by receiver path."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.app = web.Application()
        self.app.router.add_post("/{receiver}", self._post)
        self.runner = web.AppRunner(self.app)
        self.port = 0

    async def _post(self, request: web.Request) -> web.Response:
        # Alertmanager payloads are small; cap what we read anyway
        body = await request.content.read(1 << 20)
        self.received.append((request.match_info["receiver"], json.loads(body)))
        return web.Response(text="ok")

    async def start(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        self.port = int(server.sockets[0].getsockname()[1])  # type: ignore[attr-defined]
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        await self.runner.cleanup()

    def summary(self) -> str:
        """Alert names and receivers notified so far (for failure messages)."""
        seen = sorted({(r, a["labels"].get("alertname", "")) for r, p in self.received for a in p["alerts"]})
        return ", ".join(f"{name}->{receiver}" for receiver, name in seen) or "nothing"

    def alerts(self, alertname: str, status: str = "firing") -> list[tuple[str, dict[str, Any]]]:
        """(receiver, alert) for every notified alert of that name and status."""
        out = []
        for receiver, payload in self.received:
            for alert in payload.get("alerts", []):
                if alert["labels"].get("alertname") == alertname and alert["status"] == status:
                    out.append((receiver, alert))
        return out


# ------------------------------------------------------------------------------------------ expressions

GRAFANA_VARS = {
    "$vantage": ".*",
    "$group": ".*",
    "$target": ".*",
    "$__rate_interval": "1m",
    "$__interval": "1s",
    "$__range": "5m",
}


def substitute(expr: str) -> str:
    """What Grafana sends with every variable set to All."""
    for var, value in GRAFANA_VARS.items():
        expr = expr.replace(var, value)
    assert "$" not in expr, f"unsubstituted variable in {expr!r}"
    return expr


def rules() -> list[tuple[str, dict[str, Any]]]:
    """(file name, rule) for every rule in the shipped rule files."""
    out: list[tuple[str, dict[str, Any]]] = []
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            out.extend((path.name, rule) for rule in group["rules"])
    return out


_METRIC = re.compile(r"\b((?:reachwatch|probe)[a-zA-Z0-9_:]*)")


def metric_names(expr: str) -> set[str]:
    """Metric names (ours, by prefix) an expression selects."""
    return set(_METRIC.findall(expr)) - {"probe", "reachwatch"}
