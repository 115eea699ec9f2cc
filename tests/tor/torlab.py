"""A private Tor network on loopback, built from the Debian ``tor``, ``tor-gencert`` and ``obfs4proxy``.

Shape (the smallest network a bridge client can bootstrap through to 100%): one directory authority that
is also a guard/exit relay, three more relays (every relay must find three *other* relays to build the
3-hop circuit that ends its own bootstrap), a vanilla bridge and an obfs4 bridge. ``TestingTorNetwork 1``
plus short voting intervals make a consensus appear within seconds instead of an hour.
Nothing leaves 127.0.0.1.

Grown for relay sets (issue 14): ``relay_addresses`` places the relays on other loopback addresses
(127.0.1.x and 127.0.2.x are two fake "countries" with a test GeoIP file), ``bridges=False`` leaves the
bridges out, ``wrapper`` runs every node in a network namespace (``ip netns exec NAME``) where a censor
can be an nftables rule, and ``add_relay``/``reject`` change the consensus while the network runs.

The lab is synchronous (plain ``subprocess``) so a session-scoped fixture can start it once for all Tor
tests whatever their event loop. ``TorLab.start()`` returns when every node reports ``Bootstrapped 100%`` and
the authority's consensus lists every relay: from then on the bridges can serve it.
"""

from __future__ import annotations

import base64
import contextlib
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

TOR = shutil.which("tor") or "/usr/sbin/tor"
TOR_GENCERT = shutil.which("tor-gencert") or "/usr/bin/tor-gencert"
OBFS4PROXY = shutil.which("obfs4proxy") or "/usr/bin/obfs4proxy"

# Voting every 10 s (tor's testing minimum region); the first consensus is published ~10-20 s after start.
_VOTING = {
    "TestingV3AuthInitialVotingInterval": "10",
    "TestingV3AuthInitialVoteDelay": "2",
    "TestingV3AuthInitialDistDelay": "2",
    "V3AuthVotingInterval": "10",
    "V3AuthVoteDelay": "2",
    "V3AuthDistDelay": "2",
}


