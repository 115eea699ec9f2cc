"""The share of a Tor network that works from here, against a private network of 12 relays in a namespace.

One network for this module (``relaynet``): a directory authority and 12 relays, 6 on 127.0.1.x
(fake country ``xa``, AS64501) and 6 on 127.0.2.x (``xb``, AS64502), placed by a test GeoIP file and a
test ip2asn file; all inside a network namespace, where the censor is an nftables rule. Its start time is
printed (``-s``): 48-61 s on this 2-core machine under load (the session's 3-relay network takes ~45 s),
the whole module ~2 min; recorded in bench/README.md.

- a live relay set follows the network's consensus through reachwatch's directory tor: a relay added to
  the network appears after a refresh, a relay the authority drops disappears, and a directory tor killed
  in the middle of a refresh loses nothing (the list stays, the next refresh succeeds);
- ``reachwatch check --relay-set`` run in the namespace while the censor drops everything to 127.0.2.0/24
  gives each country its true share: xa all, xb none.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reachwatch.config.load import parse_config, with_relay_sets
from reachwatch.relaywatch import RelaySetWatcher, source_key
from reachwatch.scheduler import Scheduler
from reachwatch.state import StateStore
from reachwatch.tor.directory import DirectoryTor
from reachwatch.tor.supervisor import TorBinaries
from tests.tor.test_bootstrap import client_netns
from tests.tor.torlab import TorLab

pytestmark = [pytest.mark.root, pytest.mark.slow]

XA = [f"127.0.1.{i}" for i in range(1, 7)]
XB = [f"127.0.2.{i}" for i in range(1, 7)]
TOR_GEOIP = "2130706688,2130706943,xa\n2130706944,2130707199,xb\n"  # 127.0.1.0/24, 127.0.2.0/24
IP2ASN = "127.0.1.0\t127.0.1.255\t64501\tXA\tLAB-A\n127.0.2.0\t127.0.2.255\t64502\tXB\tLAB-B\n"


@dataclass
class RelayNet:
    lab: TorLab
    netns: str
    root: Path
    start_seconds: float

    def wrapper(self) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.netns)

    def config_dir(self, tmp: Path, relay_set: str) -> Path:
        """A config directory with the test GeoIP files and one relay set (``relay_set``: YAML)."""
        (tmp / "geoip").write_text(TOR_GEOIP)
        (tmp / "ip2asn-v4.tsv.gz").write_bytes(gzip.compress(IP2ASN.encode()))
        options = json.dumps(self.lab.client_options())
        (tmp / "c.yaml").write_text(
            "defaults: {timeout: 5s}\n"
            "scheduler: {min_destination_spacing: 1ms, max_concurrency: 16}\n"
            f"tor:\n  torrc: {options}\n  bootstrap_timeout: 90s\n"
            "  geoip: {country_file: geoip, asn_file: ip2asn-v4.tsv.gz}\n"
            f"  relay_sets: [{relay_set}]\n"
        )
        (tmp / "c.yaml").chmod(0o600)
        return tmp


@pytest.fixture(scope="module")
def relaynet() -> Iterator[RelayNet]:
    root = Path(tempfile.mkdtemp(prefix="rw-relaynet-"))
    try:
        with client_netns() as netns:
            lab = TorLab(root, relay_addresses=XA + XB, bridges=False, wrapper=("ip", "netns", "exec", netns))
            t0 = time.monotonic()
            try:
                lab.start(timeout=240)
                net = RelayNet(lab, netns, root, time.monotonic() - t0)
                print(
                    f"\nrelaynet: 1 authority + {len(lab.relays)} relays ready in {net.start_seconds:.1f} s"
                )
                yield net
            finally:
                lab.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _fingerprints(sched: Scheduler) -> dict[str, str]:
    return {t.fingerprint: t.name for t in sched.generated(source_key("net"))}


async def test_a_live_set_follows_the_consensus_and_a_directory_tor_restart_loses_nothing(
    relaynet: RelayNet, tmp_path: Path
) -> None:
    lab = relaynet.lab
    text = relaynet.config_dir(tmp_path, "{name: net, live: tor}").joinpath("c.yaml").read_text()
    loaded = with_relay_sets(parse_config(text, "c.yaml", tmp_path))
    sched = Scheduler(loaded, StateStore())
    directory = DirectoryTor(
        TorBinaries(wrapper=relaynet.wrapper()), lab.client_options(), bootstrap_timeout=90.0
    )
    watcher = RelaySetWatcher(sched, loaded, directory, rng=random.Random(5))
    try:
        assert await watcher.refresh() == {"net": True}
        members = {t.fingerprint: t for t in sched.generated(source_key("net"))}
        expected = {lab.auth.fingerprint, *(r.fingerprint for r in lab.relays)}
        assert set(members) == expected
        countries = sorted(t.relay_country or "-" for t in members.values())
        assert countries == ["-"] + ["xa"] * 6 + ["xb"] * 6  # the authority, on 127.0.0.1, is nowhere
        assert {t.relay_as for t in members.values() if t.relay_country == "xb"} == {"AS64502"}
        status = watcher.statuses()[0]
        assert status.valid_after is not None and abs(status.valid_after - time.time()) < 600

        # a relay joins the network: it appears after a refresh (the next consensus, ~10-40 s)
        newcomer = await asyncio.to_thread(lab.add_relay, "127.0.2.7")
        deadline = time.monotonic() + 150
        while newcomer.fingerprint not in _fingerprints(sched):
            assert time.monotonic() < deadline, "the new relay never reached the set"
            await asyncio.sleep(3)
            await watcher.refresh()
        name = _fingerprints(sched)[newcomer.fingerprint]
        assert sched.store.targets[name].target.relay_country == "xb"  # type: ignore[attr-defined]
        stayer = _fingerprints(sched)[lab.relays[0].fingerprint]
        sched.store.targets[stayer].probes_total = 9  # history that must survive every refresh

        # the directory tor dies in the middle of a refresh: the list stays, the next refresh succeeds
        before = set(_fingerprints(sched))
        refresh = asyncio.create_task(watcher.refresh())
        await asyncio.sleep(0)
        process = directory.supervisor._process
        assert process is not None
        process.proc.kill()
        await refresh
        assert set(_fingerprints(sched)) == before
        deadline = time.monotonic() + 120
        while not (await watcher.refresh())["net"]:
            assert time.monotonic() < deadline, "the directory tor did not come back"
            await asyncio.sleep(2)
        assert set(_fingerprints(sched)) >= before - {newcomer.fingerprint}
        assert directory.supervisor.restarts >= 1

        # the authority drops the newcomer: it leaves the set, and its state leaves the metrics
        lab.reject(newcomer)
        deadline = time.monotonic() + 150
        while newcomer.fingerprint in _fingerprints(sched):
            assert time.monotonic() < deadline, "the dropped relay stayed in the set"
            await asyncio.sleep(3)
            await watcher.refresh()
        assert name not in sched.store.targets
        assert sched.store.targets[stayer].probes_total == 9
        assert watcher.statuses()[0].failures >= 1
    finally:
        await watcher.close()
        await directory.close()


def test_a_censor_blocking_one_country_gives_each_country_its_share(
    relaynet: RelayNet, tmp_path: Path
) -> None:
    consensus = relaynet.lab.auth.datadir / "cached-consensus"
    shutil.copyfile(consensus, tmp_path / "consensus")
    config = relaynet.config_dir(tmp_path, "{name: net, source: consensus}") / "c.yaml"
    ruleset = (
        "table inet rwcensor {\n  chain out {\n    type filter hook output priority 0;\n"
        "    ip daddr 127.0.2.0/24 drop\n  }\n}\n"
    )
    subprocess.run([*relaynet.wrapper(), "nft", "-f", "-"], input=ruleset, text=True, check=True)
    try:
        proc = subprocess.run(
            [*relaynet.wrapper(), sys.executable, "-m", "reachwatch", "check", "--config", str(config),
             "--relay-set", "net", "--json"],
            check=False, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
    finally:
        subprocess.run([*relaynet.wrapper(), "nft", "delete", "table", "inet", "rwcensor"], check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    doc = json.loads(proc.stdout)["relay_set"]
    by_country = {row["group"]: row for row in doc["country"]}
    in_xb = sum(1 for r in relaynet.lab.relays if r.address.startswith("127.0.2.") and r.fingerprint)
    assert by_country["xa"] == {"group": "xa", "relays": 6, "probed": 6, "reachable": 6}
    assert by_country["xb"]["reachable"] == 0 and by_country["xb"]["probed"] == by_country["xb"]["relays"]
    assert 6 <= by_country["xb"]["relays"] <= in_xb
    by_as = {row["group"]: row for row in doc["asn"]}
    assert by_as["AS64501"]["reachable"] == 6 and by_as["AS64502"]["reachable"] == 0
    assert by_country["unknown"]["reachable"] == 1  # the authority, on 127.0.0.1
