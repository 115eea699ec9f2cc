"""What the status page at ``/`` shows, as plain data: "what works from here right now", per category.

Built only from the documents the API serves (``/api/v1/status`` with its ``ports`` section, and
``/api/v1/incidents``), so the page, the API and reports cannot disagree. No HTML and no language here:
``statuspage_html`` renders this in English, Russian or Kazakh.

Categories follow what an operator's users ask: which Tor transports work (bridges and bootstraps by
transport, relays), which VPN protocols, which proxies, which sites. Controls are shown apart: they are
what the verdicts are judged against, not something to use. Private targets appear by name only (the
status document carries nothing else of them). A category can hold thousands of targets (a relay set):
its counts cover all of them, its list shows at most ``MAX_ITEMS`` per group, the failing ones first.
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
class Item:
    """One target as the page shows it."""

    name: str
    kind: str
    verdict: str
    technique: str | None
    since: float | None
    hint: str | None = None  # what the operator can do (a missing transport program ...)


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

    def shown(self) -> list[Item]:
        ordered = sorted(self.items, key=lambda i: (_ORDER.get(i.verdict, 9), i.name))
        failing_first = [i for i in ordered if i.verdict != "reachable"] + [
            i for i in ordered if i.verdict == "reachable"
        ]
        # with more than MAX_ITEMS, the failing ones are the news; below that, what works comes first
        return (failing_first if len(ordered) > MAX_ITEMS else ordered)[:MAX_ITEMS]


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


@dataclass
class Page:
    """Everything the page shows."""

    vantage: dict[str, Any]
    categories: list[Category]
    controls: list[Item]
    incidents: list[dict[str, Any]] | None  # None: no incident data (journal off, not yet derived)
    ports: dict[str, Any] | None
    timezone: str = "UTC"


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
    )


def _group_key(target: Mapping[str, Any]) -> tuple[str, str]:
    kind = str(target["kind"])
    if kind in ("tor_bridge", "tor_bootstrap"):
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
