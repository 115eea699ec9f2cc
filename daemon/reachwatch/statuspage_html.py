"""The status page's HTML: ``statuspage.Page`` in English, Russian or Kazakh, for a phone as for a desktop.

No JavaScript: plain HTML with one inline stylesheet (allowed by its hash in the Content-Security-Policy,
``CSP``) and a refresh every minute. Every state is said in words and with a sign, never by colour
alone; the colours keep a contrast of at least 4.5:1 (``PALETTE``, checked by a test). Every value from
the documents is escaped. Times are the vantage's local time (``vantage.timezone``).
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from reachwatch import __version__
from reachwatch.i18n import LANGUAGES, NATIVE_NAMES, translations
from reachwatch.statuspage import Category, Group, Item, Page

REFRESH_SECONDS = 60


def N_(message: str) -> str:
    """Marks a message for the catalogs; it is translated where it is shown."""
    return message


# (foreground, background) per state; a test checks each pair's contrast ratio is at least 4.5
PALETTE = {
    "page": ("#1b1b1b", "#ffffff"),
    "reachable": ("#0b5227", "#e3f2e8"),
    "blocked": ("#8a1414", "#fce8e6"),
    "unreachable": ("#5c4300", "#fdf1cc"),
    "unknown": ("#3c4043", "#eceff1"),
    "muted": ("#4a4f55", "#ffffff"),
    "link": ("#0b57d0", "#ffffff"),
}
SIGNS = {"reachable": "✓", "blocked": "✕", "unreachable": "!", "unknown": "?"}

CSS = (
    "*{box-sizing:border-box}"
    f"body{{margin:0;font:16px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,'Noto Sans',sans-serif;"
    f"color:{PALETTE['page'][0]};background:{PALETTE['page'][1]}}}"
    "header,main,footer{max-width:48rem;margin:0 auto;padding:0 1rem}"
    "h1{font-size:1.5rem;margin:1rem 0 .25rem}h2{font-size:1.25rem;margin:1.75rem 0 .25rem}"
    "h3{font-size:1.05rem;margin:1rem 0 .25rem}"
    f".muted{{color:{PALETTE['muted'][0]}}}"
    f"a{{color:{PALETTE['link'][0]}}}"
    ".state{padding:.75rem;border-radius:.5rem;margin:.5rem 0}"
    "ul.items{list-style:none;margin:0;padding:0}"
    "ul.items li{padding:.5rem .75rem;border-radius:.5rem;margin:.35rem 0}"
    "details{margin:.35rem 0}summary{padding:.5rem .75rem;border-radius:.5rem;cursor:pointer}"
    "details p{margin:.5rem 0}"
    ".name{font-weight:600;overflow-wrap:anywhere}.verdict{font-weight:600;white-space:nowrap}"
    ".why,.since{display:block;font-size:.93rem}"
    + "".join(f".{key}{{color:{fg};background:{bg}}}" for key, (fg, bg) in PALETTE.items() if key != "page")
    + "nav ul{list-style:none;padding:0;display:flex;gap:1rem;flex-wrap:wrap}"
    "footer{margin:2rem auto;font-size:.9rem}"
)
CSS_HASH = base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
CSP = (
    "default-src 'none'; "
    f"style-src 'sha256-{CSS_HASH}'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

VERDICT_WORDS = {
    "reachable": N_("works"),
    "blocked": N_("blocked"),
    "unreachable": N_("does not answer"),
    "unknown": N_("not known"),
}
VERDICT_NOTES = {
    "unreachable": N_(
        "It fails from here, but nothing shows that this is censorship: the server may be down."
    ),
}
# said once above the folded list of targets without a verdict
PENDING_NOTE = N_("Not measured yet, or this vantage cannot tell right now (see above).")
# a control's last try, in words: the stage where it failed (the failure's code follows, for experts)
STAGE_FAILED = {
    "resolve": N_("the name lookup failed"),
    "connect": N_("no connection"),
    "tls_handshake": N_("the secure connection failed"),
    "http": N_("the web request failed"),
    "protocol_handshake": N_("the handshake failed"),
    "tunnel": N_("the tunnel failed"),
    "transfer": N_("the transfer failed"),
}
CONTROL_ROLES = {"domestic_control": N_("in the country"), "international_control": N_("abroad")}
TECHNIQUES = {
    "dns_tampering": N_(
        "DNS tampering: the local resolver gives a false address or none, while encrypted DNS abroad gives "
        "the real one."
    ),
    "tcp_blackhole": N_(
        "Silently dropped: connections get no answer here, while the same server answers from abroad."
    ),
    "tcp_reset": N_("Reset: the connection is cut at once by a forged reset, while it works from abroad."),
    "tls_interference": N_(
        "Cut after the site's name is seen: the secure connection stops right after the name is sent, "
        "while the same server works under another name."
    ),
    "tls_interception": N_(
        "Certificate substituted: someone on the path presents their own certificate to read the "
        "traffic; do not enter passwords there."
    ),
    "http_blockpage": N_("Block page: a page saying the site is blocked is shown instead of the site."),
    "throttled": N_("Throttled: it works, but far slower than a comparable transfer that is not blocked."),
    "flow_cut": N_(
        "Cut after it started: the connection works at first and is killed after some data has passed."
    ),
    "protocol_blocking": N_(
        "Protocol blocked: this kind of connection is recognised and dropped, while other traffic to the "
        "same server passes."
    ),
    "international_shutdown": N_(
        "International shutdown: sites inside the country answer, sites abroad do not."
    ),
    "offline": N_("No connection: nothing answers from this vantage."),
}
VANTAGE_STATES = {
    "online": N_("This vantage is online: its control sites abroad answer."),
    "international_shutdown": N_(
        "International shutdown: sites inside the country answer, sites abroad do not. Nothing abroad is "
        "called blocked while this lasts."
    ),
    "offline": N_(
        "This vantage is offline: none of its control sites answers. Nothing is called blocked until it "
        "is back."
    ),
    "unknown": N_("Not known yet whether this vantage is online: its control sites have not answered yet."),
}
CATEGORY_TITLES = {
    "tor": N_("Tor"),
    "vpn": N_("VPN protocols"),
    "proxy": N_("Proxies"),
    "sites": N_("Sites"),
    "other": N_("Other"),
}
KIND_TITLES = {
    "tor_relay": N_("Tor relays"),
    "tor_dirport": N_("Tor directory mirrors"),
    "stun": N_("STUN servers (for Snowflake)"),
    "fronting": N_("Domain fronts (for Snowflake and meek)"),
    "openvpn": N_("OpenVPN"),
    "openvpn_tunnel": N_("OpenVPN, full tunnel"),
    "wireguard": N_("WireGuard"),
    "ikev2": N_("IKEv2/IPsec"),
    "openconnect": N_("OpenConnect (AnyConnect)"),
    "socks5": N_("SOCKS5 proxies"),
    "http_proxy": N_("HTTP proxies"),
    "shadowsocks": N_("Shadowsocks"),
}
# a transport as Tor Browser names it to users (tor's own name otherwise)
TRANSPORT_NAMES = {"meek_lite": "meek"}
# sites of every kind share one list
SITE_KINDS = frozenset({"tls", "https", "http", "dns", "throughput", "tcp"})


class Renderer:
    """Renders one page in one language."""

    def __init__(self, lang: str, zone: str, now: float | None = None) -> None:
        tr = translations(lang)
        self._: Callable[[str], str] = tr.gettext
        self.ngettext: Callable[[str, str, int], str] = tr.ngettext
        self.lang = lang
        try:
            self.zone = ZoneInfo(zone)
        except (ValueError, KeyError):
            self.zone = ZoneInfo("UTC")
        self.now = time.time() if now is None else now

    # --- small pieces ------------------------------------------------------------------------------

    def when(self, ts: float) -> str:
        return datetime.fromtimestamp(ts, self.zone).strftime("%Y-%m-%d %H:%M")

    def duration(self, seconds: float) -> str:
        _ = self._
        minutes = max(0, int(seconds // 60))
        if minutes < 60:
            return _("%(m)d min") % {"m": minutes}
        hours, minutes = divmod(minutes, 60)
        if hours < 24:
            return _("%(h)d h %(m)d min") % {"h": hours, "m": minutes}
        days, hours = divmod(hours, 24)
        return _("%(d)d d %(h)d h") % {"d": days, "h": hours}

    def since(self, ts: float | None) -> str:
        if not ts:
            return ""
        text = self._("since %(when)s (%(for)s)") % {
            "when": self.when(ts),
            "for": self.duration(self.now - ts),
        }
        return f'<span class="since">{escape(text)}</span>'

    def not_known(self, n: int) -> str:
        return self.ngettext("%(n)d not known yet", "%(n)d not known yet", n) % {"n": n}

    def counts(self, ok: int, total: int, unknown: int) -> str:
        """``working: 2 of 5 · 3 not known yet``; only the second when nothing is known (``working: 0
        of 11`` would read as eleven failures on a fresh start)."""
        parts = []
        if unknown < total:
            parts.append(self._("working: %(ok)d of %(total)d") % {"ok": ok, "total": total})
        if unknown:
            parts.append(self.not_known(unknown))
        return " · ".join(parts)

    # --- sections ---------------------------------------------------------------------------------

    def item(self, item: Item) -> str:
        _ = self._
        verdict = item.verdict if item.verdict in VERDICT_WORDS else "unknown"
        parts = [
            f'<span class="name">{escape(item.name)}</span> ',
            f'<span class="verdict">{SIGNS[verdict]} {escape(_(VERDICT_WORDS[verdict]))}</span>',
        ]
        if verdict == "unknown" and item.last is None:
            parts[1] = f'<span class="verdict">{SIGNS[verdict]} {escape(_("not tested yet"))}</span>'
        if verdict == "blocked" and item.technique in TECHNIQUES:
            parts.append(f'<span class="why">{escape(_(TECHNIQUES[item.technique]))}</span>')
        elif verdict in VERDICT_NOTES:
            parts.append(f'<span class="why">{escape(_(VERDICT_NOTES[verdict]))}</span>')
        if item.hint:
            todo = _("What to do: %(hint)s") % {"hint": item.hint}
            parts.append(f'<span class="why">{escape(todo)}</span>')
        if item.last is not None or verdict != "unknown":  # "since the daemon started" says nothing
            parts.append(self.since(item.since))
        return f'<li class="{verdict}">{"".join(parts)}</li>'

    def control(self, item: Item) -> str:
        """A control with its last try: not a verdict (controls are not judged), what happened."""
        _ = self._
        role = CONTROL_ROLES.get(item.role)
        parts = [f'<span class="name">{escape(item.name)}</span>']
        if role:
            parts.append(f' <span class="role">· {escape(_(role))}</span>')
        last = item.last
        if last is None:
            state, word = "unknown", _("not tested yet")
        elif last.success:
            state, word = "reachable", _("answers")
        else:
            state, word = "unreachable", _("does not answer")
        parts.append(f' <span class="verdict">{SIGNS[state]} {escape(word)}</span>')
        if last is not None:
            if last.success:
                what = _("Last try %(when)s: it answered.") % {"when": self.when(last.at)}
            else:
                failed = _(STAGE_FAILED[last.stage]) if last.stage in STAGE_FAILED else _("it failed")
                what = _("Last try %(when)s: %(what)s (%(code)s).") % {
                    "when": self.when(last.at),
                    "what": failed,
                    "code": last.failure or "unknown_failure",
                }
            parts.append(f'<span class="why">{escape(what)}</span>')
        return f'<li class="{state}">{"".join(parts)}</li>'

    def group_title(self, group: Group) -> str:
        _ = self._
        kind, transport = group.key
        transport = TRANSPORT_NAMES.get(transport, transport)
        if kind == "tor_bridge":
            name = _("vanilla") if transport in ("", "vanilla") else transport
            return _("Bridges: %(transport)s") % {"transport": name}
        if kind == "tor_bootstrap":
            name = _("no bridge") if transport in ("", "direct") else transport
            return _("Connecting to Tor: %(transport)s") % {"transport": name}
        if kind in KIND_TITLES:
            return _(KIND_TITLES[kind])
        return kind

    def more(self, hidden: int) -> str:
        if hidden <= 0:
            return ""
        text = self.ngettext("and %(n)d more", "and %(n)d more", hidden) % {"n": hidden}
        return f'<p class="muted">{escape(text)}</p>'

    def group(self, group: Group, heading: bool) -> str:
        """The targets with a verdict in a list; those without one folded into a ``<details>`` whose
        summary counts them, so what is known stands out (no JavaScript: the browser folds it)."""
        shown, pending = group.shown(), group.pending()
        out = []
        if heading:  # the folded list's summary counts what is not known: said once, there
            title = escape(self.group_title(group))
            if group.unknown < group.total:
                count = self.counts(group.works, group.total, 0)
                title += f' <span class="muted">· {escape(count)}</span>'
            out.append(f"<h3>{title}</h3>")
        if shown:
            out.append('<ul class="items">' + "".join(self.item(i) for i in shown) + "</ul>")
            out.append(self.more(group.total - group.unknown - len(shown)))
        if pending:
            out += [
                f'<details><summary class="unknown">{escape(self.not_known(group.unknown))}</summary>',
                f'<p class="muted">{escape(self._(PENDING_NOTE))}</p>',
                '<ul class="items">' + "".join(self.item(i) for i in pending) + "</ul>",
                self.more(group.unknown - len(pending)),
                "</details>",
            ]
        return "".join(out)

    def category(self, category: Category) -> str:
        _ = self._
        title = _(CATEGORY_TITLES.get(category.key, category.key))
        count = escape(self.counts(category.works, category.total, category.unknown))
        out = [
            f'<section aria-labelledby="c-{category.key}"><h2 id="c-{category.key}">{escape(title)} '
            f'<span class="muted">· {count}</span></h2>'
        ]
        groups = sorted(category.groups.values(), key=lambda g: (g.key[0] in SITE_KINDS, g.key))
        if category.key == "sites":  # one list of sites, whatever the kind of test
            merged = Group(("sites", ""), [i for g in groups for i in g.items])
            out.append(self.group(merged, heading=False))
        else:
            out += [self.group(g, heading=True) for g in groups]
        out.append("</section>")
        return "".join(out)

    def incidents(self, incidents: list[dict[str, object]]) -> str:
        _ = self._
        out = [
            '<section aria-labelledby="c-incidents"><h2 id="c-incidents">',
            escape(_("Open incidents")),
            "</h2>",
        ]
        if not incidents:
            none = _("None open now.")
            out.append(f'<p class="muted">{escape(none)}</p></section>')
            return "".join(out)
        out.append('<ul class="items">')
        for incident in incidents:
            scope = str(incident.get("scope", ""))
            technique = str(incident.get("technique") or "")
            start = incident.get("start")
            started = start.get("at") if isinstance(start, dict) else None
            what = _(TECHNIQUES[technique]) if technique in TECHNIQUES else technique
            scope_type = str(incident.get("scope_type", "target"))
            label = {
                "target": _("Target %(name)s"),
                "group": _("Group %(name)s"),
                "kind": _("All %(name)s targets"),
                "vantage": _("This vantage (%(name)s)"),
            }.get(scope_type, "%(name)s") % {"name": scope}
            out.append(
                f'<li class="blocked"><span class="name">{escape(label)}</span>'
                f'<span class="why">{escape(what)}</span>'
                f"{self.since(float(started) if isinstance(started, int | float) else None)}</li>"
            )
        out.append("</ul></section>")
        return "".join(out)

    def ports(self, ports: dict[str, object]) -> str:
        _ = self._
        out = ['<section aria-labelledby="c-ports"><h2 id="c-ports">', escape(_("Ports")), "</h2>"]
        surveys = ports.get("surveys")
        for survey in surveys if isinstance(surveys, list) else []:
            opened = [str(p.get("label")) for p in survey.get("open_in_state", []) if isinstance(p, dict)]
            counts = survey.get("counts") or {}
            total = sum(int(v) for v in counts.values() if isinstance(v, int))
            line = self._("ports answering: %(ok)d of %(total)d") % {"ok": len(opened), "total": total}
            out.append(
                f"<h3>{escape(str(survey.get('target', '')))} "
                f'<span class="muted">· {escape(line)}</span></h3>'
            )
            if opened:
                open_now = _("Open from here: %(ports)s") % {"ports": ", ".join(opened)}
                out.append(f"<p>{escape(open_now)}</p>")
        out.append("</section>")
        return "".join(out)

    def controls(self, controls: list[Item]) -> str:
        _ = self._
        out = [
            '<section aria-labelledby="c-controls"><h2 id="c-controls">',
            escape(_("Control sites: is this vantage online?")),
            "</h2>",
            '<p class="muted">',
            escape(
                _(
                    "Sites that should answer from here, in the country and abroad. They tell whether this "
                    "vantage itself is online: when they fail, its connection is down, and nothing is "
                    "called blocked."
                )
            ),
            "</p>",
            '<ul class="items">' + "".join(self.control(c) for c in controls) + "</ul></section>",
        ]
        return "".join(out)

    # --- the page ---------------------------------------------------------------------------------

    def page(self, page: Page) -> str:
        _ = self._
        vantage = page.vantage
        state = str(vantage.get("state") or "unknown")
        name = str(vantage.get("name") or "")
        title = _("What works from here")
        state_class = {"online": "reachable", "international_shutdown": "blocked", "offline": "blocked"}.get(
            state, "unknown"
        )
        since = vantage.get("since")
        updated = _("Updated %(when)s, time zone %(zone)s") % {
            "when": self.when(self.now),
            "zone": page.timezone,
        }
        # the name says which of an operator's vantages this is; it is not a sentence (it may be "default")
        updated = " · ".join([_("Vantage point: %(vantage)s") % {"vantage": name}, updated])
        state_text = _(VANTAGE_STATES.get(state, VANTAGE_STATES["unknown"]))
        state_since = self.since(float(since) if isinstance(since, int | float) else None)
        header = [
            f"<header><h1>{escape(title)}</h1>",
            f'<p class="muted">{escape(updated)}</p>',
            f'<p class="state {state_class}">{escape(state_text)}{state_since}</p>',
            self.language_switch(),
            "</header>",
        ]
        body = [self.category(c) for c in page.categories]
        if not page.categories:
            nothing = _("No targets are configured yet.")
            body.append(f"<p>{escape(nothing)}</p>")
        if page.incidents is not None:
            body.insert(0, self.incidents(page.incidents))
        if page.ports:
            body.append(self.ports(page.ports))
        if page.controls:
            body.append(self.controls(page.controls))
        as_json, metrics = _("the data as JSON"), _("metrics")
        footer = (
            f'<footer class="muted">reachwatch {escape(__version__)} · '
            f'<a href="/api/v1/status">{escape(as_json)}</a> · '
            f'<a href="/metrics">{escape(metrics)}</a></footer>'
        )
        return (
            f'<!doctype html><html lang="{self.lang}"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta http-equiv="refresh" content="{REFRESH_SECONDS}">'
            f"<title>{escape(title)} · {escape(name)}</title><style>{CSS}</style></head>"
            f"<body>{''.join(header)}<main>{''.join(body)}</main>{footer}</body></html>"
        )

    def language_switch(self) -> str:
        links = []
        for lang in LANGUAGES:
            label = escape(NATIVE_NAMES[lang])
            if lang == self.lang:
                links.append(f'<li><span lang="{lang}" aria-current="true">{label}</span></li>')
            else:
                links.append(f'<li><a lang="{lang}" hreflang="{lang}" href="?lang={lang}">{label}</a></li>')
        label = self._("Language")
        return f'<nav aria-label="{escape(label)}"><ul>{"".join(links)}</ul></nav>'


def render(page: Page, lang: str, now: float | None = None) -> str:
    """The whole page in ``lang``."""
    return Renderer(lang, page.timezone, now).page(page)
