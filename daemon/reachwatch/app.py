"""The daemon: wires config, state, scheduler, journal, metrics and the web server; owns signals.

Lifecycle:
- start: load the config (a file or the embedded default), check its secret files, set up logging and
  redaction, open the journal, build the collector and scheduler, listen, start probing, become ready;
- SIGHUP or ``POST /-/reload``: load the config again. A bad config (or secret, or web config) is
  rejected with its one-line message in the log, the last good config stays in force and
  ``reachwatch_config_last_reload_successful`` goes to 0 (back to 1 after a good reload);
- SIGTERM / SIGINT: stop scheduling, let attempts in flight finish (bounded), flush and close the
  journal, stop listening, exit 0.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reachwatch import logging as rwlog
from reachwatch import refproto
from reachwatch.buildinfo import revision
from reachwatch.config.load import LoadedConfig, load_full_config
from reachwatch.config.secrets import read_secret_file
from reachwatch.config.types import TargetBase
from reachwatch.errors import ConfigError, ReachwatchError
from reachwatch.failures import Technique, VantageState, Verdict
from reachwatch.incident_live import LiveIncidents
from reachwatch.journal import Journal, JournalRow, ReadStats, last_vantage_change
from reachwatch.journal import latest as journal_latest
from reachwatch.journal import open_reader as journal_reader
from reachwatch.journal_events import VantageChange, relied_reference, vantage_change, verdict_change
from reachwatch.metrics import DaemonStatus, ReferenceHealth, StartLagSnapshot, build_registry
from reachwatch.model import ProbeResult
from reachwatch.portsurvey import PortsSeen, status_section
from reachwatch.probes.base import Services
from reachwatch.relaywatch import RelaySetWatcher
from reachwatch.scheduler import Scheduler, destination_of
from reachwatch.state import StateStore, TargetState
from reachwatch.tor.directory import DirectoryTor
from reachwatch.tor.service import TorService
from reachwatch.vantage import VantageReading
from reachwatch.web import WebServer, status_document
from reachwatch.weblisten import probe_descriptor_reserve

log = structlog.get_logger(__name__)

DEFAULT_DRAIN_TIMEOUT = 20.0
# results older than this are not resumed after a restart (they would be shown as current)
RESUME_MAX_AGE = 3600.0


@dataclass
class RunOptions:
    """Command-line choices; ``None`` means "use the config's value"."""

    config_path: Path | None = None
    state_dir: Path = Path("state")
    listen_address: str | None = None
    web_config_file: str | None = None
    log_level: str | None = None
    log_format: str | None = None
    drain_timeout: float = DEFAULT_DRAIN_TIMEOUT


def signing_key(loaded: LoadedConfig) -> Ed25519PrivateKey | None:
    """The key that signs this vantage's v2 observations (``web.reference_key_file``), or ``None``."""
    path = loaded.config.web.reference_key_file
    if path is None:
        return None
    field = f"{loaded.source}: web.reference_key_file"
    try:
        return refproto.load_private_key(read_secret_file(path, loaded.base_dir, field))
    except ValueError as exc:
        raise ConfigError(field, str(exc)) from None


