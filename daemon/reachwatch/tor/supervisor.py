"""The tor processes reachwatch runs itself: launching, controlling with stem, restarting with backoff.

``TorProcess`` is one tor with its own DataDirectory and a control socket inside it, controlled by a stem
``Controller``. It is launched with ``asyncio`` subprocesses rather than ``stem.process.launch_tor``, whose
timeout relies on SIGALRM and only works in the main thread. stem's controller is blocking and delivers
events on its own thread, so every control call runs in a worker thread (``call``) and events are handed to
the event loop with ``call_soon_threadsafe`` (``events``).

``TorSupervisor`` keeps one long-lived ``TorProcess`` for bridge batch testing: started on first use,
restarted with exponential backoff if it dies. Only Tor targets depend on it: when the tor binary or a
transport plugin is missing, ``TorUnavailable`` names the failure (``tor_unavailable`` / ``tor_pt_missing``)
and the rest of the daemon goes on.

tor's own log is discarded except its last error lines, which are scrubbed of addresses before they reach
a debug log: bridge addresses must not leak through tor's messages either.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import stem
import structlog
from stem.control import Controller
from stem.response.events import Event

from reachwatch.failures import Failure, scrub

log = structlog.get_logger(__name__)

T = TypeVar("T")

# tor writes at most this much to stderr before it is ready; we keep the tail for error messages
_STDERR_KEEP = 4096
# the public directory a recycled tester tor may inherit (never anything about bridges: their descriptors
# are what a batch fetches through them, and guard state would pick paths for us)
DIRECTORY_CACHE = ("cached-certs", "cached-microdesc-consensus", "cached-microdescs", "cached-microdescs.new")
_CACHE_MAX = 64 * 1024 * 1024  # a file larger than this is not copied (a full microdesc cache is ~10 MB)


class TorUnavailable(Exception):
    """tor cannot be used here: ``failure`` is ``tor_unavailable`` or ``tor_pt_missing``.

    ``hint`` says what the operator can do about it (safe to show: it names programs, never a bridge).
    """

    def __init__(self, failure: Failure, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.failure = failure
        self.hint = hint


# what to do when a transport's client program is missing, by program (Debian bookworm's packages)
_INSTALL_HINTS = {
    "obfs4proxy": "install it: apt install obfs4proxy",
    "snowflake-client": "install it: apt install snowflake-client",
    # not packaged for bookworm: Debian trixie has it, and Tor Browser ships the binary
    "lyrebird": "lyrebird is not packaged for Debian bookworm: install the lyrebird package of Debian"
    " trixie, or copy Tor Browser's lyrebird binary, then set tor.transports",
}


def missing_plugin_hint(transport: str, binary: str) -> str:
    """One line: how to get ``binary`` for ``transport``, and where the config names it."""
    base = Path(binary).name
    how = _INSTALL_HINTS.get(base, f"install {base}")
    return f"{transport} needs {base}: {how} ({transport}: <path>), or leave {transport} bridges out"


@dataclass(frozen=True)
class TorBinaries:
    """Where tor and the client transport plugins are; ``transports`` maps transport name -> binary."""

    tor: str = "tor"
    transports: Mapping[str, str] = field(default_factory=dict)
    # command prefix for tor, e.g. ("ip", "netns", "exec", "vpn0") to measure from another namespace
    wrapper: Sequence[str] = ()

    def tor_path(self) -> str:
        path = shutil.which(self.tor)
        if path is None:
            raise TorUnavailable(Failure.TOR_UNAVAILABLE, f"tor binary {self.tor!r} not found")
        return path

    def plugin_lines(self, transports: Sequence[str]) -> list[str]:
        """``ClientTransportPlugin`` values for these transports; ``TorUnavailable`` if one is missing."""
        by_binary: dict[str, list[str]] = {}
        for name in sorted(set(transports)):
            binary = self.transports.get(name)
            if binary is None:
                raise TorUnavailable(
                    Failure.TOR_PT_MISSING,
                    f"no transport plugin configured for {name}",
                    f"set tor.transports ({name}: <path of its client program>)",
                )
            path = shutil.which(binary)
            if path is None:
                raise TorUnavailable(
                    Failure.TOR_PT_MISSING,
                    f"transport plugin {binary!r} for {name} not found",
                    missing_plugin_hint(name, binary),
                )
            by_binary.setdefault(path, []).append(name)
        return [f"{','.join(names)} exec {path}" for path, names in by_binary.items()]


def torrc_text(options: Mapping[str, str | Sequence[str]]) -> str:
    """Render options as a torrc; a list value becomes repeated lines (``Bridge``, ``DirAuthority`` ...)."""
    lines: list[str] = []
    for key, value in options.items():
        for item in [value] if isinstance(value, str) else value:
            if "\n" in item:
                raise ValueError(f"newline in torrc value for {key}")
            lines.append(f"{key} {item}")
    return "\n".join(lines) + "\n"


class TorProcess:
    """One running tor and its stem controller."""

    def __init__(
        self, proc: asyncio.subprocess.Process, controller: Controller, data_dir: Path, owns_dir: bool
    ):
        self.proc = proc
        self.controller = controller
        self.data_dir = data_dir
        self._owns_dir = owns_dir
        self.started_at = time.monotonic()

    @classmethod
    async def launch(
        cls,
        binaries: TorBinaries,
        options: Mapping[str, str | Sequence[str]],
        *,
        data_dir: Path | None = None,
        start_timeout: float = 30.0,
        seed: Path | None = None,
    ) -> TorProcess:
        """Start tor with ``options`` and a control socket; return once the controller is authenticated.

        ``data_dir=None`` means a fresh temporary DataDirectory, removed on ``close`` (no cached consensus
        or descriptors can hide blocking). ``seed``: a directory whose ``DIRECTORY_CACHE`` files are copied
        in first (the public consensus a previous tester tor fetched). The process is tied to ours
        (``__OwningControllerProcess``) so it cannot outlive a crashed daemon.
        """
        tor = binaries.tor_path()
        owns_dir = data_dir is None
        directory = Path(tempfile.mkdtemp(prefix="reachwatch-tor-")) if data_dir is None else data_dir
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        directory.chmod(0o700)
        if seed is not None:
            copy_directory_cache(seed, directory)
        socket_path = directory / "control.sock"
        with contextlib.suppress(FileNotFoundError):
            socket_path.unlink()
        full: dict[str, str | Sequence[str]] = {
            "DataDirectory": str(directory),
            "ControlSocket": str(socket_path),
            "CookieAuthentication": "1",
            "__OwningControllerProcess": str(os.getpid()),
            "Log": "warn stderr",
            "SocksPort": "auto",
            **options,
        }
        torrc = directory / "torrc"
        torrc.write_text(torrc_text(full))
        proc = await asyncio.create_subprocess_exec(
            *binaries.wrapper, tor, "-f", str(torrc), "--ignore-missing-torrc",
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stderr_tail = bytearray()
        drain = asyncio.create_task(_drain(proc, stderr_tail))
        try:
            async with asyncio.timeout(start_timeout):
                controller = await _connect(proc, socket_path, stderr_tail)
        except BaseException:
            await _terminate(proc)
            drain.cancel()
            if owns_dir:
                shutil.rmtree(directory, ignore_errors=True)
            raise
        process = cls(proc, controller, directory, owns_dir)
        process._drain = drain
        return process

    _drain: asyncio.Task[None] | None = None

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking stem call off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    @contextlib.contextmanager
    def events(self, *event_types: str) -> Iterator[asyncio.Queue[Event]]:
        """Subscribe to control events for the duration of the ``with`` block; events arrive on a queue.

        stem calls listeners on its event thread; each event is passed to the loop thread-safely. The
        queue is bounded so a flood of events costs bounded memory (the oldest are kept; later ones dropped).
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=10000)

        def put(event: Event) -> None:
            if not queue.full():
                queue.put_nowait(event)

        def listener(event: Event) -> None:
            with contextlib.suppress(RuntimeError):  # loop closed while tor was still talking
                loop.call_soon_threadsafe(put, event)

        self.controller.add_event_listener(listener, *event_types)
        try:
            yield queue
        finally:
            with contextlib.suppress(Exception):
                self.controller.remove_event_listener(listener)

    async def close(self) -> None:
        # tor first: a client exits at once on SIGTERM, and stem's close is quicker with the socket gone
        await _terminate(self.proc)
        with contextlib.suppress(Exception):
            await asyncio.to_thread(self.controller.close)
        if self._drain is not None:
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def copy_directory_cache(source: Path, destination: Path) -> None:
    """Copy the public directory cache (``DIRECTORY_CACHE``) from one DataDirectory to another."""
    for name in DIRECTORY_CACHE:
        with contextlib.suppress(OSError):
            if (source / name).stat().st_size <= _CACHE_MAX:
                shutil.copyfile(source / name, destination / name)


