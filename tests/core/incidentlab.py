"""A small censored country for the incident tests: the real daemon inside, a real reference abroad, a
scripted censor that records when it acts.

Built on ``tests.netlab.Lab`` (client ns "in the country" <-> router ns "the censor" <-> server ns
"abroad"):

- abroad: real HTTP servers (``censorlab_servers.py``) for the international control (198.18.1.2) and
  the targets (198.18.1.5, .6); a reference vantage (``reachwatch run`` over HTTPS on 198.18.1.9, a
  trustme certificate the in-country daemon trusts) probing the same target names;
- on the router (domestic): the domestic control's HTTP server (198.18.0.1:8081);
- in the country: ``reachwatch run`` with both controls, the targets and the reference.

The censor (``block``/``unblock``: an RST for the targets' SYNs; ``shutdown``: every forwarded packet
dropped; ``offline``: the domestic control dropped too) returns the wall time at which its rules were
in force, for the tests to compare with the incidents' start and end. ``clock=(real0, fake0, scale)``
runs both daemons on a compressed wall clock (``fakeclock.py``) and returns censor times in it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trustme

from reachwatch.journal import history
from tests.netlab import ROUTER_INNER_IP, Lab

SERVERS = Path(__file__).with_name("censorlab_servers.py")
FAKECLOCK = Path(__file__).with_name("fakeclock.py")
HTTP_PORT, DOMESTIC_PORT, WEB_PORT = 8080, 8081, 10491
INTL_IP, REF_IP = "198.18.1.2", "198.18.1.9"
TARGETS = {"social-a": "198.18.1.5", "social-b": "198.18.1.6"}
Clock = tuple[float, float, float]  # real0, fake0, scale


class IncidentLab:
    """Both daemons and their servers in a ``Lab``; ``start()`` once."""

    def __init__(self, lab: Lab, workdir: Path, *, interval: float, clock: Clock | None = None) -> None:
        self.lab = lab
        self.dir = workdir
        self.interval = interval
        self.timeout = min(1.0, interval)
        self.clock = clock
        self.ca = trustme.CA()
        self.ca_file = workdir / "ca.pem"
        self.state = workdir / "in-state"
        self.config = workdir / "in.yaml"
        self.daemon: subprocess.Popen[bytes] | None = None

    # -- time --------------------------------------------------------------------------------------
    def now(self) -> float:
        """The daemons' wall clock (fake when the lab has one)."""
        real = time.time()
        if self.clock is None:
            return real
        real0, fake0, scale = self.clock
        return fake0 + (real - real0) * scale

    def sleep_until(self, when: float) -> None:
        """Sleep until the daemons' clock reads ``when``."""
        scale = 1.0 if self.clock is None else self.clock[2]
        delay = (when - self.now()) / scale
        if delay > 0:
            time.sleep(delay)

    # -- building ----------------------------------------------------------------------------------
    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        for ip in (*TARGETS.values(), REF_IP):
            self.lab.server_ip(int(ip.rsplit(".", 1)[1]))
        abroad = [{"type": "http", "host": ip, "port": HTTP_PORT} for ip in (INTL_IP, *TARGETS.values())]
        domestic = [{"type": "http", "host": ROUTER_INNER_IP, "port": DOMESTIC_PORT}]
        for ns, name, spec in ((self.lab.server, "abroad", abroad), (self.lab.router, "router", domestic)):
            spec_file, ready = self.dir / f"{name}.json", self.dir / f"{name}.ready"
            spec_file.write_text(json.dumps(spec))
            with (self.dir / f"{name}-servers.log").open("ab") as log:
                proc = ns.popen(
                    [sys.executable, str(SERVERS), str(spec_file), str(ready)], stdout=log, stderr=log
                )
            wait(lambda r=ready, p=proc: r.exists() or p.poll() is not None, 20, f"{name} servers")
            assert proc.poll() is None, (self.dir / f"{name}-servers.log").read_text()[-2000:]
        self._reference()
        self.run_daemon()
        wait(
            lambda: self.verdicts() == {n: "reachable" for n in (*TARGETS, "egov", "wiki")},
            40,
            "all reachable",
        )

    def _common(self, name: str) -> dict[str, Any]:
        step = f"{self.interval}s"
        return {
            "vantage": {"name": name, "timezone": "Asia/Almaty", "country": "KZ", "city": "Almaty"},
            "defaults": {"interval": step, "timeout": f"{self.timeout}s", "jitter": 0.1},
            "scheduler": {"min_destination_spacing": "1ms", "controls_interval": step, "per_destination": 4},
            "confirmation": {"attempts": 2, "required": 2, "residual_window": step},
            "targets": [
                {"name": n, "kind": "http", "group": "social", "url": f"http://{ip}:{HTTP_PORT}/"}
                for n, ip in TARGETS.items()
            ],
        }

    def _argv(self, config: Path, state: Path, listen: str) -> list[str]:
        run = ["run", "--config", str(config), "--state-dir", str(state), "--web.listen-address", listen]
        run += ["--log.format", "json"]
        if self.clock is None:
            return [sys.executable, "-m", "reachwatch", *run]
        return [sys.executable, str(FAKECLOCK), *(repr(x) for x in self.clock), *run]

    def _reference(self) -> None:
        doc = self._common("abroad")
        cert, key = self.dir / "ref-tls.pem", self.dir / "ref-tls.key"
        issued = self.ca.issue_cert(REF_IP)
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        key.chmod(0o600)
        web_config = self.dir / "ref-web.yml"
        web_config.write_text(
            json.dumps({"tls_server_config": {"cert_file": str(cert), "key_file": str(key)}})
        )
        doc["web"] = {"config_file": str(web_config)}
        config = self.dir / "ref.yaml"
        config.write_text(json.dumps(doc))
        config.chmod(0o600)
        with (self.dir / "ref.log").open("ab") as log:
            self.lab.server.popen(
                self._argv(config, self.dir / "ref-state", f"{REF_IP}:{WEB_PORT}"),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait(lambda: _rows(self.dir / "ref-state", "social-b") > 1, 30, "the reference's first results")

    def run_daemon(self) -> None:
        """Start (or restart) the in-country daemon on its state directory."""
        doc = self._common("kz-almaty-1")
        doc["controls"] = {
            "domestic": [
                {"name": "egov", "kind": "http", "url": f"http://{ROUTER_INNER_IP}:{DOMESTIC_PORT}/"}
            ],
            "international": [{"name": "wiki", "kind": "http", "url": f"http://{INTL_IP}:{HTTP_PORT}/"}],
        }
        max_age = "2h" if self.clock is not None else "30s"  # fake time: two real seconds
        doc["reference_vantages"] = [
            {
                "name": "abroad",
                "url": f"https://{REF_IP}:{WEB_PORT}",
                "timeout": "2s",
                "ca_file": str(self.ca_file),
                "max_age": max_age,
            }
        ]
        self.config.write_text(json.dumps(doc))
        self.config.chmod(0o600)
        with (self.dir / "in.log").open("ab") as log:
            self.daemon = self.lab.client.popen(
                self._argv(self.config, self.state, f"127.0.0.1:{WEB_PORT}"),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill_daemon(self) -> None:
        """kill -9 the in-country daemon (the hardest restart: nothing is flushed on the way out)."""
        assert self.daemon is not None
        os.kill(self.daemon.pid, signal.SIGKILL)
        # ip netns exec execs the program itself, so the pid is the daemon's
        self.daemon.wait(timeout=10)

    # -- reading -----------------------------------------------------------------------------------
    def verdicts(self) -> dict[str, str]:
        """Each target's and control's confirmed verdict after its newest journaled attempt."""
        out = {}
        for name in (*TARGETS, "egov", "wiki"):
            rows = _tail(self.state, name)
            if rows:
                out[name] = str(rows[-1].verdict)
        return out

    def log_tail(self, name: str = "in") -> str:
        return (self.dir / f"{name}.log").read_text(errors="replace")[-3000:]

    # -- the censor: each returns when its rules were in force, on the daemons' clock ---------------
    def _nft(self, table: str, hook: str, rules: str) -> None:
        text = (
            f"table inet {table}\ndelete table inet {table}\n"
            f"table inet {table} {{\n  chain c {{\n    type filter hook {hook} priority 0; policy accept;\n"
            f"    {rules}\n  }}\n}}\n"
        )
        self.lab.router.run(["nft", "-f", "-"], input=text)

    def block(self) -> float:
        """Every SYN to the targets answered with an RST (the reference abroad still reaches them)."""
        addresses = ", ".join(TARGETS.values())
        self.lab.censor(f"ip daddr {{ {addresses} }} tcp dport {HTTP_PORT} reject with tcp reset")
        return self.now()

    def unblock(self) -> float:
        self.lab.uncensor()
        return self.now()

    def shutdown(self) -> float:
        """International shutdown: nothing crosses the border; the domestic control still answers."""
        self.lab.shutdown()
        return self.now()

    def offline(self) -> float:
        """And the domestic control too: the vantage is offline."""
        self._nft("rwoffline", "input", f"tcp dport {DOMESTIC_PORT} drop")
        return self.now()

    def online(self) -> float:
        self.lab.router.run("nft delete table inet rwoffline", check=False)
        self.lab.uncensor()
        return self.now()


def _tail(state: Path, target: str) -> list[Any]:
    try:
        return history(state, target, time.time() - 10**10)[-1:]
    except Exception:  # the journal is created a moment after the daemon starts
        return []


def _rows(state: Path, target: str) -> int:
    try:
        return len(history(state, target, 0))
    except Exception:
        return 0


def wait(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
