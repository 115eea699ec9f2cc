"""Generates the reachwatch Grafana dashboards (grafana/dashboards/*.json) from code.

Our own small generator in plain Python, no dependency: dashboard JSON is a stable, documented format
and the handful of panel types we use (time series, stat, bar gauge, state timeline, status history,
table) need a few dozen lines of helpers, where grafana-foundation-sdk would add a pinned, fast-moving
dependency (one branch per Grafana minor).

Run ``python grafana/generate.py`` after editing; ``tests/observability/test_dashboards.py`` fails when the
committed JSON differs from what this file generates. ``tests/observability/test_e2e.py`` runs every
expression below against a real Prometheus scraping a real reachwatch (``queries()`` lists them).

Metric names and labels are the contract in docs/ARCHITECTURE.md ("Metrics") plus the recording rules in
deploy/prometheus/rules/reachwatch-recording.yml. Vantage labels (vantage, vantage_role, country, asn, isp,
city) come from the Prometheus scrape config or the fleet shipper's external labels.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUT_DIR = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}
SCHEMA_VERSION = 39  # Grafana 10.4+ reads it; newer versions migrate on load

# label selectors shared by the panels
V = 'vantage=~"$vantage"'
T = 'vantage=~"$vantage", group=~"$group", target=~"$target"'
JOIN = "on (job, instance, target) group_left (category) reachwatch:target_category:info"

# colours and value mappings
GREEN, ORANGE, RED, GREY, BLUE = "green", "orange", "red", "text", "blue"
VERDICT_MAP = [
    {
        "type": "value",
        "options": {
            "0": {"text": "unknown", "color": GREY, "index": 0},
            "1": {"text": "reachable", "color": GREEN, "index": 1},
            "2": {"text": "unreachable", "color": ORANGE, "index": 2},
            "3": {"text": "blocked", "color": RED, "index": 3},
        },
    }
]
VANTAGE_MAP = [
    {
        "type": "value",
        "options": {
            "0": {"text": "unknown", "color": GREY, "index": 0},
            "1": {"text": "online", "color": GREEN, "index": 1},
            "2": {"text": "international shutdown", "color": ORANGE, "index": 2},
            "3": {"text": "offline", "color": RED, "index": 3},
        },
    }
]
SUCCESS_MAP = [
    {
        "type": "value",
        "options": {
            "0": {"text": "failed", "color": RED, "index": 0},
            "1": {"text": "ok", "color": GREEN, "index": 1},
        },
    }
]


def steps(*pairs: tuple[float | None, str]) -> dict[str, Any]:
    return {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in pairs]}


# higher is better (reachable fraction); lower is better (blocked fraction, counts of bad things)
GOOD_HIGH = steps((None, RED), (0.5, ORANGE), (0.9, GREEN))
GOOD_LOW = steps((None, GREEN), (0.1, ORANGE), (0.5, RED))
ANY_BAD = steps((None, GREEN), (1, RED))
NEUTRAL = steps((None, BLUE))
SLOW = steps((None, GREEN), (2, ORANGE), (10, RED))
CODES = steps((None, GREY))


@dataclass(frozen=True)
class Query:
    """One panel query. ``needs`` names probe kinds without which the lab cannot produce data."""

    expr: str
    legend: str = ""
    instant: bool = False
    table: bool = False
    needs: tuple[str, ...] = ()


@dataclass
class Panel:
    """A panel before layout: the JSON is produced by ``render``."""

    type: str
    title: str
    description: str
    queries: list[Query]
    unit: str
    thresholds: dict[str, Any]
    width: int = 12
    height: int = 8
    mappings: list[dict[str, Any]] = field(default_factory=list)
    options: dict[str, Any] = field(default_factory=dict)
    custom: dict[str, Any] = field(default_factory=dict)
    transformations: list[dict[str, Any]] = field(default_factory=list)
    min: float | None = None
    max: float | None = None
    interval: str | None = None

    def render(self, pid: int, x: int, y: int) -> dict[str, Any]:
        defaults: dict[str, Any] = {
            "unit": self.unit,
            "thresholds": self.thresholds,
            "mappings": self.mappings,
            "color": {"mode": "thresholds"},
            "custom": self.custom,
        }
        if self.min is not None:
            defaults["min"] = self.min
        if self.max is not None:
            defaults["max"] = self.max
        targets = []
        for i, q in enumerate(self.queries):
            targets.append(
                {
                    "refId": chr(ord("A") + i),
                    "datasource": DS,
                    "expr": q.expr,
                    "legendFormat": q.legend or "__auto",
                    "instant": q.instant,
                    "range": not q.instant,
                    "format": "table" if q.table else "time_series",
                    "editorMode": "code",
                }
            )
        panel: dict[str, Any] = {
            "id": pid,
            "type": self.type,
            "title": self.title,
            "description": self.description,
            "datasource": DS,
            "gridPos": {"h": self.height, "w": self.width, "x": x, "y": y},
            "targets": targets,
            "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": self.options,
        }
        if self.transformations:
            panel["transformations"] = self.transformations
        if self.interval:
            panel["interval"] = self.interval
        return panel


def legend_opts(**extra: Any) -> dict[str, Any]:
    return {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}, **extra}


def timeseries(
    title: str, desc: str, queries: list[Query], unit: str, thr: dict[str, Any], **kw: Any
) -> Panel:
    kw.setdefault("custom", {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10, "spanNulls": False})
    return Panel("timeseries", title, desc, queries, unit, thr, options=legend_opts(), **kw)


def state_timeline(title: str, desc: str, queries: list[Query], **kw: Any) -> Panel:
    opts = legend_opts(mergeValues=True, showValue="auto", rowHeight=0.9, alignValue="left")
    kw.setdefault("custom", {"fillOpacity": 80, "lineWidth": 0})
    return Panel("state-timeline", title, desc, queries, options=opts, **kw)


def status_history(title: str, desc: str, queries: list[Query], **kw: Any) -> Panel:
    opts = legend_opts(showValue="never", rowHeight=0.9, colWidth=0.9)
    kw.setdefault("custom", {"fillOpacity": 80, "lineWidth": 1})
    return Panel("status-history", title, desc, queries, options=opts, **kw)


def bargauge(title: str, desc: str, queries: list[Query], unit: str, thr: dict[str, Any], **kw: Any) -> Panel:
    opts = {
        "orientation": "horizontal",
        "displayMode": "gradient",
        "showUnfilled": True,
        "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
    }
    return Panel("bargauge", title, desc, queries, unit, thr, options=opts, **kw)


def table(title: str, desc: str, queries: list[Query], unit: str, thr: dict[str, Any], **kw: Any) -> Panel:
    kw.setdefault("custom", {"align": "auto", "cellOptions": {"type": "color-text"}})
    return Panel("table", title, desc, queries, unit, thr, options={"showHeader": True}, **kw)


def hide_columns(*names: str) -> dict[str, Any]:
    return {"id": "organize", "options": {"excludeByName": dict.fromkeys(names, True)}}


def instant_table(expr: str, needs: tuple[str, ...] = ()) -> list[Query]:
    return [Query(expr, instant=True, table=True, needs=needs)]


# ----------------------------------------------------------------------------------------------- dashboards


def overview() -> list[Panel]:
    return [
        state_timeline(
            "Vantage state",
            "Is each vantage online, in an international shutdown (domestic controls work, international "
            "ones fail) or offline (every control fails)? While not online, target verdicts are "
            "'unknown', never 'blocked'.",
            [Query(f"reachwatch:vantage_state:code{{{V}}}", "{{vantage}}")],
            unit="none",
            thresholds=CODES,
            mappings=VANTAGE_MAP,
            width=24,
            height=6,
        ),
        bargauge(
            "Reachable now, by category",
            "Fraction of targets with a known verdict that are reachable: Tor relays, bridges, other Tor "
            "infrastructure, VPN, proxies, web, and the controls. 'unknown' targets are left out.",
            [Query(f"reachwatch:category_reachable:ratio{{{V}}}", "{{vantage}} {{category}}")],
            "percentunit",
            GOOD_HIGH,
            min=0,
            max=1,
        ),
        bargauge(
            "Blocked targets by technique",
            "How many targets are blocked right now, by how: TCP reset, blackhole, TLS interference or "
            "interception, DNS tampering, block page, throttling, protocol blocking.",
            [Query(f"reachwatch:blocked_targets:count{{{V}}}", "{{vantage}} {{technique}}")],
            "none",
            ANY_BAD,
            min=0,
        ),
        status_history(
            "Status per target",
            "Each target's verdict over time (reachable / unreachable / blocked / unknown). Unlike a state "
            "timeline, boxes are not merged, so short blocks stay visible.",
            [Query(f'reachwatch:target_verdict:code{{{T}, role="target"}}', "{{target}} @ {{vantage}}")],
            unit="none",
            thresholds=CODES,
            mappings=VERDICT_MAP,
            width=24,
            height=10,
        ),
        table(
            "Blocked now",
            "Targets blocked now, with the technique; sort by any column.",
            instant_table(f"reachwatch_target_blocked{{{T}}} == 1"),
            "none",
            NEUTRAL,
            transformations=[hide_columns("Time", "Value", "__name__", "job", "instance", "role")],
        ),
        table(
            "Top failures by stage (last hour)",
            "Failed attempts in the last hour by the stage that failed (resolve, connect, tls_handshake, "
            "protocol_handshake...) and the failure: where along the path the interference happens.",
            instant_table(f"topk(20, reachwatch:probe_failures:increase1h{{{V}}} > 0)"),
            "none",
            ANY_BAD,
            transformations=[hide_columns("Time", "__name__")],
        ),
        timeseries(
            "Probe duration",
            "How long each attempt took; a blackholed target takes its whole timeout.",
            [Query(f'probe_duration_seconds{{{T}, role="target"}}', "{{target}} @ {{vantage}}")],
            "s",
            SLOW,
            width=24,
        ),
    ]


TOR = 'category=~"tor_.*"'


def tor() -> list[Panel]:
    return [
        timeseries(
            "Reachable Tor targets by category (fraction)",
            "Fraction of individually configured relays, bridges and other Tor targets (with per-target "
            "series) that are reachable. Kazakhstan 2022: relay reachability fell by about 40% while "
            "bridge use rose.",
            [Query(f"reachwatch:category_reachable:ratio{{{V}, {TOR}}}", "{{vantage}} {{category}}")],
            "percentunit",
            GOOD_HIGH,
            min=0,
            max=1,
            width=24,
        ),
        timeseries(
            "Reachable relays per set and flag",
            "Relay sets (a consensus or Onionoo sample, the directory authorities): the fraction of relays "
            "whose last attempt reached the ORPort and verified the identity, per set and consensus flag "
            "(`all` = every member). Aggregated in the daemon, so 7,000 relays are a handful of series.",
            [
                Query(
                    f"reachwatch:tor_relayset_reachable:ratio{{{V}}}",
                    "{{vantage}} {{set}} {{flag}}",
                    needs=("tor_relay",),
                )
            ],
            "percentunit",
            GOOD_HIGH,
            min=0,
            max=1,
        ),
        table(
            "Relay-set failures by stage",
            "How the relays of each set fail now: identity mismatch, link handshake, reset, timeout.",
            instant_table(f"reachwatch_tor_relayset_failed{{{V}}} > 0", needs=("tor_relay",)),
            "none",
            ANY_BAD,
            transformations=[hide_columns("Time", "__name__", "job", "instance")],
        ),
        status_history(
            "Tor targets",
            "Verdict of each relay, directory authority and bridge over time.",
            [
                Query(
                    f"reachwatch:target_verdict:code{{{T}}} * {JOIN}{{{TOR}}}",
                    "{{target}} @ {{vantage}}",
                    needs=("tor_relay",),
                )
            ],
            unit="none",
            thresholds=CODES,
            mappings=VERDICT_MAP,
            width=24,
            height=10,
        ),
        bargauge(
            "Bridges by transport",
            "Bridges per pluggable transport (vanilla, obfs4, snowflake, webtunnel, meek) by verdict: when "
            "every bridge of one transport fails, users of that transport are cut off.",
            [
                Query(
                    "count by (vantage, transport, verdict) ("
                    f'(reachwatch_target_verdict{{{V}, kind="tor_bridge", verdict!="unknown"}} == 1) '
                    "* on (job, instance, target) group_left (transport) reachwatch_tor_transport_info)",
                    "{{vantage}} {{transport}} {{verdict}}",
                    needs=("tor_bridge",),
                )
            ],
            "none",
            NEUTRAL,
            min=0,
        ),
        timeseries(
            "Bootstrap time",
            "Time a fresh tor took to bootstrap (to 100%, or until it stalled), per bootstrap target and "
            "transport.",
            [
                Query(
                    f"reachwatch_tor_bootstrap_seconds{{{T}}} "
                    "* on (job, instance, target) group_left (transport) reachwatch_tor_transport_info",
                    "{{target}} ({{transport}})",
                    needs=("tor_bootstrap",),
                )
            ],
            "s",
            steps((None, GREEN), (30, ORANGE), (90, RED)),
            min=0,
        ),
        table(
            "Bootstrap progress and stall phase",
            "How far the last bootstrap got (percent) and the phase it reached: `done`, or where it "
            "stalled (conn = the first hop never answered, handshake = TLS/link blocked, requesting_status "
            "/ loading_descriptors = directory fetches blocked, circuit phases = relays blocked).",
            instant_table(
                f"reachwatch_tor_bootstrap_progress_percent{{{T}}} "
                "* on (job, instance, target) group_left (phase) reachwatch_tor_bootstrap_phase_info",
                needs=("tor_bootstrap",),
            ),
            "percent",
            steps((None, RED), (100, GREEN)),
            transformations=[hide_columns("Time", "__name__", "job", "instance")],
        ),
        timeseries(
            "Tor handshake stages",
            "Time to connect, finish TLS and complete the Tor link handshake per relay (last attempt).",
            [
                Query(
                    f'probe_stage_duration_seconds{{{T}, kind=~"tor_.*"}}',
                    "{{target}} {{stage}}",
                    needs=("tor_relay",),
                )
            ],
            "s",
            SLOW,
        ),
        table(
            "Tor failures (last hour)",
            "Why Tor targets failed: identity mismatch (an impostor or TLS middlebox), link handshake "
            "failure, reset, timeout.",
            instant_table(
                "sum by (vantage, kind, stage, failure) "
                f'(increase(reachwatch_probe_failures_total{{{V}, kind=~"tor_.*"}}[1h])) > 0',
                needs=("tor_relay",),
            ),
            "none",
            ANY_BAD,
            transformations=[hide_columns("Time")],
            width=24,
        ),
    ]


VPNP = 'category=~"vpn|proxy"'


def vpn_proxy() -> list[Panel]:
    return [
        bargauge(
            "Reachable by protocol",
            "Fraction of endpoints of each protocol (OpenVPN, WireGuard, Shadowsocks, SOCKS5, HTTP proxy...) "
            "whose last attempt succeeded.",
            [
                Query(
                    f"avg by (vantage, kind) (probe_success{{{T}}} * {JOIN}{{{VPNP}}})",
                    "{{vantage}} {{kind}}",
                    needs=("openvpn", "socks5"),
                )
            ],
            "percentunit",
            GOOD_HIGH,
            min=0,
            max=1,
        ),
        timeseries(
            "Handshake time",
            "Time of the protocol handshake (and TLS, where the protocol has one) per endpoint.",
            [
                Query(
                    f'probe_stage_duration_seconds{{{T}, stage=~"protocol_handshake|tls_handshake"}} '
                    f"* {JOIN}{{{VPNP}}}",
                    "{{target}} ({{kind}}) {{stage}}",
                    needs=("socks5",),
                )
            ],
            "s",
            SLOW,
        ),
        status_history(
            "Endpoints",
            "Verdict of each VPN endpoint and proxy over time.",
            [
                Query(
                    f"reachwatch:target_verdict:code{{{T}}} * {JOIN}{{{VPNP}}}",
                    "{{target}} ({{kind}}) @ {{vantage}}",
                    needs=("openvpn", "socks5"),
                )
            ],
            unit="none",
            thresholds=CODES,
            mappings=VERDICT_MAP,
            width=24,
            height=10,
        ),
        timeseries(
            "Tunnel throughput",
            "Round-trip throughput of the canary push through each tunnel or proxy (bytes per second): a "
            "tunnel that completes its handshake but is cut or crawls after a few kilobytes is useless.",
            [
                Query(
                    f"reachwatch_throughput_bytes_per_second{{{T}}} * {JOIN}{{{VPNP}}}",
                    "{{target}} ({{kind}})",
                    needs=("socks5",),
                ),
            ],
            "Bps",
            NEUTRAL,
            width=24,
        ),
    ]


def interference() -> list[Panel]:
    return [
        table(
            "TLS interception: presented issuer",
            "Targets whose certificate failed validation or the pin, with the issuer that signed the "
            "substitute certificate (a national CA, a middlebox).",
            instant_table(f"reachwatch_tls_presented_issuer_info{{{T}}}"),
            "none",
            NEUTRAL,
            transformations=[hide_columns("Time", "Value", "__name__", "job", "instance")],
            width=24,
        ),
        timeseries(
            "Blocked targets by technique over time",
            "Blocked targets per technique: when did interception, resets or DNS tampering start?",
            [
                Query(
                    f"sum by (vantage, technique) (reachwatch_target_blocked{{{T}}})",
                    "{{vantage}} {{technique}}",
                )
            ],
            "none",
            ANY_BAD,
            min=0,
        ),
        timeseries(
            "DNS failures",
            "Failed DNS lookups by failure (NXDOMAIN, bogon answer, answer mismatch, SERVFAIL...): "
            "DNS tampering shows up here first.",
            [
                Query(
                    "sum by (vantage, target, failure) (increase(reachwatch_probe_failures_total"
                    f'{{{T}, failure=~"dns_.*"}}[$__rate_interval]))',
                    "{{target}} {{failure}}",
                    needs=("dns",),
                )
            ],
            "none",
            ANY_BAD,
            min=0,
        ),
        timeseries(
            "Throughput against control",
            "Target throughput divided by the control transfer's (1 = same speed). Throttling keeps this "
            "well below 1 (the threshold is the target's max_ratio, 0.25 by default).",
            [
                Query(
                    f"reachwatch:throughput_vs_control:ratio{{{T}}}",
                    "{{target}} @ {{vantage}}",
                    needs=("throughput",),
                )
            ],
            "percentunit",
            steps((None, RED), (0.25, ORANGE), (0.75, GREEN)),
            min=0,
            width=24,
        ),
    ]


def patterns() -> list[Panel]:
    return [
        table(
            "Blocked fraction by hour of day (UTC) x day of week, last 4 weeks",
            "Average blocked fraction per hour of the day and weekday: evening blocking (Iran 2018, "
            "20:00 every day) is a bright row. Hours are UTC.",
            instant_table(
                f"avg by (hour, dow) (avg_over_time(reachwatch:vantage_blocked:ratio_by_hour_dow{{{V}}}[4w]))"
            ),
            "percentunit",
            GOOD_LOW,
            custom={"align": "center", "cellOptions": {"type": "color-background"}},
            transformations=[
                {
                    "id": "groupingToMatrix",
                    "options": {"columnField": "dow", "rowField": "hour", "valueField": "Value"},
                },
                {"id": "sortBy", "options": {"sort": [{"field": "hour\\dow", "desc": False}]}},
            ],
            width=24,
            height=14,
        ),
        bargauge(
            "Blocked fraction by hour of day (UTC), last 4 weeks",
            "Same data as the grid, all weekdays together.",
            [
                Query(
                    f"avg by (hour) (avg_over_time(reachwatch:vantage_blocked:ratio_by_hour{{{V}}}[4w]))",
                    "{{hour}}:00",
                    instant=True,
                )
            ],
            "percentunit",
            GOOD_LOW,
            min=0,
            max=1,
            width=24,
        ),
        state_timeline(
            "Outage timeline: vantage state",
            "Offline and international-shutdown periods per vantage.",
            [Query(f"reachwatch:vantage_state:code{{{V}}}", "{{vantage}}")],
            unit="none",
            thresholds=CODES,
            mappings=VANTAGE_MAP,
            width=24,
            height=6,
        ),
        state_timeline(
            "Outage timeline: reachable fraction by category",
            "Periods when a category's reachable fraction dropped (red below 50%, orange below 90%).",
            [Query(f"reachwatch:category_reachable:ratio{{{V}}}", "{{vantage}} {{category}}")],
            unit="percentunit",
            thresholds=GOOD_HIGH,
            width=24,
            height=10,
        ),
        timeseries(
            "Blocked fraction",
            "Fraction of targets with a known verdict that are blocked.",
            [Query(f"reachwatch:vantage_blocked:ratio{{{V}}}", "{{vantage}}")],
            "percentunit",
            GOOD_LOW,
            min=0,
            max=1,
            width=24,
        ),
    ]


def fleet() -> list[Panel]:
    ident = "vantage, vantage_role, country, asn, isp, city"
    return [
        table(
            "Vantages",
            "Every vantage with its network identity and when it last reported.",
            instant_table(f"max by ({ident}) (reachwatch:vantage_last_seen:timestamp_seconds{{{V}}}) * 1000"),
            "dateTimeAsIso",
            NEUTRAL,
            transformations=[hide_columns("Time")],
            width=24,
            height=6,
        ),
        timeseries(
            "Blocked fraction per vantage",
            "Side by side: the same targets seen from different ISPs, ASNs and cities.",
            [Query(f"reachwatch:vantage_blocked:ratio{{{V}}}", "{{vantage}} ({{isp}} {{asn}}, {{city}})")],
            "percentunit",
            GOOD_LOW,
            min=0,
            max=1,
        ),
        bargauge(
            "Reachable by category per vantage",
            "Each vantage's reachable fraction per category, for ISP-to-ISP comparison.",
            [Query(f"reachwatch:category_reachable:ratio{{{V}}}", "{{vantage}} ({{isp}}) {{category}}")],
            "percentunit",
            GOOD_HIGH,
            min=0,
            max=1,
        ),
        table(
            "Confirmed censorship: reachable from a reference vantage, failing inside",
            "Targets a reference vantage outside the country (vantage_role=reference) reaches while an "
            "in-country vantage does not: the target works, the path from inside is interfered with.",
            instant_table(
                "max by (target) ("
                'reachwatch_target_verdict{vantage_role="reference", verdict="reachable"} == 1)'
                " * on (target) group_right () max by (vantage, isp, target, verdict) ("
                f'reachwatch_target_verdict{{{T}, vantage_role="in_country", '
                'verdict=~"blocked|unreachable"} == 1)'
            ),
            "none",
            NEUTRAL,
            transformations=[hide_columns("Time", "Value")],
            width=24,
        ),
        status_history(
            "Same target, every vantage",
            "Last attempt's outcome per target and vantage (in-country and reference).",
            [Query(f'probe_success{{{T}, role="target"}}', "{{target}} @ {{vantage}} ({{vantage_role}})")],
            unit="none",
            thresholds=steps((None, RED), (1, GREEN)),
            mappings=SUCCESS_MAP,
            width=24,
            height=10,
        ),
    ]


# ----------------------------------------------------------------------------------------------- assembly

DASHBOARDS = {
    "overview": ("reachwatch-overview", "reachwatch / Overview", overview),
    "tor": ("reachwatch-tor", "reachwatch / Tor", tor),
    "vpn-proxy": ("reachwatch-vpn-proxy", "reachwatch / VPN and proxies", vpn_proxy),
    "interference": ("reachwatch-interference", "reachwatch / Interference", interference),
    "patterns": ("reachwatch-patterns", "reachwatch / Patterns", patterns),
    "fleet": ("reachwatch-fleet", "reachwatch / Fleet", fleet),
}

VARIABLE_QUERIES = {
    "vantage": "label_values(reachwatch_build_info, vantage)",
    "group": 'label_values(reachwatch_target_info{vantage=~"$vantage"}, group)',
    "target": 'label_values(reachwatch_target_info{vantage=~"$vantage", group=~"$group"}, target)',
}

ANNOTATION_EXPR = f"changes(reachwatch:vantage_state:code{{{V}}}[5m]) > 0"


def variables() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "name": "datasource",
            "label": "Data source",
            "type": "datasource",
            "query": "prometheus",
            "current": {},
            "hide": 0,
            "refresh": 1,
        }
    ]
    for name, query in VARIABLE_QUERIES.items():
        out.append(
            {
                "name": name,
                "label": name.capitalize(),
                "type": "query",
                "datasource": DS,
                "definition": query,
                "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
                "refresh": 2,
                "multi": True,
                "includeAll": True,
                "allValue": ".*",
                "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
                "sort": 1,
                "hide": 0,
            }
        )
    return out


def layout(panels: list[Panel]) -> list[dict[str, Any]]:
    """Left to right, top to bottom on Grafana's 24-column grid."""
    out, x, y, row_h = [], 0, 0, 0
    for pid, panel in enumerate(panels, start=1):
        if x + panel.width > 24:
            x, y, row_h = 0, y + row_h, 0
        out.append(panel.render(pid, x, y))
        x += panel.width
        row_h = max(row_h, panel.height)
    return out


