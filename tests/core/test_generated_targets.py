"""Generated targets at run time (``Scheduler.set_generated``) and the rotation that paces them.

The rotation's order is pure (``rotation.RotationOrder``) and tested without a clock; the scheduler's side
is tested with the shipped ``tcp`` probe against a real listener on 127.0.0.1 that records when each
connection arrived, so spacing is measured where a relay would see it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from reachwatch.config.load import LoadedConfig, parse_config
from reachwatch.config.targets.tcp import TcpTarget
from reachwatch.rotation import RotationOrder
from reachwatch.scheduler import Rotation, Scheduler
from reachwatch.state import StateStore
from tests.servers import tcp_server


def test_a_rotation_visits_every_member_once_per_round_in_a_shuffled_order() -> None:
    names = [f"r{i:02}" for i in range(20)]
    order = RotationOrder(random.Random(1))
    order.update(names)
    first_round = [order.next() for _ in names]
    assert sorted(first_round) == names  # type: ignore[type-var]
    assert first_round != names  # not in name (fingerprint) order: that is what a scanner looks like
    assert [order.next() for _ in names] == first_round  # the next round, same order


def test_a_membership_change_keeps_the_walk_and_the_turns_of_members_that_stay() -> None:
    order = RotationOrder(random.Random(2))
    order.update([f"r{i}" for i in range(10)])
    visited = [order.next() for _ in range(4)]
    upcoming = order.order[:]
    order.update([n for n in upcoming + visited if n != upcoming[0]] + ["new1", "new2"])
    # the leaver is gone, the newcomers are in, and the members that stay come in the same relative order
    after = order.order
    assert upcoming[0] not in after and {"new1", "new2"} <= set(after)
    assert [n for n in after if n in upcoming] == upcoming[1:]
    assert len(after) == 11
    assert order.next() is not None
    order.update([])
    assert order.next() is None and len(order) == 0


def _config(tmp_path: Path, **sections: Any) -> LoadedConfig:
    doc: dict[str, Any] = {
        "defaults": {"interval": "60s", "timeout": "2s", "jitter": 0.1},
        "scheduler": {"min_destination_spacing": "1ms"},
        "confirmation": {"attempts": 1, "required": 1, "residual_window": "50ms"},
        **sections,
    }
    return parse_config(json.dumps(doc), "test.yaml", tmp_path)


def _member(name: str, port: int) -> TcpTarget:
    return TcpTarget(name=name, kind="tcp", host="127.0.0.1", port=port)


@asynccontextmanager
async def _listener() -> AsyncIterator[tuple[int, list[float]]]:
    arrivals: list[float] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        arrivals.append(time.monotonic())

    async with tcp_server(handle) as port:
        yield port, arrivals


async def test_generated_members_are_probed_one_after_another_spread_over_the_period(tmp_path: Path) -> None:
    async with _listener() as (port, arrivals):
        sched = Scheduler(_config(tmp_path), StateStore(), rng=random.Random(3))
        members = [_member(f"set:{i}", port) for i in range(5)]
        change = sched.set_generated("relay_set:set", members, Rotation(period=1.0, jitter=0.1))
        assert (change.added, change.removed, change.refused) == (5, 0, ())
        sched.start()
        await asyncio.sleep(2.1)
        await sched.drain(2)
    probed = Counter(s.target.name for s in sched.store.targets.values() for _ in range(s.probes_total))
    # one round a second: each member twice in ~2 s, never a burst (starts ~0.2 s apart)
    assert all(1 <= n <= 3 for n in probed.values()) and len(probed) == 5, probed
    assert 8 <= len(arrivals) <= 12
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    assert min(gaps) > 0.1, gaps
    assert len(sched.tasks) == 0  # one walk for the whole set, no task per member


async def test_a_new_member_list_keeps_state_of_stayers_drops_leavers_and_refuses_taken_names(
    tmp_path: Path,
) -> None:
    async with _listener() as (port, _), _listener() as (other_port, _):
        loaded = _config(
            tmp_path, targets=[{"name": "configured", "kind": "tcp", "host": "127.0.0.1", "port": 1}]
        )
        store = StateStore()
        sched = Scheduler(loaded, store)
        rotation = Rotation(period=3600.0)
        sched.set_generated("relay_set:a", [_member(f"a:{i}", port) for i in range(4)], rotation)
        await sched.sweep(sched.generated("relay_set:a"))
        assert all(store.targets[f"a:{i}"].probes_total == 1 for i in range(4))

        moved = _member("a:1", other_port)  # a relay that moved: probed where it is now, history kept
        change = sched.set_generated(
            "relay_set:a",
            [_member("a:0", port), moved, _member("a:4", port), _member("configured", port)],
            rotation,
        )
        assert (change.added, change.changed, change.removed) == (1, 1, 2)
        assert change.refused == ("configured",)
        assert store.targets["a:0"].probes_total == 1 and store.targets["a:1"].probes_total == 1
        assert store.targets["a:1"].target == moved
        assert "a:2" not in store.targets and "a:3" not in store.targets  # leavers leave the metrics
        assert store.targets["configured"].target.port == 1  # the configured target is untouched
        # another source cannot take a name either
        assert sched.set_generated("other", [_member("a:0", port)]).refused == ("a:0",)

        # a reload keeps the generated members and their state
        await sched.reload(_config(tmp_path))
        assert {t.name for t in sched.generated("relay_set:a")} == {"a:0", "a:1", "a:4"}
        assert store.targets["a:0"].probes_total == 1
        # a new pace (the set's interval changed) keeps members and state
        change = sched.set_generated("relay_set:a", sched.generated("relay_set:a"), Rotation(period=60.0))
        assert (change.added, change.removed) == (0, 0) and store.targets["a:0"].probes_total == 1
        sched.set_generated("relay_set:a", [], rotation)
        assert not [n for n in store.targets if n.startswith("a:")]
        assert sched.generated("relay_set:a") == []


async def test_a_set_that_grows_from_one_member_does_not_wait_out_the_old_spacing(tmp_path: Path) -> None:
    async with _listener() as (port, arrivals):
        sched = Scheduler(_config(tmp_path), StateStore(), rng=random.Random(4))
        rotation = Rotation(period=360.0, jitter=0.0)
        sched.set_generated("s", [_member("s:0", port)], rotation)
        sched.start()
        await asyncio.sleep(0.1)  # the walk now sleeps six minutes (one member, a six-minute period)
        sched.set_generated("s", [_member(f"s:{i}", port) for i in range(3600)], rotation)
        await asyncio.sleep(0.5)  # 3,600 members in six minutes: one every 0.1 s
        await sched.drain(2)
    assert len(arrivals) >= 2, "the walk kept sleeping on the one-member spacing"