async def _drain(proc: asyncio.subprocess.Process, tail: bytearray) -> None:
    """Keep reading tor's stderr so it can never block on a full pipe; remember the last bytes."""
    assert proc.stderr is not None
    while chunk := await proc.stderr.read(4096):
        tail.extend(chunk)
        del tail[:-_STDERR_KEEP]


async def _connect(proc: asyncio.subprocess.Process, socket_path: Path, stderr_tail: bytearray) -> Controller:
    while not os.path.exists(socket_path):  # noqa: ASYNC240 -- a stat() of a local file
        if proc.returncode is not None:
            raise TorUnavailable(
                Failure.TOR_UNAVAILABLE,
                f"tor exited at start: {scrub(stderr_tail.decode(errors='replace'))[-300:]}",
            )
        await asyncio.sleep(0.05)

    def connect() -> Controller:
        # tor accepts on its control socket a moment after the file appears; stem leaves the socket of a
        # refused connect unclosed (a ResourceWarning at some later garbage collection), so knock first
        # with a socket of our own
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as knock:
            knock.connect(str(socket_path))
        controller = Controller.from_socket_file(str(socket_path))
        try:
            controller.authenticate()
        except BaseException:
            controller.close()
            raise
        return controller

    while True:
        try:
            return await asyncio.to_thread(connect)
        except (stem.SocketError, OSError):  # the socket file appears a moment before tor accepts on it
            if proc.returncode is not None:
                raise
            await asyncio.sleep(0.1)


