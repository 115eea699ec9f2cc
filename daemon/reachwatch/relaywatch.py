"""Keeps every relay set's members current and hands them to the scheduler, without a reload.

Each set's members come from its source (``config.relaysets``): a file (``source``: read at load, then
read again when it changes), the directory tor's consensus (``live: tor``) or the Onionoo document
fetched through that tor (``live: onionoo``; ``tor/directory.py``). Every ``tor.relay_list.refresh``
(hourly, +/- jitter: the consensus schedule) the watcher reads each source once, rebuilds the set's
targets (flags, sample, country and AS from ``LoadedConfig.geoip``) and calls
``Scheduler.set_generated("relay_set:<name>", targets, Rotation(interval))``, which swaps the membership
atomically: relays that stay keep their state and turn, leavers leave the metrics, newcomers join the
walk.

A refresh that fails (the directory tor restarting or still bootstrapping, a truncated document, a fetch
cut by the censor) changes nothing: the last good list stays and the set is tried again after a tenth of
the refresh interval. Counted per set in ``RefreshStatus`` (``metrics/relaysets.py``). A document that
did not change since the last refresh (same digest) is not parsed again.
"""

from __future__ import annotations

import asyncio
import calendar
import contextlib
import hashlib
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from reachwatch.config.load import LoadedConfig
from reachwatch.config.relaysets import RelaySetConfig, load_relays, parse_relay_document, relay_targets
from reachwatch.config.secrets import resolve_path
from reachwatch.config.targets.tor_relay import TorRelayTarget
from reachwatch.errors import ConfigError
from reachwatch.metrics.relaysets import RefreshStatus
from reachwatch.scheduler import GeneratedChange, Rotation, Scheduler
from reachwatch.tor.directory import DirectoryTor, DirectoryUnavailable

log = structlog.get_logger(__name__)

_VALID_AFTER = re.compile(rb"^valid-after (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s*$", re.MULTILINE)
RETRY_FRACTION = 0.1  # a failed refresh is retried after this share of the refresh interval


def source_key(name: str) -> str:
    """The scheduler's generated-source key of relay set ``name``."""
    return f"relay_set:{name}"


def valid_after(document: bytes) -> float | None:
    """The ``valid-after`` of a consensus as a UNIX time (UTC), ``None`` for other documents."""
    match = _VALID_AFTER.search(document[:4096])
    if match is None:
        return None
    return float(calendar.timegm(time.strptime(match[1].decode(), "%Y-%m-%d %H:%M:%S")))


def source_of(spec: RelaySetConfig) -> str:
    return spec.live or "file"


@dataclass
class _Tracked:
    spec: RelaySetConfig
    status: RefreshStatus
    digest: str = ""  # of the document the members came from
    file_stamp: tuple[int, int] | None = None  # (mtime_ns, size) of a file source when last read
    next_at: float = 0.0  # monotonic time of the next refresh


