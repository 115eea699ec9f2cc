"""The status dashboards: Overview, Patterns and Fleet (what works now, when it stops, where)."""

from __future__ import annotations

from dashgen.panels import (
    ANY_BAD,
    CODES,
    GOOD_HIGH,
    GOOD_LOW,
    GREEN,
    INCIDENT_MAP,
    NEUTRAL,
    ORANGE,
    PORT_MAP,
    RED,
    SLOW,
    SUCCESS_MAP,
    VANTAGE_MAP,
    VERDICT_MAP,
    Panel,
    Query,
    T,
    V,
    bargauge,
    hide_columns,
    instant_table,
    state_timeline,
    status_history,
    steps,
    table,
    timeseries,
)


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
        timeseries(
            "Ports that reach abroad, by vantage state",
            "How many surveyed ports (port_survey targets against reachwatch canary) reach the canary "
            "abroad, one line per vantage state: the baseline while online, and during an international "
            "shutdown the few that still get out (Kazakhstan, January 2022: 179/tcp, 3785, 5060). "
            "'surveyed' is how many ports were tried.",
            [
                Query(
                    f"sum by (vantage, state) (sum by (vantage, instance, job) (reachwatch_port_open{{{V}}})"
                    f" * on (instance, job) group_left (state) (reachwatch_vantage_state{{{V}}} == 1))",
                    "{{vantage}} {{state}}",
                    needs=("port_survey",),
                ),
                Query(
                    f"count by (vantage) (reachwatch_port_open{{{V}}})",
                    "{{vantage}} surveyed",
                    needs=("port_survey",),
                ),
            ],
            "none",
            NEUTRAL,
            min=0,
        ),
        status_history(
            "Ports per survey",
            "Each surveyed port and transport over time: open (the canary's keyed reply came back) or "
            "closed/filtered. During a shutdown this says where to put bridges. Per port failures: "
            "the survey's facts in /api/v1/status.",
            [
                Query(
                    f'reachwatch_port_open{{{T}}}',
                    "{{port}}/{{proto}} {{target}} @ {{vantage}}",
                    needs=("port_survey",),
                )
            ],
            unit="none",
            thresholds=CODES,
            mappings=PORT_MAP,
        ),
        state_timeline(
            "Open incidents",
            "Incidents the daemon derives from its journal (reachwatch incidents): a target, a group or kind "
            "whose targets went down together, or the vantage (a shutdown). A bar runs while the incident "
            "is open; its label names the technique (a shutdown: its current state; 'none': unreachable "
            "without evidence of blocking). Start, end with their uncertainty and the evidence: "
            "reachwatch incidents show ID, or a report (reachwatch report).",
            [
                Query(
                    f"reachwatch_incident_open{{{V}}} > 0",
                    "{{vantage}} {{scope_type}} {{scope}}: {{technique}}",
                )
            ],
            unit="none",
            thresholds=ANY_BAD,
            mappings=INCIDENT_MAP,
            width=24,
            height=8,
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
            [Query(f'reachwatch_probe_duration_seconds{{{T}, role="target"}}', "{{target}} @ {{vantage}}")],
            "s",
            SLOW,
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
            [
                Query(
                    f'reachwatch_probe_success{{{T}, role="target"}}',
                    "{{target}} @ {{vantage}} ({{vantage_role}})",
                )
            ],
            unit="none",
            thresholds=steps((None, RED), (1, GREEN)),
            mappings=SUCCESS_MAP,
            width=24,
            height=10,
        ),
        timeseries(
            "Probe start lag per vantage",
            "How late scheduled attempts start on average (10 min window): concurrency limits, "
            "destination spacing or a busy host. Minutes of lag mean the vantage cannot carry its target "
            "list at the configured intervals.",
            [
                Query(
                    f"rate(reachwatch_scheduler_start_lag_seconds_sum{{{V}}}[10m])"
                    f" / rate(reachwatch_scheduler_start_lag_seconds_count{{{V}}}[10m])",
                    "{{vantage}}",
                )
            ],
            "s",
            steps((None, GREEN), (60, ORANGE), (300, RED)),
            min=0,
        ),
        status_history(
            "Reference vantages reachable",
            "Whether each in-country vantage could read its reference vantages on the last try. Without "
            "one, local failures stay 'unreachable' instead of being attributed to a censor.",
            [Query(f"reachwatch_reference_up{{{V}}}", "{{vantage}} -> {{reference}}")],
            unit="none",
            thresholds=steps((None, RED), (1, GREEN)),
            mappings=SUCCESS_MAP,
        ),
    ]
