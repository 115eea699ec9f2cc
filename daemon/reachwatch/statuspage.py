"""What the status page at ``/`` shows, as plain data: "what works from here right now", per category.

Built only from the documents the API serves (``/api/v1/status`` with its ``ports`` section, and
``/api/v1/incidents``), so the page, the API and reports cannot disagree. No HTML and no language here:
``statuspage_html`` renders this in English, Russian or Kazakh.

Categories follow what an operator's users ask: which Tor transports work (bridges and bootstraps by
transport, relays), which VPN protocols, which proxies, which sites. A bridge's transport is the one
its config names (the document's ``transport``), so bridges group right before any probe ran. Controls
are shown apart with their last try: they are what the verdicts are judged against (is this vantage
online at all?), not something to use. Private targets appear by name only (the status document
carries nothing else of them but their transport's name). Targets without a verdict yet (a fresh
start, a vantage offline) are kept apart (``Group.pending``) so the page can fold them away. A
category can hold thousands of targets (a relay set): its counts cover all of them, its lists show at
most ``MAX_ITEMS`` per group, the failing ones first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MAX_ITEMS = 25

# kind -> category; a kind not listed lands in "other"
CATEGORY_OF_KIND: dict[str, str] = {
    "tor_bridge": "tor",
    "tor_bootstrap": "tor",
    "tor_relay": "tor",
    "tor_dirport": "tor",
    "stun": "tor",
    "fronting": "tor",
    "openvpn": "vpn",
    "openvpn_tunnel": "vpn",
    "wireguard": "vpn",
    "ikev2": "vpn",
    "openconnect": "vpn",
    "socks5": "proxy",
    "http_proxy": "proxy",
    "shadowsocks": "proxy",
    "tls": "sites",
    "https": "sites",
    "http": "sites",
    "dns": "sites",
    "throughput": "sites",
    "tcp": "sites",
}
CATEGORIES = ("tor", "vpn", "proxy", "sites", "other")
# kinds shown in the port-survey section instead (issue 16's `ports` part of the status)
SEPARATE_KINDS = frozenset({"port_survey"})
# verdict order in a list: what works first (the page answers "what can I use"), then what is blocked
_ORDER = {"reachable": 0, "blocked": 1, "unreachable": 2, "unknown": 3}


@dataclass(frozen=True)
class LastTry:
    """The last probe of a target, as far as the page says it (controls show it instead of a verdict:
    they are not judged, they are what the judging stands on)."""

    at: float
    success: bool
    failure: str | None
    stage: str | None


@dataclass(frozen=True)
class Item:
    """One target as the page shows it."""

    name: str
    kind: str
    verdict: str
    technique: str | None
    since: float | None
    hint: str | None = None  # what the operator can do (a missing transport program ...)
    role: str = "target"  # or "domestic_control" / "international_control"
    last: LastTry | None = None  # None: never tried since the daemon started

    @property
    def known(self) -> bool:
        return self.verdict in _ORDER and self.verdict != "unknown"


@dataclass
class Group:
    """Targets of one kind (and, for Tor bridges and bootstraps, one transport)."""

    key: tuple[str, str]  # (kind, transport or "")
    items: list[Item] = field(default_factory=list)

    @property
    def works(self) -> int:
        return sum(1 for i in self.items if i.verdict == "reachable")

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def unknown(self) -> int:
        return sum(1 for i in self.items if not i.known)

    def shown(self) -> list[Item]:
        """The targets with a verdict, at most ``MAX_ITEMS``."""
        ordered = sorted((i for i in self.items if i.known), key=lambda i: (_ORDER[i.verdict], i.name))
        failing_first = [i for i in ordered if i.verdict != "reachable"] + [
            i for i in ordered if i.verdict == "reachable"
        ]
        # with more than MAX_ITEMS, the failing ones are the news; below that, what works comes first
        return (failing_first if len(ordered) > MAX_ITEMS else ordered)[:MAX_ITEMS]

    def pending(self) -> list[Item]:
        """The targets without a verdict yet, at most ``MAX_ITEMS``: the page folds them away, so fifty
        identical "not known" cards (a fresh start, a vantage offline) do not bury what is known."""
        return sorted((i for i in self.items if not i.known), key=lambda i: i.name)[:MAX_ITEMS]


@dataclass
class Category:
    key: str
    groups: dict[tuple[str, str], Group] = field(default_factory=dict)

    @property
    def works(self) -> int:
        return sum(g.works for g in self.groups.values())

    @property
    def total(self) -> int:
        return sum(g.total for g in self.groups.values())

    @property
    def unknown(self) -> int:
        return sum(g.unknown for g in self.groups.values())


@dataclass
class Page:
    """Everything the page shows."""

    vantage: dict[str, Any]
    categories: list[Category]
    controls: list[Item]
    incidents: list[dict[str, Any]] | None  # None: no incident data (journal off, not yet derived)
    ports: dict[str, Any] | None
    timezone: str = "UTC"


def _last_try(last: Mapping[str, Any]) -> LastTry | None:
    at = last.get("started_at")
    if not isinstance(at, int | float):
        return None
    failure, stage = last.get("failure"), last.get("stage")
    return LastTry(
        at=float(at),
        success=bool(last.get("success")),
        failure=str(failure) if failure else None,
        stage=str(stage) if stage else None,
    )


def _item(target: Mapping[str, Any]) -> Item:
    last = target.get("last") or {}
    facts = last.get("facts") or {}
    hint = facts.get("hint")
    return Item(
        name=str(target["name"]),
        kind=str(target["kind"]),
        verdict=str(target.get("verdict") or "unknown"),
        technique=target.get("technique"),
        since=target.get("verdict_since"),
        hint=str(hint) if isinstance(hint, str) else None,
        role=str(target.get("role") or "target"),
        last=_last_try(last) if last else None,
    )


def _group_key(target: Mapping[str, Any]) -> tuple[str, str]:
    """Tor bridges and bootstraps by transport: the config's (``transport`` in the status document,
    known before any probe ran), else the last result's fact (a document from an older daemon)."""
    kind = str(target["kind"])
    if kind in ("tor_bridge", "tor_bootstrap"):
        transport = target.get("transport")
        if not isinstance(transport, str):
            transport = ((target.get("last") or {}).get("facts") or {}).get("transport")
        return kind, str(transport) if isinstance(transport, str) else ""
    return kind, ""


def build(status: Mapping[str, Any], incidents: Mapping[str, Any] | None, timezone: str = "UTC") -> Page:
    """The page's data from the status document and (when there is one) the incidents document."""
    categories = {key: Category(key) for key in CATEGORIES}
    controls: list[Item] = []
    for target in status.get("targets", []):
        if target.get("role", "target") != "target":
            controls.append(_item(target))
            continue
        if target["kind"] in SEPARATE_KINDS:
            continue
        category = categories[CATEGORY_OF_KIND.get(str(target["kind"]), "other")]
        key = _group_key(target)
        category.groups.setdefault(key, Group(key)).items.append(_item(target))
    open_incidents = None
    if incidents is not None:
        open_incidents = [i for i in incidents.get("incidents", []) if i.get("status") == "open"]
    return Page(
        vantage=dict(status.get("vantage", {})),
        categories=[c for c in categories.values() if c.groups],
        controls=sorted(controls, key=lambda i: i.name),
        incidents=open_incidents,
        ports=status.get("ports"),
        timezone=timezone,
    )
