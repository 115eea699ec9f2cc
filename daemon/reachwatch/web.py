"""The HTTP endpoint: the status page at ``/``, ``/metrics``, ``/-/healthy``, ``/-/ready``,
``POST /-/reload``, ``/api/v1/status``, ``/api/v1/incidents``.

Served by aiohttp on ``web.listen_address`` (default 127.0.0.1:10491) through ``weblisten.Listener``
(connection cap within the descriptor budget, header/idle/lifetime deadlines, 431 for oversized headers).
Optional TLS and basic auth come from an exporter-toolkit ``web-config.yml`` (``config/webconfig.py``); the
cost of basic auth is bounded in ``webauth.py``.

Browsers are peers too. On a loopback listener a page elsewhere can resolve its own name to 127.0.0.1
(DNS rebinding) and read the status; so there the ``Host`` must be an IP literal or ``localhost``
(answered 421 otherwise). On any listener a state-changing request (``POST``/``PUT /-/reload``) carrying
an ``Origin`` other than its own, or ``Sec-Fetch-Site: cross-site``, is refused 403 (CSRF): curl and
Prometheus send neither header.

The server knows the daemon only through the small ``Backend`` protocol, so tests can serve a bare
``StateStore`` and the daemon stays the single owner of its state.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from prometheus_client.registry import CollectorRegistry

from reachwatch import __version__, i18n, refproto, statuspage, statuspage_html
from reachwatch.config.targets.tor_bootstrap import TorBootstrapTarget
from reachwatch.config.targets.tor_bridge import TorBridgeTarget
from reachwatch.config.types import split_listen_address
from reachwatch.config.webconfig import WebSecurity, load_cert_chain
from reachwatch.errors import ConfigError
from reachwatch.exposition import encode
from reachwatch.incident_live import QueryError
from reachwatch.metrics import WebCounters
from reachwatch.state import StateStore
from reachwatch.webauth import AuthResult, BasicAuth
from reachwatch.weblisten import (
    BASE_RESERVE,
    Listener,
    ListenerLimits,
    ServedApp,
    connection_cap,
    raise_nofile_limit,
)

log = structlog.get_logger(__name__)

_MAX_BODY = 64 * 1024
_UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class Backend(Protocol):
    """What the web server needs from the daemon."""

    registry: CollectorRegistry

    def ready(self) -> bool: ...

    async def reload(self) -> tuple[bool, str]: ...

    def status(self) -> dict[str, Any]: ...

    async def incidents_document(self, query: Mapping[str, str]) -> dict[str, Any]: ...
    async def observations(self, nonce: str | None) -> bytes: ...


def _transport(target: object) -> str | None:
    """A Tor bridge's or bootstrap's transport from its config (a bounded name, public like the
    ``transport`` fact, so private bridges included); None for every other kind."""
    if isinstance(target, TorBridgeTarget | TorBootstrapTarget):
        return target.transport_name()
    return None


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
                "transport": _transport(t),
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
    """``127.0.0.1:10491``, ``[::1]:10491`` or ``:10491`` (all interfaces) -> (host, port); the config
    checks the same (``config.types.split_listen_address``), this covers ``--web.listen-address``."""
    try:
        return split_listen_address(address)
    except ValueError as exc:
        raise ConfigError("web.listen_address", f"{address!r} {exc}") from None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def is_loopback_host(host: str) -> bool:
    """Whether a listen host is loopback only (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_is_not_a_name(host_header: str) -> bool:
    """A ``Host`` a DNS-rebinding page cannot send: an IP literal or ``localhost`` (any port)."""
    value = host_header.strip().lower()
    if value.startswith("["):
        value = value[1 : value.find("]")] if "]" in value else value
    else:
        value = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    if value == "localhost" or value.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def cross_site(request: web.Request) -> bool:
    """Whether a browser says this request comes from another site (``Origin``, ``Sec-Fetch-Site``)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return True
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        return True
    return origin == "null" or netloc.lower() != request.headers.get("Host", "").lower()


class WebServer:
    """The aiohttp application and its listener."""

    def __init__(
        self,
        backend: Backend,
        listen_address: str,
        security: WebSecurity,
        *,
        limits: ListenerLimits | None = None,
        descriptor_reserve: int = BASE_RESERVE,
    ) -> None:
        """``descriptor_reserve``: descriptors kept for the probes (``probe_descriptor_reserve``)."""
        self.backend = backend
        self.listen_address = listen_address
        self.security = security
        self.limits = limits or ListenerLimits()
        self.descriptor_reserve = descriptor_reserve
        self.listener: Listener | None = None
        self._loopback = False
        self.auth = BasicAuth()
        self.auth.set_users(security.users)
        self.app = web.Application(middlewares=[self._middleware], client_max_size=_MAX_BODY)
        self.app.router.add_get("/metrics", self._metrics)
        self.app.router.add_get("/-/healthy", self._healthy)
        self.app.router.add_get("/-/ready", self._ready)
        self.app.router.add_post("/-/reload", self._reload)
        self.app.router.add_put("/-/reload", self._reload)
        self.app.router.add_get("/api/v1/status", self._status)
        self.app.router.add_get("/api/v1/incidents", self._incidents)
        self.app.router.add_get(refproto.PATH, self._observations)
        self.app.router.add_get("/", self._index)
        self._served: ServedApp | None = None
        self.port: int | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.security.ssl_context is not None else "http"

    async def start(self) -> None:
        host, port = parse_listen_address(self.listen_address)
        self._loopback = is_loopback_host(host)
        nofile = raise_nofile_limit()
        cap = connection_cap(self.limits, nofile, self.descriptor_reserve)
        self._served = await ServedApp.start(
            self.app,
            host,
            port,
            ssl_context=self.security.ssl_context,
            limits=self.limits,
            cap=cap,
            field="web.listen_address",
            address=self.listen_address,
        )
        self.listener = self._served.listener
        self.port = self.listener.port
        log.info(
            "web_listening",
            address=f"{self.scheme}://{host}:{self.port}",
            auth=bool(self.security.users),
            max_connections=cap,
            descriptor_limit=nofile,
        )

    def counters(self) -> WebCounters:
        """What the listener and the auth check refused so far (for the daemon's metrics)."""
        listener = self.listener
        return WebCounters(
            connections=listener.open_connections if listener else 0,
            connection_limit=listener.cap if listener else 0,
            refused=listener.refused if listener else 0,
            auth_throttled=self.auth.throttled,
        )

    def set_descriptor_reserve(self, reserve: int) -> None:
        """A reload changed the probes' concurrency: keep their share of descriptors free."""
        self.descriptor_reserve = reserve
        if self.listener is not None:
            self.listener.cap = connection_cap(self.limits, raise_nofile_limit(), reserve)

    async def stop(self) -> None:
        self.listener = None
        if self._served is not None:
            await self._served.close()
            self._served = None

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
        host = request.headers.get("Host")
        if self._loopback and host is not None and not host_is_not_a_name(host):
            return web.Response(
                status=421, text="a loopback listener answers only Host 127.0.0.1, [::1] or localhost\n"
            )
        if request.method in _UNSAFE_METHODS and cross_site(request):
            return web.Response(status=403, text="cross-site request refused\n")
        # every path is guarded, health included, as in exporter-toolkit
        if self.auth.users:
            result = await self.auth.check(request.headers.get("Authorization"), request.remote)
            if result is AuthResult.THROTTLED:
                return web.Response(
                    status=429, text="Too many failed attempts\n", headers={"Retry-After": "60"}
                )
            if result is not AuthResult.OK:
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

    async def _incidents(self, request: web.Request) -> web.Response:
        """Incidents (``incident_live``): the live window, or ``?since=&until=`` (unix seconds); filters
        ``scope``, ``technique``, ``status``. A bad query is 400 with one line."""
        try:
            doc = await self.backend.incidents_document(dict(request.query))
        except QueryError as exc:
            return web.Response(status=400, text=f"{exc}\n")
        body = json.dumps(doc, separators=(",", ":"), sort_keys=False)
        return web.Response(body=body.encode(), content_type="application/json")

    async def _observations(self, request: web.Request) -> web.Response:
        """Reference protocol v2 (``refproto``): this vantage's observations, signed when it has a key."""
        nonce = request.query.get("nonce")
        if nonce is not None and not refproto.NONCE_PATTERN.match(nonce):
            return web.Response(status=400, text="nonce: 16-64 characters of [0-9A-Za-z_-]\n")
        body = await self.backend.observations(nonce)
        return web.Response(body=body, content_type="application/json")

    async def _index(self, request: web.Request) -> web.Response:
        """The status page (``statuspage``): what works from here, from the same documents as the API."""
        status = self.backend.status()
        try:
            incidents: dict[str, Any] | None = await self.backend.incidents_document({})
        except Exception as exc:  # the page still shows what works without the incidents
            log.warning("status_page_incidents_unavailable", error=type(exc).__name__)
            incidents = None
        lang = i18n.choose(
            request.query.get("lang"),
            str(getattr(self.backend, "language", "auto")),
            request.headers.get("Accept-Language"),
        )
        zone = str(status.get("vantage", {}).get("timezone") or "UTC")
        page = statuspage.build(status, incidents, timezone=zone)
        html = await asyncio.to_thread(statuspage_html.render, page, lang)
        response = web.Response(text=html, content_type="text/html", charset="utf-8")
        response.headers.update(statuspage_html.HEADERS)
        response.headers["Content-Language"] = lang
        response.headers["Vary"] = "Accept-Language"
        return response
