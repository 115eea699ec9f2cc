"""The HTTP endpoint: ``/metrics``, ``/-/healthy``, ``/-/ready``, ``POST /-/reload``, ``/api/v1/status``.

Served by aiohttp on ``web.listen_address`` (default 127.0.0.1:10491). Optional TLS and basic auth come
from an exporter-toolkit ``web-config.yml`` (``webconfig.py``). Basic auth checks bcrypt hashes in an
executor, one at a time (a cost-10 hash is ~70 ms of CPU: it must neither block the event loop nor let
a password guesser eat every core), and caches successful checks per (user, hash, password) digest.
Unknown users are checked against a fixed dummy hash so timing does not reveal which users exist.

The server knows the daemon only through the small ``Backend`` protocol, so tests can serve a bare
``StateStore`` and the daemon stays the single owner of its state.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import bcrypt
import structlog
from aiohttp import web
from prometheus_client.registry import CollectorRegistry

from reachwatch import __version__
from reachwatch.errors import ConfigError
from reachwatch.exposition import encode
from reachwatch.state import StateStore
from reachwatch.webconfig import WebSecurity, load_cert_chain

log = structlog.get_logger(__name__)

# bcrypt of a random string nobody knows; compared against for unknown users (timing parity)
_DUMMY_HASH = b"$2b$10$afBebujPrSz/7EiDIEOaPOaTobcDFylN.wDoBQM7beAjXeT1cHmtS"
_AUTH_CACHE_MAX = 1024
_MAX_BODY = 64 * 1024


class Backend(Protocol):
    """What the web server needs from the daemon."""

    registry: CollectorRegistry

    def ready(self) -> bool: ...

    async def reload(self) -> tuple[bool, str]: ...

    def status(self) -> dict[str, Any]: ...


def status_document(store: StateStore, vantage_name: str) -> dict[str, Any]:
    """The ``/api/v1/status`` JSON (shape in docs/ARCHITECTURE.md); private targets only by name."""
    targets = []
    for state in sorted(store.targets.values(), key=lambda s: s.name):
        t = state.target
        targets.append(
            {
                "name": t.name,
                "kind": t.kind,
                "group": t.group,
                "role": state.role_label,
                "verdict": state.verdict.value,
                "technique": state.technique.value if state.technique else None,
                "verdict_since": state.verdict_since,
                "last": state.last.to_dict() if state.last else None,
            }
        )
    return {
        "version": __version__,
        "vantage": {
            "name": vantage_name,
            "state": store.vantage_state.value,
            "since": store.vantage_since,
            "reason": store.vantage_reason,
        },
        "targets": targets,
    }


def parse_listen_address(address: str) -> tuple[str, int]:
    """``127.0.0.1:10491``, ``[::1]:10491`` or ``:10491`` (all interfaces) -> (host, port)."""
    host, sep, port_text = address.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ConfigError("web.listen_address", f"{address!r} is not host:port")
    host = host.strip("[]")
    return (host or "0.0.0.0", int(port_text))  # ":port" means all interfaces, by convention


class BasicAuth:
    """Checks ``Authorization: Basic`` against bcrypt hashes; bcrypt off the loop, results cached."""

    def __init__(self) -> None:
        self.users: dict[str, bytes] = {}
        self._cache: dict[bytes, bool] = {}
        self._lock = asyncio.Lock()

    def set_users(self, users: dict[str, bytes]) -> None:
        self.users = dict(users)
        self._cache.clear()

    async def check(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return False
        user, sep, password = decoded.partition(":")
        if not sep:
            return False
        hashed = self.users.get(user)
        known = hashed is not None
        hashed = hashed if hashed is not None else _DUMMY_HASH
        key = hashlib.sha256(b"\0".join([user.encode(), hashed, password.encode()])).digest()
        cached = self._cache.get(key)
        if cached is not None:
            return cached and known
        async with self._lock:  # one bcrypt at a time, like exporter-toolkit's mutex
            loop = asyncio.get_running_loop()
            ok = await loop.run_in_executor(None, _checkpw, password.encode(), hashed)
        ok = ok and known
        if ok:  # cache successes only: failures stay expensive for a guesser
            if len(self._cache) >= _AUTH_CACHE_MAX:
                self._cache.clear()
            self._cache[key] = True
        return ok


def _checkpw(password: bytes, hashed: bytes) -> bool:
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # bcrypt 5 refuses passwords over 72 bytes; a malformed hash
        return False


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WebServer:
    """The aiohttp application and its listening site."""

    def __init__(self, backend: Backend, listen_address: str, security: WebSecurity) -> None:
        self.backend = backend
        self.listen_address = listen_address
        self.security = security
        self.auth = BasicAuth()
        self.auth.set_users(security.users)
        self.app = web.Application(middlewares=[self._middleware], client_max_size=_MAX_BODY)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/-/healthy", self._healthy)
        self.app.router.add_get("/-/ready", self._ready)
        self.app.router.add_post("/-/reload", self._reload)
        self.app.router.add_put("/-/reload", self._reload)
        self.app.router.add_get("/api/v1/status", self._status)
        self.app.router.add_get("/", self._index)
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.security.ssl_context is not None else "http"

    async def start(self) -> None:
        host, port = parse_listen_address(self.listen_address)
        self._runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=self.security.ssl_context)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            raise ConfigError(
                "web.listen_address", f"cannot listen on {self.listen_address}: {exc.strerror}"
            ) from None
        server = site._server  # aiohttp exposes no public accessor for the bound port
        sockets = getattr(server, "sockets", None) or []
        self.port = int(sockets[0].getsockname()[1]) if sockets else port
        log.info(
            "web_listening", address=f"{self.scheme}://{host}:{self.port}", auth=bool(self.security.users)
        )

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def update_security(self, security: WebSecurity) -> None:
        """Apply a reloaded web config: users and headers at once; a renewed certificate and key are
        loaded into the live SSL context (new handshakes use them). Turning TLS on or off needs a restart.
        """
        live = self.security.ssl_context
        if (security.ssl_context is None) != (live is None):
            log.warning("web_tls_change_needs_restart")
            security.ssl_context = live
        elif live is not None and security.tls is not None and security.base_dir is not None:
            load_cert_chain(live, security.tls, security.base_dir, security.source or "web config")
            security.ssl_context = live
        self.security = security
        self.auth.set_users(security.users)

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # every path is guarded, health included, as in exporter-toolkit
        if self.auth.users and not await self.auth.check(request.headers.get("Authorization")):
            return web.Response(
                status=401,
                text="Unauthorized\n",
                headers={"WWW-Authenticate": 'Basic realm="reachwatch"'},
            )
        response = await handler(request)
        for name, value in self.security.headers.items():
            response.headers[name] = value
        return response

    async def _metrics(self, request: web.Request) -> web.Response:
        accept = request.headers.get("Accept", "")
        # rendered in a thread: ~10k targets take a few hundred ms, which must not stall the probes
        # (the collector only reads the store; a dict resized mid-copy is retried once)
        try:
            body, content_type = await asyncio.to_thread(encode, self.backend.registry, accept)
        except RuntimeError:
            body, content_type = await asyncio.to_thread(encode, self.backend.registry, accept)
        response = web.Response(body=body)
        response.headers["Content-Type"] = content_type
        return response

    async def _healthy(self, request: web.Request) -> web.Response:
        return web.Response(text="Healthy.\n")

    async def _ready(self, request: web.Request) -> web.Response:
        if self.backend.ready():
            return web.Response(text="Ready.\n")
        return web.Response(status=503, text="Not ready.\n")

    async def _reload(self, request: web.Request) -> web.Response:
        ok, message = await self.backend.reload()
        if ok:
            return web.Response(text=f"{message}\n")
        return web.Response(status=500, text=f"failed to reload config: {message}\n")

    async def _status(self, request: web.Request) -> web.Response:
        body = json.dumps(self.backend.status(), separators=(",", ":"), sort_keys=False)
        return web.Response(body=body.encode(), content_type="application/json")

    async def _index(self, request: web.Request) -> web.Response:
        links = "".join(f'<li><a href="{p}">{p}</a></li>' for p in ("/metrics", "/api/v1/status", "/-/ready"))
        html = f"<html><head><title>reachwatch</title></head><body><h1>reachwatch {__version__}</h1>"
        html += f"<ul>{links}</ul></body></html>"
        return web.Response(text=html, content_type="text/html")
