"""The order a rotation visits its members in: one sweep through a changing set, each member once a round.

A relay set of 7,000 relays is not 7,000 independent schedules (whose jitter lets starts bunch up
into bursts) but one walk: the scheduler takes the next member every ``period / members`` seconds,
jittered (``scheduler.Rotation``). This module is the walk's pure part, kept apart so its rules are
tested without a clock:

- the order is shuffled (per daemon: ``rng``), never sorted by fingerprint or address: a sweep in
  address order is what a scanner looks like to an on-path observer;
- a membership change (a new consensus) keeps the walk where it is: leavers are dropped, newcomers are
  inserted at random positions, so members that stay keep their turn and a refresh is not a restart
  (which would probe the first members of the order again and the last ones never);
- ``next`` wraps around: a round ends and the next begins in the same order, so each member is visited
  once per period.
"""

from __future__ import annotations

import random
from collections.abc import Iterable


class RotationOrder:
    """The members' visiting order and the position of the walk in it."""

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._order: list[str] = []
        self._position = 0  # index of the member visited next

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name: object) -> bool:
        return name in self._order

    @property
    def order(self) -> list[str]:
        """A copy of the visiting order, starting with the member visited next."""
        return self._order[self._position :] + self._order[: self._position]

    def update(self, names: Iterable[str]) -> None:
        """Make the members exactly ``names``: leavers out, newcomers in at random places."""
        wanted = dict.fromkeys(names)
        if not self._order:
            self._order = list(wanted)
            self._rng.shuffle(self._order)
            # a fresh walk starts anywhere: a daemon restarted daily must not favour the first members
            self._position = self._rng.randrange(len(self._order)) if self._order else 0
            return
        upcoming = self.order  # rotate so the next member is first: positions stay easy to reason about
        kept = [name for name in upcoming if name in wanted]
        present = set(kept)
        for name in wanted:
            if name not in present:
                kept.insert(self._rng.randint(0, len(kept)), name)
        self._order = kept
        self._position = 0

    def next(self) -> str | None:
        """The member to visit now (``None`` when there are none); the walk moves on."""
        if not self._order:
            return None
        name = self._order[self._position]
        self._position = (self._position + 1) % len(self._order)
        return name