def dashboard(key: str) -> dict[str, Any]:
    uid, title, build = DASHBOARDS[key]
    return {
        "uid": uid,
        "title": title,
        "description": f"Generated by grafana/generate.py ({key}); edit the generator, not this file.",
        "tags": ["reachwatch", "generated"],
        "editable": False,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "graphTooltip": 1,
        "refresh": "1m",
        "time": {"from": "now-24h", "to": "now"},
        "timezone": "utc",
        "links": [
            {
                "type": "dashboards",
                "tags": ["reachwatch"],
                "asDropdown": True,
                "title": "reachwatch",
                "includeVars": True,
                "keepTime": True,
            }
        ],
        "annotations": {
            "list": [
                {
                    "name": "Vantage state changes",
                    "datasource": DS,
                    "enable": True,
                    "iconColor": "orange",
                    "expr": ANNOTATION_EXPR,
                    "titleFormat": "vantage state changed",
                    "textFormat": "{{vantage}}",
                    "step": "60s",
                }
            ]
        },
        "templating": {"list": variables()},
        "panels": layout(build()),
    }


def queries() -> list[tuple[str, str, Query]]:
    """Every (dashboard, panel title, query) the dashboards run; the e2e test executes them all."""
    out = []
    for key, (_, _, build) in DASHBOARDS.items():
        for panel in build():
            out.extend((key, panel.title, q) for q in panel.queries)
    return out


def render_all() -> dict[str, str]:
    """File name -> JSON text, exactly as committed."""
    return {
        f"{key}.json": json.dumps(dashboard(key), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        for key in DASHBOARDS
    }


def main() -> int:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (OUT_DIR / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(DASHBOARDS)} dashboards to {OUT_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