class RelaySetWatcher:
    """Refreshes every configured relay set on its schedule (see the module docstring)."""

    def __init__(
        self,
        scheduler: Scheduler,
        loaded: LoadedConfig,
        directory: DirectoryTor | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_added: Callable[[list[TorRelayTarget]], None] | None = None,
    ) -> None:
        """``on_added``: called with the members a refresh added (the daemon resumes them from its
        journal)."""
        self.scheduler = scheduler
        self.on_added = on_added
        self.loaded = loaded
        self.directory = directory
        self.rng = rng or random.Random()
        self.clock = clock
        self._sets: dict[str, _Tracked] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._configure(loaded)

    # -- configuration --------------------------------------------------------------------------

    def _configure(self, loaded: LoadedConfig) -> None:
        self.loaded = loaded
        wanted = {spec.name: spec for spec in loaded.config.tor.relay_sets}
        for name in [n for n in self._sets if n not in wanted]:
            self.scheduler.set_generated(source_key(name), [])
            del self._sets[name]
        for name, spec in wanted.items():
            tracked = self._sets.get(name)
            if tracked is None or tracked.spec != spec:
                status = RefreshStatus(name=name, source=source_of(spec))
                self._sets[name] = _Tracked(spec=spec, status=status)
            # file sets were read by the load (``relay_members``): apply them now, no second read
            members = loaded.relay_members.get(name)
            if members is not None:
                self._apply(self._sets[name], members, digest="", document_time=None)
                self._sets[name].file_stamp = self._file_stamp(spec)
                self._sets[name].next_at = self.clock() + self._refresh_interval()

    def reconfigure(self, loaded: LoadedConfig, directory: DirectoryTor | None) -> None:
        """After a reload: sets removed, changed or added; a changed set (or GeoIP) is refreshed now."""
        geo_changed = loaded.config.tor.geoip != self.loaded.config.tor.geoip
        if geo_changed:
            for tracked in self._sets.values():
                tracked.digest = ""  # the same document gives other labels now
                tracked.next_at = 0.0
        self.directory = directory
        self._configure(loaded)
        self._wake.set()

    def statuses(self) -> list[RefreshStatus]:
        return [tracked.status for tracked in self._sets.values()]

    def _refresh_interval(self) -> float:
        return self.loaded.config.tor.relay_list.refresh

    # -- the loop ----------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="reachwatch-relay-sets")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            now = self.clock()
            due = [t for t in self._sets.values() if t.next_at <= now]
            if due:
                await self.refresh([t.spec.name for t in due])
                continue
            wait = min((t.next_at for t in self._sets.values()), default=now + 3600.0) - now
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.05, wait))

    async def refresh(self, names: list[str] | None = None) -> dict[str, bool]:
        """Refresh these sets (all by default) now; ``{name: success}``. Each document is read once."""
        chosen = [
            self._sets[n] for n in (names if names is not None else list(self._sets)) if n in self._sets
        ]
        documents: dict[str, bytes | BaseException] = {}
        results: dict[str, bool] = {}
        for tracked in chosen:
            results[tracked.spec.name] = await self._refresh_one(tracked, documents)
        return results

    async def _refresh_one(self, tracked: _Tracked, documents: dict[str, bytes | BaseException]) -> bool:
        spec, status = tracked.spec, tracked.status
        interval = self._refresh_interval()
        try:
            members = await self._members(tracked, documents)
        except (DirectoryUnavailable, ConfigError) as exc:
            status.failures += 1
            tracked.next_at = self.clock() + interval * RETRY_FRACTION
            log.warning("relay_set_refresh_failed", relay_set=spec.name, source=status.source, error=str(exc))
            return False
        except Exception as exc:  # a bug (or a document we did not foresee) must not end the refreshes
            status.failures += 1
            tracked.next_at = self.clock() + interval * RETRY_FRACTION
            log.error(
                "relay_set_refresh_error", relay_set=spec.name, error=f"{type(exc).__name__}: {exc}"[:300]
            )
            return False
        if members is not None:
            self._apply(tracked, *members)
        status.successes += 1
        status.last_success = time.time()
        tracked.next_at = self.clock() + interval * (1.0 + self.rng.uniform(-0.1, 0.1))
        return True

    async def _members(
        self, tracked: _Tracked, documents: dict[str, bytes | BaseException]
    ) -> tuple[list[TorRelayTarget], str, float | None] | None:
        """The set's members from its source now; ``None`` when the source did not change."""
        spec = tracked.spec
        geo = self.loaded.geoip
        if spec.source is not None:
            stamp = self._file_stamp(spec)
            if stamp is not None and stamp == tracked.file_stamp:
                return None
            path = resolve_path(spec.source, self.loaded.base_dir)
            relays = await asyncio.to_thread(load_relays, path)
            tracked.file_stamp = stamp
            return await asyncio.to_thread(relay_targets, spec, relays, geo), "", None
        document = await self._document(spec.live or "tor", documents)
        digest = hashlib.sha256(document).hexdigest()
        if digest == tracked.digest:
            return None
        where = f"relay set {spec.name} ({spec.live})"

        def build() -> list[TorRelayTarget]:
            return relay_targets(spec, parse_relay_document(document, where), geo)

        return await asyncio.to_thread(build), digest, valid_after(document)

    async def _document(self, live: str, documents: dict[str, bytes | BaseException]) -> bytes:
        """The live document (``tor`` or ``onionoo``), fetched at most once per refresh round."""
        if live not in documents:
            if self.directory is None:
                documents[live] = DirectoryUnavailable("no directory tor (tor.relay_list) is running")
            else:
                try:
                    if live == "onionoo":
                        url = self.loaded.config.tor.relay_list.onionoo_url
                        documents[live] = await self.directory.fetch(url)
                    else:
                        documents[live] = await self.directory.consensus()
                except DirectoryUnavailable as exc:
                    documents[live] = exc
        found = documents[live]
        if isinstance(found, BaseException):
            raise found
        return found

    def _apply(
        self, tracked: _Tracked, members: list[TorRelayTarget], digest: str, document_time: float | None
    ) -> GeneratedChange:
        spec = tracked.spec
        rotation = Rotation(spec.interval, self.loaded.config.defaults.jitter)
        before = {t.name for t in self.scheduler.generated(source_key(spec.name))}
        change = self.scheduler.set_generated(source_key(spec.name), members, rotation)
        if change.added and self.on_added is not None:
            refused = set(change.refused)
            self.on_added([t for t in members if t.name not in before and t.name not in refused])
        tracked.digest = digest
        tracked.status.members = len(members) - len(change.refused)
        if document_time is not None:
            tracked.status.valid_after = document_time
        if change.added or change.removed or change.changed:
            log.info(
                "relay_set_refreshed",
                relay_set=spec.name,
                members=tracked.status.members,
                added=change.added,
                removed=change.removed,
                changed=change.changed,
            )
        if change.refused:
            log.warning("relay_set_names_taken", relay_set=spec.name, names=len(change.refused))
        return change

    def _file_stamp(self, spec: RelaySetConfig) -> tuple[int, int] | None:
        if spec.source is None:
            return None
        try:
            st = Path(resolve_path(spec.source, self.loaded.base_dir)).stat()
        except OSError:
            return None
        return st.st_mtime_ns, st.st_size