def free_port() -> int:
    """An ephemeral loopback port that was free a moment ago (tor needs explicit ports in its torrc)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class TorNode:
    """One tor process of the lab."""

    name: str
    datadir: Path
    or_port: int
    dir_port: int = 0
    obfs4_port: int = 0
    fingerprint: str = ""
    address: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None
    extra: dict[str, list[str]] = field(default_factory=dict)

    @property
    def log_path(self) -> Path:
        return self.datadir / "notice.log"

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class TorLab:
    """Build, start and stop the private network under ``base``."""

    def __init__(
        self,
        base: Path,
        extra_bridges: int = 0,
        *,
        relay_addresses: Sequence[str] = ("127.0.0.1",) * 3,
        bridges: bool = True,
        wrapper: Sequence[str] = (),
    ) -> None:
        """``extra_bridges``: more vanilla bridges (bench/tor_bridges.py measures batches with them);
        ``relay_addresses``: one relay per address (the authority stays on 127.0.0.1); ``wrapper``: a
        command prefix for every tor (a network namespace)."""
        self.base = base
        self.wrapper = list(wrapper)
        self.auth = TorNode("auth0", base / "auth0", free_port(), dir_port=free_port())
        self.relays = [
            TorNode(f"relay{i}", base / f"relay{i}", free_port(), address=address)
            for i, address in enumerate(relay_addresses, start=1)
        ]
        self.bridge = TorNode("bridgevan", base / "bridgevan", free_port())
        self.obfs4_bridge = TorNode("bridgeobfs4", base / "bridgeobfs4", free_port(), obfs4_port=free_port())
        self.extra_bridges = [
            TorNode(f"bridgex{i}", base / f"bridgex{i}", free_port()) for i in range(extra_bridges)
        ]
        self.has_bridges = bridges
        self.v3ident = ""

    @property
    def nodes(self) -> list[TorNode]:
        if not self.has_bridges:
            return [self.auth, *self.relays]
        return [self.auth, *self.relays, self.bridge, self.obfs4_bridge, *self.extra_bridges]

    # -- configuration -------------------------------------------------------------------------------

    def dir_authority_line(self) -> str:
        """The ``DirAuthority`` value every node and client of this network needs."""
        return (
            f"{self.auth.name} orport={self.auth.or_port} no-v2 v3ident={self.v3ident} "
            f"127.0.0.1:{self.auth.dir_port} {self.auth.fingerprint}"
        )

    def client_options(self) -> dict[str, list[str]]:
        """torrc options a client needs to use this network (besides its bridges)."""
        return {
            "TestingTorNetwork": ["1"],
            "DirAuthority": [self.dir_authority_line()],
            # all lab nodes share 127.0.0.1; the default would refuse them as one family
            "EnforceDistinctSubnets": ["0"],
        }

    def vanilla_bridge_line(self) -> str:
        return f"127.0.0.1:{self.bridge.or_port} {self.bridge.fingerprint}"

    def extra_bridge_lines(self) -> list[str]:
        return [f"127.0.0.1:{node.or_port} {node.fingerprint}" for node in self.extra_bridges]

    def obfs4_bridge_line(self) -> str:
        """The line obfs4proxy wrote in pt_state/obfs4_bridgeline.txt, with the lab's address filled in."""
        text = (self.obfs4_bridge.datadir / "pt_state" / "obfs4_bridgeline.txt").read_text()
        line = next(ln for ln in text.splitlines() if ln.startswith("Bridge obfs4"))
        line = line.removeprefix("Bridge ").replace(
            "<IP ADDRESS>:<PORT>", f"127.0.0.1:{self.obfs4_bridge.obfs4_port}"
        )
        return line.replace("<FINGERPRINT>", self.obfs4_bridge.fingerprint)

    def _common(self, node: TorNode) -> list[str]:
        return [
            "TestingTorNetwork 1",
            f"DataDirectory {node.datadir}",
            f"Nickname {node.name}",
            "ShutdownWaitLength 0",
            "SocksPort 0",
            f"Address {node.address}",
            f"ORPort {node.address}:{node.or_port}",
            "AssumeReachable 1",
            "EnforceDistinctSubnets 0",
            "ContactInfo reachwatch-torlab",
            f"Log notice file {node.log_path}",
            "SafeLogging 0",
            "ExitPolicyRejectPrivate 0",
            # every port: a client picks exits by the microdescriptor's policy summary, which ignores
            # private addresses, so "accept 127.0.0.0/8:*" alone would summarize as "reject 1-65535" and no
            # client stream (the data stage's, to a canary on loopback) would find an exit. Nothing here
            # can reach beyond this machine's loopback: only the tests' clients build circuits.
            "ExitPolicy accept *:*",
        ]

    def _torrc(self, node: TorNode) -> str:
        lines = self._common(node)
        if node is self.auth:
            lines += [
                f"DirPort 127.0.0.1:{node.dir_port}",
                "AuthoritativeDirectory 1",
                "V3AuthoritativeDirectory 1",
                # every lab relay lives on 127.0.0.1; the default admits only two per address
                "AuthDirMaxServersPerAddr 0",
                "TestingAuthDirTimeToLearnReachability 0",
                "TestingDirAuthVoteExit *",
                "TestingDirAuthVoteGuard *",
                "TestingDirAuthVoteHSDir *",
                "TestingMinExitFlagThreshold 0",
                *(f"{k} {v}" for k, v in _VOTING.items()),
            ]
        if node in (self.bridge, self.obfs4_bridge, *self.extra_bridges):
            lines += ["BridgeRelay 1", "PublishServerDescriptor 0", "BridgeDistribution none"]
        if node is self.obfs4_bridge:
            lines += [
                f"ServerTransportPlugin obfs4 exec {OBFS4PROXY}",
                f"ServerTransportListenAddr obfs4 127.0.0.1:{node.obfs4_port}",
                "ServerTransportOptions obfs4 iat-mode=0",
                "ExtORPort auto",
            ]
        lines.append(f"DirAuthority {self.dir_authority_line()}")
        return "\n".join(lines) + "\n"

    def _make_keys(self) -> None:
        keys = self.auth.datadir / "keys"
        keys.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                TOR_GENCERT, "--create-identity-key", "--passphrase-fd", "0", "-m", "12",
                "-a", f"127.0.0.1:{self.auth.dir_port}",
                "-i", str(keys / "authority_identity_key"),
                "-s", str(keys / "authority_signing_key"),
                "-c", str(keys / "authority_certificate"),
            ],
            input=b"\n", check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        cert = (keys / "authority_certificate").read_text()
        match = re.search(r"^fingerprint ([0-9A-F]{40})$", cert, re.MULTILINE)
        assert match, "tor-gencert wrote no fingerprint"
        self.v3ident = match[1]

    def _fingerprint(self, node: TorNode) -> None:
        node.datadir.mkdir(parents=True, exist_ok=True)
        node.datadir.chmod(0o700)
        subprocess.run(
            [TOR, "--list-fingerprint", "--DataDirectory", str(node.datadir), "--ORPort", "1",
             "--Log", "err stderr"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        node.fingerprint = (node.datadir / "fingerprint").read_text().split()[1]

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self, timeout: float = 150.0) -> None:
        """Generate keys, write torrcs, launch every node and wait until all are bootstrapped."""
        self._make_keys()
        for node in self.nodes:
            self._fingerprint(node)
        for node in self.nodes:
            self._launch(node)
        self._wait(self.nodes, timeout)

    def _launch(self, node: TorNode) -> None:
        torrc = node.datadir / "torrc"
        torrc.write_text(self._torrc(node))
        node.proc = subprocess.Popen(
            [*self.wrapper, TOR, "-f", str(torrc)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def _wait(self, nodes: list[TorNode], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for node in nodes:
                assert node.proc is not None
                if node.proc.poll() is not None:
                    err = node.proc.stderr.read().decode(errors="replace") if node.proc.stderr else ""
                    raise RuntimeError(f"lab tor {node.name} exited: {err}\n{node.log_text()[-2000:]}")
            if (
                all("Bootstrapped 100%" in node.log_text() for node in nodes)
                and self._obfs4_ready()
                and self._listed(nodes)
            ):
                return
            time.sleep(0.5)
        states = {n.name: n.log_text().splitlines()[-3:] for n in nodes}
        raise TimeoutError(f"private tor network not ready in {timeout:.0f}s: {states}")

    def _listed(self, nodes: list[TorNode]) -> bool:
        """Every relay among ``nodes`` is in the authority's consensus: a relay reports ``Bootstrapped
        100%`` once it can build circuits through three others, which can be a consensus before its own
        descriptor was voted in (on a loaded machine the 12-relay network bootstrapped with 8 listed)."""
        relays = [n.fingerprint for n in nodes if n is self.auth or n in self.relays]
        try:
            text = (self.auth.datadir / "cached-consensus").read_text(errors="replace")
        except OSError:
            return not relays
        listed = set()
        for match in re.finditer(r"^r \S+ (\S+) ", text, re.MULTILINE):
            encoded = match.group(1)
            listed.add(base64.b64decode(encoded + "=" * (-len(encoded) % 4)).hex().upper())
        return all(fp in listed for fp in relays)

    def _obfs4_ready(self) -> bool:
        if not self.has_bridges:
            return True
        return (self.obfs4_bridge.datadir / "pt_state" / "obfs4_bridgeline.txt").exists()

    def add_relay(self, address: str, timeout: float = 120.0) -> TorNode:
        """Start one more relay while the network runs; returns once it bootstrapped (the authority lists
        it in its next vote)."""
        index = len(self.relays) + 1
        node = TorNode(f"relay{index}", self.base / f"relay{index}", free_port(), address=address)
        self._fingerprint(node)
        self.relays.append(node)
        self._launch(node)
        self._wait([node], timeout)
        return node

    def reject(self, *nodes: TorNode) -> None:
        """Make the authority drop these relays from its next vote (``!reject`` in its approved-routers
        file, reloaded on SIGHUP): they leave the consensus while they keep running."""
        lines = "".join(f"!reject {node.fingerprint}\n" for node in nodes)
        with (self.auth.datadir / "approved-routers").open("a") as fh:
            fh.write(lines)
        assert self.auth.proc is not None
        self.auth.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
        for node in self.nodes:
            if node.proc is not None:
                try:
                    node.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()
                if node.proc.stderr:
                    with contextlib.suppress(OSError):
                        node.proc.stderr.close()


if __name__ == "__main__":  # manual use: python tests/tor/torlab.py  -> prints timing and bridge lines
    import tempfile

    with tempfile.TemporaryDirectory(prefix="torlab-") as tmp:
        lab = TorLab(Path(tmp))
        t0 = time.monotonic()
        try:
            lab.start()
            print(f"ready in {time.monotonic() - t0:.1f}s")
            print(lab.vanilla_bridge_line())
            print(lab.obfs4_bridge_line())
            print(lab.dir_authority_line())
        finally:
            lab.stop()