class Daemon:
    """One running reachwatch."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.store = StateStore()
        self.daemon_status = DaemonStatus()
        self.registry = build_registry(self.store, self.daemon_status)
        self.loaded: LoadedConfig | None = None
        self.scheduler: Scheduler | None = None
        self.journal: Journal | None = None
        self.incidents: LiveIncidents | None = None
        self.web: WebServer | None = None
        self.services: Services | None = None
        self.directory: DirectoryTor | None = None  # the live relay sets' tor (tor/directory.py)
        self.relay_sets: RelaySetWatcher | None = None
        self._ready = False
        self._stop = asyncio.Event()
        self._lag_task: asyncio.Task[None] | None = None
        self._reload_lock = asyncio.Lock()
        self._reloads: set[asyncio.Task[tuple[bool, str]]] = set()
        self._redacted: set[str] = set()
        # the vantage state and each target's confirmed verdict as last journaled: the "before" of a change
        self._vantage_before = VantageState.UNKNOWN
        self._vantage_pending: VantageChange | None = None  # journaled, fed to the live view next
        self._verdict_before: dict[str, tuple[Verdict, Technique | None]] = {}
        # per target, the reference observation last journaled (one row per observation, not per attempt)
        self._reference_seen: dict[str, tuple[str, str, float]] = {}
        # relay-set members' latest journaled rows, taken when their sets hand them over (_resume_members)
        self._member_rows: dict[str, tuple[JournalRow, float]] = {}
        # which ports each port survey found open since the vantage state last changed (status page)
        self.ports_seen = PortsSeen()
        self._signing_key: Ed25519PrivateKey | None = None

    # --- Backend protocol for web.py ---------------------------------------------------------------
    def ready(self) -> bool:
        return self._ready

    async def incidents_document(self, query: Mapping[str, str]) -> dict[str, Any]:
        """``/api/v1/incidents``; raises ``incident_live.QueryError`` for a bad query."""
        if self.incidents is None:  # journal.enabled: false, nothing to derive incidents from
            return {"incidents": [], "patterns": [], "counts": {"open": 0, "closed": 0, "patterns": 0}}
        doc: dict[str, Any] = rwlog.REDACTOR.redact(await self.incidents.document(query))
        return doc

    @property
    def language(self) -> str:
        """The status page's configured language (``web.language``)."""
        return self.loaded.config.web.language if self.loaded else "auto"

    def status(self) -> dict[str, Any]:
        name = self.loaded.config.vantage.name if self.loaded else "default"
        # defense in depth: facts of private targets carry no addresses by construction; the same
        # redaction as the logs guarantees it even if a probe gets that wrong
        document = status_document(self.store, name)
        # the status page shows times in the vantage's own zone
        document["vantage"]["timezone"] = self.loaded.config.vantage.timezone if self.loaded else "UTC"
        ports = status_section(self.store, self.ports_seen)
        if ports is not None:
            document["ports"] = ports
        doc: dict[str, Any] = rwlog.REDACTOR.redact(document)
        return doc

    async def observations(self, nonce: str | None) -> bytes:
        """Reference protocol v2: every target's latest attempt with its destination (``None`` for a
        private target), redacted like the status, signed with ``web.reference_key_file`` if set."""
        name = self.loaded.config.vantage.name if self.loaded else "default"
        entries = [
            entry
            for state in sorted(self.store.targets.values(), key=lambda s: s.name)
            if (
                entry := refproto.observation_entry(
                    refproto.TargetView(
                        name=state.name,
                        kind=state.target.kind,
                        destination=None if state.target.private else destination_of(state.target),
                        last=state.last,
                    )
                )
            )
            is not None
        ]
        redacted: list[dict[str, Any]] = rwlog.REDACTOR.redact(entries)
        # thousands of targets: JSON and the signature off the event loop
        return await asyncio.to_thread(
            refproto.build_envelope, redacted, vantage=name, nonce=nonce, key=self._signing_key
        )

    # --- lifecycle ----------------------------------------------------------------------------------
    def _load(self) -> tuple[LoadedConfig, Ed25519PrivateKey | None]:
        loaded = load_full_config(self.options.config_path, web_config_file=self.options.web_config_file)
        return loaded, signing_key(loaded)

    def _apply_logging(self, loaded: LoadedConfig) -> None:
        level = self.options.log_level or loaded.config.log.level
        fmt = self.options.log_format or loaded.config.log.format
        rwlog.configure(level, fmt)
        # the union with earlier configs: attempts of removed targets may still be finishing
        self._redacted |= set(rwlog.sensitive_values(loaded))
        rwlog.REDACTOR.update(self._redacted)

    async def start(self) -> None:
        """Load, build and start everything; raises ``ReachwatchError`` (exit 2) on bad input."""
        loaded, self._signing_key = self._load()
        await asyncio.to_thread(revision)  # may ask git (a checkout): not at the first scrape, on the loop
        self.loaded = loaded
        self._apply_logging(loaded)
        self.daemon_status.config = loaded.config
        self.daemon_status.reload_successful = True
        self.daemon_status.reload_success_timestamp = time.time()
        if loaded.config.journal.enabled:
            self.journal = Journal(self.options.state_dir, loaded.config.journal.retention)
            journal = self.journal
            self.daemon_status.journal_write_errors = lambda: journal.write_errors
            self.daemon_status.journal_set_aside = lambda: len(journal.set_aside)
            self._resume(loaded)
            self.incidents = LiveIncidents(
                self.options.state_dir, loaded.config, flush=lambda: journal.flush(5)
            )
            # the incidents so far, derived once from the journal (the restart record included); from
            # here on the live view is fed what is journaled, before any attempt can run
            await asyncio.to_thread(journal.flush, 10)
            await self.incidents.seed()
            self.daemon_status.incidents = self.incidents
        self.services = Services(tor=TorService.from_config(loaded.config.tor))
        self.scheduler = Scheduler(
            loaded, self.store, services=self.services, on_result=self._on_result, on_vantage=self._on_vantage
        )
        scheduler = self.scheduler
        self.directory = DirectoryTor.from_config(loaded.config.tor)
        self.relay_sets = RelaySetWatcher(scheduler, loaded, self.directory, on_added=self._resume_members)
        self.daemon_status.relay_sets = self.relay_sets.statuses
        self.daemon_status.in_flight = lambda: scheduler.in_flight
        self.daemon_status.start_lag = lambda: StartLagSnapshot(
            scheduler.start_lag.cumulative(), scheduler.start_lag.total
        )
        self.daemon_status.references = lambda: [
            ReferenceHealth(c.name, c.fetched_at, c.ok, c.fetches, c.fetch_failures, c.rejected)
            for c in scheduler.references.clients
        ]
        listen = self.options.listen_address or loaded.config.web.listen_address
        self.web = WebServer(
            self,
            listen,
            loaded.web,
            descriptor_reserve=probe_descriptor_reserve(loaded.config.scheduler.max_concurrency),
        )
        await self.web.start()
        self.daemon_status.web = self.web.counters
        self._install_signals()
        self.scheduler.start()
        self.relay_sets.start()
        self._lag_task = asyncio.get_running_loop().create_task(self.daemon_status.loop_lag.run())
        self._ready = True
        log.info(
            "started",
            config=loaded.source,
            targets=len(loaded.config.targets),
            controls=len(loaded.config.controls.domestic) + len(loaded.config.controls.international),
            state_dir=str(self.options.state_dir),
            journal=self.journal is not None,
        )

    def _resume(self, loaded: LoadedConfig) -> None:
        """Start from the journal's latest results (after a restart or kill -9), not from "unknown".

        Only recent rows count: an old verdict shown as current would mislead more than "unknown".
        """
        stats = ReadStats()
        try:
            rows = journal_latest(self.options.state_dir, time.time() - RESUME_MAX_AGE, stats)
        except (FileNotFoundError, sqlite3.Error) as exc:
            log.warning("journal_resume_skipped", error=str(exc))
            return
        finally:
            self.daemon_status.journal_rows_skipped += stats.skipped
        if stats.skipped:
            log.warning("journal_rows_skipped", rows=stats.skipped, hint="written by a newer reachwatch?")
        self._journal_start()
        resumed = 0
        for target in loaded.config.all_targets():
            resumed += self._resume_one(
                target, loaded.config.control_role(target.name), rows.get(target.name)
            )
        self._resume_relay_sets(loaded)
        if resumed:
            log.info("resumed_from_journal", targets=resumed)

    def _resume_one(
        self, target: TargetBase, role: str | None, found: tuple[JournalRow, float] | None
    ) -> int:
        """One target's state from its latest journaled row (1), or nothing (0)."""
        if found is None or found[0].result.kind != target.kind:
            return 0
        row, since = found
        if row.verdict is None:
            return 0
        state = self.store.ensure(target, role)
        state.last = row.result
        state.verdict = Verdict(row.verdict)
        state.technique = Technique(row.technique) if row.technique else None
        state.verdict_since = since
        self._verdict_before[target.name] = (state.verdict, state.technique)
        return 1

    def _resume_relay_sets(self, loaded: LoadedConfig) -> None:
        """Keep the journal's latest rows of relay-set members for when the sets hand them over.

        A set is walked over its ``interval`` (a day): a member's result from ten hours ago is its result
        in the current sweep, so members look back one interval, not ``RESUME_MAX_AGE``. Without this a
        restart would empty the aggregates for a day. Members arrive later (a live set once the directory
        tor has a consensus): ``_resume_members`` takes the rows then; what is left is dropped after an
        hour.
        """
        sets = loaded.config.tor.relay_sets
        if not sets:
            return
        stats = ReadStats()
        since = time.time() - max(spec.interval for spec in sets)
        try:
            rows = journal_latest(self.options.state_dir, since, stats)
        except (FileNotFoundError, sqlite3.Error):
            return
        prefixes = tuple(f"{spec.name}:" for spec in sets)
        self._member_rows = {name: row for name, row in rows.items() if name.startswith(prefixes)}
        asyncio.get_running_loop().call_later(RESUME_MAX_AGE, self._member_rows.clear)

    def _resume_members(self, targets: Sequence[TargetBase]) -> None:
        """New relay-set members start from their journaled result in the current sweep (if any)."""
        resumed = sum(self._resume_one(t, None, self._member_rows.pop(t.name, None)) for t in targets)
        if resumed:
            log.info("relay_set_members_resumed", members=resumed)

    def _journal_start(self) -> None:
        """A (re)start knows nothing of the vantage until the controls report: say so in the journal when
        the last journaled state was something else, so an incident's phases show the gap a restart or a
        crash left (and no state seems to hold across it)."""
        assert self.journal is not None
        try:
            conn = journal_reader(self.options.state_dir)
            try:
                last = last_vantage_change(conn, time.time() + 1.0)
            finally:
                conn.close()
        except (FileNotFoundError, sqlite3.Error):
            return
        if last is not None and last.state != VantageState.UNKNOWN.value:
            reason = "reachwatch (re)started: no control results yet"
            self.journal.append(VantageChange(time.time(), VantageState.UNKNOWN.value, last.state, reason))

    async def run(self) -> int:
        """Start, serve until SIGTERM/SIGINT, shut down cleanly. Returns the exit code."""
        try:
            await self.start()
        except BaseException:
            # release what did start (journal thread, socket) without log lines: the caller prints the
            # one-line error, and nothing else should reach stderr for bad input
            await self.shutdown(quiet=True)
            raise
        await self._stop.wait()
        await self.shutdown()
        return 0

    def request_stop(self) -> None:
        self._stop.set()

    async def shutdown(self, *, quiet: bool = False) -> None:
        """Drain probes in flight, flush and close the journal, stop listening."""
        self._ready = False
        if self._lag_task is not None:
            self._lag_task.cancel()
        if self.relay_sets is not None:
            await self.relay_sets.close()
        if self.scheduler is not None:
            finished = await self.scheduler.drain(self.options.drain_timeout)
            if not quiet:
                log.info("probes_drained", all_finished=finished)
        if self.services is not None and self.services.tor is not None:
            await self.services.tor.close()
        if self.directory is not None:
            await self.directory.close()
        if self.journal is not None:
            await asyncio.to_thread(self.journal.close)
            if not quiet:
                log.info("journal_closed", committed=self.journal.committed)
        if self.web is not None:
            await self.web.stop()
        self._remove_signals()
        if not quiet:
            log.info("stopped")

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, self._sighup)
        loop.add_signal_handler(signal.SIGTERM, self.request_stop)
        loop.add_signal_handler(signal.SIGINT, self.request_stop)

    def _remove_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

    def _sighup(self) -> None:
        log.info("reload_requested", via="SIGHUP")
        task = asyncio.get_running_loop().create_task(self.reload())
        self._reloads.add(task)  # a reference until done (reload itself never raises)
        task.add_done_callback(self._reloads.discard)

    async def reload(self) -> tuple[bool, str]:
        """Load the config again; on any error keep the last good one. Returns (ok, message).

        Never raises: a failure of any kind (a bad config, secret or web config, or a bug) is one error
        line, ``reachwatch_config_last_reload_successful`` 0, and the message for ``/-/reload``.
        """
        async with self._reload_lock:
            try:
                # YAML, relay sets from up to 64 MB of Onionoo JSON, secret files: off the event loop,
                # which keeps probing and serving meanwhile (``_load`` touches no loop-bound state)
                loaded, key = await asyncio.to_thread(self._load)
                assert self.scheduler is not None and self.web is not None and self.services is not None
                await self.scheduler.reload(loaded)  # raises before changing anything
                if self.loaded is None or loaded.config.tor != self.loaded.config.tor:
                    old_tor, self.services.tor = self.services.tor, TorService.from_config(loaded.config.tor)
                    if old_tor is not None:
                        await old_tor.close()
                await self._reload_relay_sets(loaded)
                self.web.update_security(loaded.web)  # a renewed certificate into the live context
            except ReachwatchError as exc:
                return self._reload_failed(str(exc))
            except Exception as exc:  # a bug must not leave SIGHUP's task failing unseen or /-/reload a 500
                return self._reload_failed(f"internal error ({type(exc).__name__}: {exc})")
            self.loaded, self._signing_key = loaded, key
            names = {t.name for t in self.scheduler.all_targets()}
            self.ports_seen.retain(names)
            for memory in (self._verdict_before, self._reference_seen):
                for name in [n for n in memory if n not in names]:
                    del memory[name]
            self._apply_logging(loaded)
            self.daemon_status.config = loaded.config
            self.daemon_status.reload_successful = True
            self.daemon_status.reload_success_timestamp = time.time()
            self.web.set_descriptor_reserve(probe_descriptor_reserve(loaded.config.scheduler.max_concurrency))
            if self.journal is not None:
                self.journal.retention = loaded.config.journal.retention
            if self.incidents is not None:
                self.incidents.reconfigure(loaded.config)
                self._feed_vantage_change()  # a reload's change has no attempt to wait for
            log.info("config_reloaded", config=loaded.source, targets=len(loaded.config.all_targets()))
            return True, "config reloaded"

    async def _reload_relay_sets(self, loaded: LoadedConfig) -> None:
        """A new directory tor only when its settings changed; the watcher takes the new sets."""
        assert self.relay_sets is not None and self.loaded is not None
        if DirectoryTor.settings(loaded.config.tor) != DirectoryTor.settings(self.loaded.config.tor):
            old, self.directory = self.directory, DirectoryTor.from_config(loaded.config.tor)
            if old is not None:
                await old.close()
        self.relay_sets.reconfigure(loaded, self.directory)

    def _reload_failed(self, message: str) -> tuple[bool, str]:
        # the reply of /-/reload is not a log line: the redaction the logger applies is applied here too
        message = str(rwlog.REDACTOR.redact(" ".join(message.split())))
        self.daemon_status.reload_successful = False
        log.error("config_reload_failed", error=message, keeping=self.loaded.source if self.loaded else None)
        return False, message

    # --- scheduler callbacks ------------------------------------------------------------------------
    def _on_result(self, result: ProbeResult, state: TargetState, changed: bool) -> None:
        self.ports_seen.observe(self.store, state.target, result)
        if self.journal is not None:
            row = JournalRow(
                result=result,
                group=state.target.group,
                role=state.role_label,
                verdict=state.verdict.value,
                technique=state.technique.value if state.technique else None,
            )
            self.journal.append(row)
            self._journal_decisions(row, state, changed)
        log.debug(
            "probe_result",
            target=result.target,
            kind=result.kind,
            success=result.success,
            failure=result.failure.value if result.failure else None,
            stage=result.stage.value if result.stage else None,
            evidence=result.evidence.value if result.evidence else None,
            duration_s=round(result.duration_s, 3),
        )
        if changed:
            log.info(
                "verdict_changed",
                target=state.name,
                verdict=state.verdict.value,
                technique=state.technique.value if state.technique else None,
                failure=result.failure.value if result.failure else None,
                stage=result.stage.value if result.stage else None,
            )

    def _journal_decisions(self, row: JournalRow, state: TargetState, changed: bool) -> None:
        """Journal a confirmed verdict change with its evidence, and a reference observation relied on;
        feed the live incidents in the journal's order (the attempt, then what it decided)."""
        assert self.journal is not None
        result = row.result
        if self.incidents is not None:
            self.incidents.attempt(row)
        self._feed_vantage_change()
        reference = relied_reference(state, time.time())
        if reference is not None and self._reference_seen.get(state.name) != reference.key:
            self._reference_seen[state.name] = reference.key
            if not changed:  # a change carries its reference into the journal itself
                self.journal.append(reference)
        current = (state.verdict, state.technique)
        previous = self._verdict_before.get(state.name, (Verdict.UNKNOWN, None))
        if changed and current != previous:
            change = verdict_change(state, result, previous, reference)
            self.journal.append(change)
            if self.incidents is not None:
                self.incidents.verdict_change(change)
        self._verdict_before[state.name] = current

    def _feed_vantage_change(self) -> None:
        pending, self._vantage_pending = self._vantage_pending, None
        if pending is not None and self.incidents is not None:
            self.incidents.vantage_change(pending)

    def _on_vantage(self, reading: VantageReading) -> None:
        if self.journal is not None and reading.state is not self._vantage_before:
            change = vantage_change(self.store, self._vantage_before, time.time())
            self.journal.append(change)
            # the live incidents take it after the attempt that decided it (``_on_result`` follows)
            self._feed_vantage_change()
            self._vantage_pending = change
        self._vantage_before = reading.state
        if reading.state is VantageState.OFFLINE:
            # the words an operator looking at an empty dashboard needs first
            log.warning("vantage offline, nothing called blocked", reason=reading.reason)
        elif reading.state is VantageState.INTERNATIONAL_SHUTDOWN:
            log.warning(
                "international shutdown: targets abroad are unknown, not blocked", reason=reading.reason
            )
        else:
            log.info("vantage_state", state=reading.state.value, reason=reading.reason)


def run_async(main: Any) -> Any:
    """Run a coroutine on uvloop when it is installed (less CPU per probe), else on asyncio's loop.

    uvloop is optional (``reachwatch[speed]``, or Debian's python3-uvloop 0.17, which predates
    ``uvloop.run``): its loop goes to asyncio's own runner, which every uvloop version supports.
    """
    try:
        import uvloop  # noqa: PLC0415 - optional speed-up
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)