async def _terminate(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), timeout=10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


class TorSupervisor:
    """Owns the daemon's long-lived tor: start on demand, restart with backoff after it dies."""

    def __init__(
        self,
        binaries: TorBinaries,
        options: Mapping[str, str | Sequence[str]] | None = None,
        *,
        data_dir: Path | None = None,
        start_timeout: float = 30.0,
        max_backoff: float = 300.0,
    ) -> None:
        self.binaries = binaries
        # DisableNetwork until a batch: an idle tester must not bootstrap through the public network
        self.options: dict[str, str | Sequence[str]] = {"DisableNetwork": "1", **(options or {})}
        self.data_dir = data_dir
        self.start_timeout = start_timeout
        self.max_backoff = max_backoff
        self.restarts = 0
        self._process: TorProcess | None = None
        self._lock = asyncio.Lock()
        self._failures = 0
        self._not_before = 0.0
        self._seed: Path | None = None  # the directory cache a recycled tor leaves its successor

    async def get(self) -> TorProcess:
        """The running tor; (re)started if needed. Raises ``TorUnavailable`` while backing off."""
        async with self._lock:
            if self._process is not None and self._process.alive:
                return self._process
            if self._process is not None:
                log.warning("tor_died", returncode=self._process.proc.returncode)
                await self._process.close()
                self._process = None
                self.restarts += 1
            wait = self._not_before - time.monotonic()
            if wait > 0:
                raise TorUnavailable(Failure.TOR_UNAVAILABLE, f"tor failed to start; retrying in {wait:.0f}s")
            try:
                self._process = await TorProcess.launch(
                    self.binaries,
                    self.options,
                    data_dir=self.data_dir,
                    start_timeout=self.start_timeout,
                    seed=self._seed,
                )
            except (TorUnavailable, OSError, TimeoutError) as exc:
                self._failures += 1
                self._not_before = time.monotonic() + min(self.max_backoff, 2.0**self._failures)
                log.warning("tor_start_failed", error=scrub(str(exc)), attempt=self._failures)
                if isinstance(exc, TorUnavailable):
                    raise
                raise TorUnavailable(
                    Failure.TOR_UNAVAILABLE, f"tor did not start: {scrub(str(exc))}"
                ) from exc
            self._failures = 0
            return self._process

    async def recycle(self) -> None:
        """Stop the current tor so the next ``get`` starts a fresh one: no bridge descriptor, no guard
        state, but the public consensus and microdescriptors it fetched (a data stage needs them, and
        fetching megabytes again through the bridges at every batch would make them stand out)."""
        async with self._lock:
            process = self._process
            if process is not None and process.alive and self.data_dir is None:
                if self._seed is None:
                    self._seed = Path(tempfile.mkdtemp(prefix="reachwatch-tor-cache-"))
                await asyncio.to_thread(copy_directory_cache, process.data_dir, self._seed)
        await self._stop_process()

    async def _stop_process(self) -> None:
        async with self._lock:
            if self._process is not None:
                await self._process.close()
                self._process = None

    async def close(self) -> None:
        await self._stop_process()
        if self._seed is not None:
            shutil.rmtree(self._seed, ignore_errors=True)
            self._seed = None
