"""A small censored network built from Linux network namespaces, for tests that need a real censor.

Topology (all addresses in 198.18.0.0/15, the RFC 2544 benchmarking range, so nothing here can be
confused with a real network)::

    client ns  198.18.0.2 ──veth── 198.18.0.1  router ns  198.18.1.1 ──veth── 198.18.1.2  server ns
                                   (the censor: nftables forward chain, tc)

- The client namespace is "inside the country": run reachwatch there (``lab.client.popen([...])``).
- The server namespace is "abroad": run real servers there; ``lab.server_ip(n)`` adds 198.18.1.n so
  different targets and controls get different addresses.
- The router's own address 198.18.0.1 is "domestic": traffic to it never crosses the forward chain, so
  a domestic control listening there survives an international shutdown.
- ``lab.censor(rules)`` installs nftables rules in a ``forward`` chain of table ``inet censor``;
  ``lab.shutdown()`` drops every forwarded packet (Kazakhstan, January 2022).

Every namespace gets a random suffix and is deleted in ``close()``, even after a failed test.
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType

CLIENT_IP = "198.18.0.2"
ROUTER_INNER_IP = "198.18.0.1"  # domestic side
ROUTER_OUTER_IP = "198.18.1.1"
SERVER_IP = "198.18.1.2"


def _run(
    cmd: Sequence[str], *, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), check=check, capture_output=True, text=True, input=input, timeout=30)


@dataclass
class Netns:
    """One network namespace."""

    name: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def cmd(self, argv: Sequence[str]) -> list[str]:
        """``argv`` prefixed so it runs inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def run(
        self, argv: Sequence[str] | str, *, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the namespace and wait for it."""
        args = shlex.split(argv) if isinstance(argv, str) else list(argv)
        return _run(self.cmd(args), check=check, input=input)

    def popen(self, argv: Sequence[str], **kwargs: object) -> subprocess.Popen[bytes]:
        """Start a long-running process inside the namespace; it is killed when the lab closes."""
        proc: subprocess.Popen[bytes] = subprocess.Popen(self.cmd(argv), **kwargs)  # type: ignore[call-overload]
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self.procs.clear()


class Lab:
    """client <-> router (censor) <-> server, built on enter, torn down on exit."""

    def __init__(self, tag: str = "") -> None:
        suffix = (tag[:4] + secrets.token_hex(3)) if tag else secrets.token_hex(4)
        self.suffix = suffix
        self.client = Netns(f"rwc-{suffix}")
        self.router = Netns(f"rwr-{suffix}")
        self.server = Netns(f"rws-{suffix}")
        self._extra_server_ips: set[str] = set()
        self._built = False

    # -- lifecycle -------------------------------------------------------------------------------------
    def __enter__(self) -> Lab:
        self.build()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def build(self) -> None:
        if os.geteuid() != 0:
            raise PermissionError("netlab needs root (network namespaces)")
        try:
            for ns in (self.client, self.router, self.server):
                _run(["ip", "netns", "add", ns.name])
                ns.run("ip link set lo up")
            s = self.suffix
            c_if, r_in, r_out, s_if = f"c{s}"[:15], f"ri{s}"[:15], f"ro{s}"[:15], f"s{s}"[:15]
            _run(
                [
                    "ip",
                    "link",
                    "add",
                    c_if,
                    "netns",
                    self.client.name,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    r_in,
                    "netns",
                    self.router.name,
                ]
            )
            _run(
                [
                    "ip",
                    "link",
                    "add",
                    s_if,
                    "netns",
                    self.server.name,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    r_out,
                    "netns",
                    self.router.name,
                ]
            )
            self.client_if, self.router_inner_if, self.router_outer_if, self.server_if = (
                c_if,
                r_in,
                r_out,
                s_if,
            )
            self.client.run(f"ip addr add {CLIENT_IP}/24 dev {c_if}")
            self.client.run(f"ip link set {c_if} up")
            self.client.run(f"ip route add default via {ROUTER_INNER_IP}")
            self.router.run(f"ip addr add {ROUTER_INNER_IP}/24 dev {r_in}")
            self.router.run(f"ip addr add {ROUTER_OUTER_IP}/24 dev {r_out}")
            self.router.run(f"ip link set {r_in} up")
            self.router.run(f"ip link set {r_out} up")
            self.router.run("sysctl -qw net.ipv4.ip_forward=1")
            self.server.run(f"ip addr add {SERVER_IP}/24 dev {s_if}")
            self.server.run(f"ip link set {s_if} up")
            self.server.run(f"ip route add default via {ROUTER_OUTER_IP}")
            self._built = True
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        for ns in (self.client, self.router, self.server):
            ns.stop_all()
        for ns in (self.client, self.router, self.server):
            _run(["ip", "netns", "del", ns.name], check=False)

    # -- addresses -------------------------------------------------------------------------------------
    def server_ip(self, n: int) -> str:
        """Address 198.18.1.n on the server side ("abroad"), added on first use (n in 2..254)."""
        if not 2 <= n <= 254:
            raise ValueError("server address index must be 2..254")
        ip = f"198.18.1.{n}"
        if ip != SERVER_IP and ip not in self._extra_server_ips:
            self.server.run(f"ip addr add {ip}/24 dev {self.server_if}")
            self._extra_server_ips.add(ip)
        return ip

    # -- the censor ------------------------------------------------------------------------------------
    def censor(self, rules: str) -> None:
        """Replace the censor's rules: ``rules`` are nftables statements for the forward chain.

        Example: ``lab.censor("ip daddr 198.18.1.5 tcp dport 443 drop")``.
        """
        ruleset = (
            "table inet censor\n"
            "delete table inet censor\n"
            "table inet censor {\n"
            "  chain forward {\n"
            "    type filter hook forward priority 0; policy accept;\n"
            f"{_indent(rules)}\n"
            "  }\n"
            "}\n"
        )
        self.router.run(["nft", "-f", "-"], input=ruleset)

    def kill_flows_after(self, seconds: float, match: str = "") -> None:
        """Replace the censor's rules with one that kills each matching flow ``seconds`` after its first
        packet, whatever it carried (censors that cut tunnels by age, not volume).

        A new flow's conntrack id goes into a set with a timeout; once the element expires, the flow's
        packets no longer match the set and are dropped. ``match`` narrows it (e.g. ``udp dport 51820``).
        """
        ruleset = (
            "table inet censor\n"
            "delete table inet censor\n"
            "table inet censor {\n"
            "  set young { typeof ct id; flags timeout; }\n"
            "  chain forward {\n"
            "    type filter hook forward priority 0; policy accept;\n"
            f"    {match} ct state new add @young {{ ct id timeout {int(seconds * 1000)}ms }}\n"
            f"    {match} ct state established ct id != @young drop\n"
            "  }\n"
            "}\n"
        )
        self.router.run(["nft", "-f", "-"], input=ruleset)

    def uncensor(self) -> None:
        """Remove every censor rule."""
        self.router.run("nft delete table inet censor", check=False)

    def shutdown(self) -> None:
        """International shutdown: nothing crosses the border; the router (domestic) stays reachable."""
        self.censor("drop")

    def throttle(self, rate: str = "150kbit", burst: str = "16kb", latency: str = "200ms") -> None:
        """Cap traffic towards the client (downloads) with a token bucket on the router's inner link."""
        tbf = f"tbf rate {rate} burst {burst} latency {latency}"
        self.router.run(f"tc qdisc replace dev {self.router_inner_if} root {tbf}")

    def unthrottle(self) -> None:
        self.router.run(f"tc qdisc del dev {self.router_inner_if} root", check=False)


def _indent(rules: str) -> str:
    return "\n".join(f"    {line.strip()}" for line in rules.strip().splitlines() if line.strip())
