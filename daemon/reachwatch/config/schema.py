"""The configuration schema: every option and its default, in one place.

Targets are a discriminated union on ``kind`` assembled from the literal registry of target models
(``config.targets.TARGET_MODELS``), so each protocol's fields are validated by its own model
(``config/targets/<kind>.py``) and an unknown ``kind`` is an error that lists the known ones.
``config/example.yaml`` documents every field below; keep them in step.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from typing import TYPE_CHECKING, Annotated, Literal, Union
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from reachwatch.config.bridgeline import parse_bridge_line
from reachwatch.config.canary_service import CanaryServiceConfig
from reachwatch.config.relaysets import GeoIPConfig, RelayListConfig, RelaySetConfig
from reachwatch.config.secrets import PublicFile, SecretEnv, SecretFile
from reachwatch.config.targets import TARGET_MODELS
from reachwatch.config.targets.canary import CanaryConfig
from reachwatch.config.targets.datastage import DataStageConfig
from reachwatch.config.types import NAME_PATTERN, Duration, StrictModel, TargetBase, split_listen_address

if TYPE_CHECKING:
    AnyTarget = TargetBase
else:
    AnyTarget = Annotated[
        Union[tuple(TARGET_MODELS.values())],  # noqa: UP007
        Field(discriminator="kind"),
    ]

DEFAULT_LISTEN_ADDRESS = "127.0.0.1:10491"
"""Loopback only by default: exposing what a vantage measures is the operator's decision, not ours.
The port lies outside 9100-9999, which the Prometheus exporter port list has fully allocated."""


class VantageConfig(StrictModel):
    """Who is measuring. These become labels on the vantage metrics (and vmagent external labels)."""

    name: str = Field(
        default="default",
        pattern=NAME_PATTERN,
        description="this vantage's name: the `vantage` label of every metric",
    )
    country: str = Field(default="", description="ISO 3166 code of the vantage's country, e.g. KZ")
    asn: str = Field(default="", description="the access network's autonomous system, e.g. AS9198")
    isp: str = Field(default="", description="the access network's operator, coarse (never a subscriber id)")
    city: str = Field(default="", description="a city, not an address: these labels are published")
    timezone: str = Field(
        default="UTC",
        description="IANA time zone of the vantage (e.g. Asia/Almaty): incidents, recurring patterns and"
        " reports show local time in it beside UTC.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as Asia/Almaty or UTC"
            ) from None
        return value

    def zone(self) -> ZoneInfo:
        """The vantage's local time zone."""
        return ZoneInfo(self.timezone)


class Defaults(StrictModel):
    """Per-target values used where a target does not set its own."""

    interval: Duration = Field(
        default=600.0,
        description=(
            "time between two attempts of a target (ten minutes: scarce endpoints must not be hammered)"
        ),
    )
    timeout: Duration = Field(
        default=15.0, description="hard deadline of one attempt (no probe can hang the daemon)"
    )
    jitter: float = Field(
        default=0.2,
        ge=0.0,
        le=1.0,
        description=(
            "each interval varies by up to this fraction either way, so targets do not start in step"
        ),
    )


class SchedulerConfig(StrictModel):
    """Concurrency and politeness limits."""

    max_concurrency: int = Field(
        default=16, ge=1, le=4096, description="attempts running at once, all kinds together"
    )
    per_kind: dict[str, int] = Field(
        default_factory=dict,
        description="a lower limit for some kinds on top of max_concurrency, e.g. {tor_relay: 4}",
    )
    per_destination: int = Field(
        default=1, ge=1, le=64, description="attempts at once against one host:port, whatever target or kind"
    )
    min_destination_spacing: Duration = Field(
        default=30.0,
        description=(
            "never start two attempts against one destination closer than this (any target, any kind)"
        ),
    )
    controls_interval: Duration = Field(
        default=120.0,
        description="the interval of controls: they decide the vantage state, so they run more often",
    )

    @model_validator(mode="after")
    def _known_kinds(self) -> SchedulerConfig:
        for kind, limit in self.per_kind.items():
            if kind not in TARGET_MODELS:
                raise ValueError(f"per_kind: unknown kind {kind!r}")
            if limit < 1:
                raise ValueError(f"per_kind.{kind}: must be at least 1")
        return self


class ConfirmationConfig(StrictModel):
    """A verdict changes only when ``required`` of the last ``attempts`` agree.

    Retries while a verdict is unconfirmed are spaced by ``residual_window``: after a trigger, censors
    (GFW, TSPU) keep blocking innocent connections to the same IP:port for 60-180 s, so a faster retry
    would measure the censor's memory of our own previous attempt.
    """

    attempts: int = Field(default=3, ge=1, le=20, description="how many of the latest attempts are weighed")
    required: int = Field(
        default=2,
        ge=1,
        le=20,
        description="how many of them must agree before the verdict changes (at most `attempts`)",
    )
    residual_window: Duration = Field(
        default=180.0,
        description=(
            "spacing of the retries while a verdict is unconfirmed: censors (GFW, TSPU) keep blocking an "
            "IP:port for 60-180 s after a trigger, so a faster retry would measure the censor's memory of "
            "our own attempt"
        ),
    )

    @model_validator(mode="after")
    def _k_le_n(self) -> ConfirmationConfig:
        if self.required > self.attempts:
            raise ValueError("required must not exceed attempts")
        return self


class ReferenceVantage(StrictModel):
    """Another reachwatch outside the country, read through its ``/api/v1/status``."""

    name: str = Field(pattern=NAME_PATTERN, description="a label for logs and metrics")
    url: str = Field(
        pattern=r"^https?://", description="the reference's base URL (https://, or http:// on loopback only)"
    )
    timeout: Duration = Field(default=10.0, description="bound on one fetch of the reference's answers")
    max_age: Duration = Field(default=1800.0, description="a reference result must be this fresh to count")
    refresh: Duration = Field(
        default=30.0,
        ge=1.0,
        description="how often the reference's answers are fetched again (only while verdicts need them)",
    )
    username: str | None = Field(
        default=None, description="basic auth user, when the reference's web config asks for one"
    )
    password_file: SecretFile | None = Field(default=None, description="file holding the basic-auth password")
    password_env: SecretEnv | None = Field(
        default=None, description="environment variable holding the basic-auth password"
    )
    ca_file: PublicFile | None = Field(
        default=None,
        description="PEM CA bundle for a reference with a private CA (replaces the system roots)",
    )
    public_key: str | None = Field(
        default=None,
        description=(
            "the reference's Ed25519 public key (the line `reachwatch keygen` printed on the reference): "
            "only answers it signed over our fresh nonce are used; a forged, unsigned or replayed answer "
            "is rejected and logged"
        ),
    )

    @model_validator(mode="after")
    def _no_clear_text(self) -> ReferenceVantage:
        # the answers decide our verdicts: in clear text a censor on the path reads the password and
        # rewrites the answers; only a tunnel ending on this host may carry plain HTTP
        host = (urlsplit(self.url).hostname or "").lower()
        if self.url.startswith("http://") and not _is_loopback(host):
            raise ValueError(
                "plain http:// to a reference that is not on loopback: use https:// (a censor on the path "
                "could forge the answers that decide verdicts)"
            )
        if self.public_key is not None:
            try:
                raw = base64.b64decode(self.public_key.strip(), validate=True)
            except ValueError:
                raise ValueError("public_key is not base64 (the line `reachwatch keygen` printed)") from None
            if len(raw) != 32:
                raise ValueError(f"public_key is {len(raw)} bytes, an Ed25519 public key is 32")
        return self


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EvidenceConfig(StrictModel):
    """How the verdict engine weighs our own measurement against a reference vantage's."""

    throttle_ratio: float = Field(
        default=0.25,
        gt=0.0,
        lt=1.0,
        description=(
            "a transfer that succeeded here at less than this fraction of the throughput a reference "
            "vantage measured for the same target is blocked/throttled (both figures kept as evidence)"
        ),
    )


class ControlsConfig(StrictModel):
    """Known-good targets that tell "the vantage lost the Internet" from "this target is blocked"."""

    domestic: list[AnyTarget] = Field(
        default_factory=list,
        description="in-country sites (targets of any kind): alive during an international shutdown",
    )
    international: list[AnyTarget] = Field(
        default_factory=list, description="sites abroad that the censor leaves alone (targets of any kind)"
    )
    max_age: Duration = Field(
        default=600.0,
        gt=0,
        description=(
            "a control's latest result decides the vantage state only while it is this fresh (keep it "
            "above scheduler.controls_interval plus a control's timeout): an old success must not keep a "
            "vantage whose controls stopped reporting online"
        ),
    )


class JournalConfig(StrictModel):
    """The durable SQLite journal of every measurement."""

    enabled: bool = Field(
        default=True, description="append every measurement to the SQLite journal in the state directory"
    )
    retention: Duration = Field(default=30 * 86400.0, description="rows older than this are pruned")


class IncidentsConfig(StrictModel):
    """How incidents are derived from the journal (``reachwatch incidents``, reports, the API, metrics)."""

    rollup_window: Duration = Field(
        default=900.0,
        description="Targets of one group (or kind) whose incidents start within this of the first are"
        " rolled up into one group (or kind) incident.",
    )
    pattern_min_days: int = Field(
        default=3,
        ge=2,
        le=60,
        description="Incidents of one scope starting at about the same local time on at least this many"
        " days form a recurring pattern.",
    )
    pattern_tolerance: Duration = Field(
        default=3600.0,
        description="How far (either side) a start may lie from the pattern's usual local start time.",
    )
    window: Duration = Field(
        default=7 * 86400.0,
        description="The daemon's live view (API, metrics): incidents of this period, open ones whatever"
        " their age (derived from the journal once at start, then kept current).",
    )


class WebConfig(StrictModel):
    """The HTTP endpoint (/metrics, /api/v1/status, /-/reload)."""

    listen_address: str = Field(
        default=DEFAULT_LISTEN_ADDRESS,
        description="host:port to listen on; loopback by default (--web.listen-address overrides)",
    )
    config_file: PublicFile | None = Field(
        default=None,
        description="an exporter-toolkit web config (TLS, basic auth); --web.config.file overrides",
    )
    per_target_metrics: bool = Field(
        default=True,
        description="false exports vantage and daemon metrics only (for very large target lists)",
    )
    blackbox_compat_metrics: bool = Field(
        default=False,
        description=(
            "Also export the probe metrics under blackbox_exporter's names (probe_success, "
            "probe_duration_seconds, probe_stage_duration_seconds) for dashboards built for it. Off by "
            "default: a Prometheus that also scrapes blackbox_exporter and runs the common "
            "BlackboxProbeFailed rule (probe_success == 0) would page for every blocked target."
        ),
    )
    reference_key_file: SecretFile | None = Field(
        default=None,
        description=(
            "Ed25519 private key (PEM, mode 0600; `reachwatch keygen` writes one) that signs the "
            "observations this vantage serves to others at /api/v2/observations"
        ),
    )
    language: Literal["auto", "en", "ru", "kk"] = Field(
        default="auto",
        description=(
            "language of the status page at /: en, ru or kk (Kazakh); auto follows the browser's "
            "Accept-Language (a ?lang= link on the page overrides either)"
        ),
    )

    @field_validator("listen_address")
    @classmethod
    def _listen_address(cls, value: str) -> str:
        split_listen_address(value)
        return value


_TORRC_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9]{0,63}$")


class TorConfig(StrictModel):
    """The tor processes reachwatch runs for bridge and bootstrap tests (see ``reachwatch.tor``)."""

    binary: str = Field(default="tor", description="the tor executable (a name on PATH or an absolute path)")
    transports: dict[str, str] = Field(
        default_factory=lambda: {
            "obfs4": "obfs4proxy",
            "obfs3": "obfs4proxy",
            "scramblesuit": "obfs4proxy",
            "meek_lite": "obfs4proxy",
            "webtunnel": "lyrebird",
            "snowflake": "snowflake-client",
            "conjure": "conjure-client",
        },
        description=(
            "client transport plugins: transport name -> binary (lyrebird is obfs4proxy's newer name); "
            "every transport Tor Browser knows has one, so a bridge naming another (a typo: obfs5) is "
            "refused at load, and a missing binary is a tor_pt_missing result for that bridge only"
        ),
    )
    data_dir: str | None = Field(
        default=None, description="the bridge tester's DataDirectory; unset: a fresh temporary one"
    )
    batch_size: int = Field(
        default=50,
        ge=1,
        le=100,
        description="bridges tested together by one tor (bridgestrap caps a SETCONF batch at 100)",
    )
    batch_timeout: Duration = Field(
        default=60.0, description="how long a batch waits for the bridges' descriptors"
    )
    bootstrap_timeout: Duration = Field(
        default=120.0, description="how long a fresh tor may take to reach 100 %"
    )
    torrc: dict[str, str | list[str]] = Field(
        default_factory=dict,
        description=(
            "extra torrc options for every tor reachwatch starts (Socks5Proxy, ClientUseIPv6, a test "
            "network's DirAuthority ...); a list value becomes repeated lines"
        ),
    )
    directory_authorities: bool = Field(
        default=False,
        description=(
            "probe the directory authorities compiled into tor (ORPort and DirPort each) without a tor "
            "process"
        ),
    )
    fallback_directories: bool = Field(
        default=False,
        description=(
            "probe the fallback directory mirrors compiled into tor (ORPort, identity checked) without a tor "
            "process, one after another over fallback_interval"
        ),
    )
    fallback_interval: Duration = Field(
        default=6 * 3600.0, description="time between two attempts per fallback directory mirror"
    )
    relay_sets: list[RelaySetConfig] = Field(
        default_factory=list,
        description=(
            "sets of relays probed without a tor process, from a consensus or Onionoo file or live from "
            "the directory tor (relay_list)"
        ),
    )
    relay_list: RelayListConfig = Field(
        default_factory=RelayListConfig,
        description="the directory tor that keeps live relay sets current (started only when a set is live)",
    )
    geoip: GeoIPConfig = Field(
        default_factory=GeoIPConfig,
        description=(
            "local files placing relays in countries and ASes, for the per-country and per-AS aggregates"
        ),
    )
    canary: CanaryConfig | None = Field(
        default=None,
        description=(
            "the echo service the Tor data stage reaches through a 3-hop circuit (tor_bridge: first hop "
            "the bridge; tor_bootstrap: the bootstrapped client's own circuit); exits must allow its "
            "port, so 443 is the safe choice. Unset: bridges are tested by their descriptor alone"
        ),
    )

    @model_validator(mode="after")
    def _unique_relay_sets(self) -> TorConfig:
        names = [spec.name for spec in self.relay_sets]
        for name in names:
            if names.count(name) > 1 or name in ("tor_dirauths", "tor_fallbacks"):
                raise ValueError(
                    f"relay set name {name!r} is used twice (tor_dirauths and tor_fallbacks are built in)"
                )
        return self

    def live_relay_sets(self) -> list[RelaySetConfig]:
        """The sets that need the directory tor."""
        return [spec for spec in self.relay_sets if spec.live is not None]

    @field_validator("torrc")
    @classmethod
    def _torrc_lines(cls, options: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        # each option becomes one torrc line: a newline in a value would add lines of its own choosing
        for key, value in options.items():
            if not _TORRC_KEY.match(key):
                raise ValueError(f"{key[:40]!r} is not a torrc option name")
            for item in value if isinstance(value, list) else [value]:
                if any(not ch.isprintable() for ch in item):
                    raise ValueError(f"{key}: a value cannot contain a newline or control characters")
        return options


class LogConfig(StrictModel):
    """How the daemon logs (one-shot commands log warnings only unless --log.level says otherwise)."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="debug shows every probe; info shows verdict and vantage changes"
    )
    format: Literal["console", "json"] = Field(
        default="console", description="console for people, json for journald and log shippers"
    )


class Config(StrictModel):
    """The whole configuration file."""

    vantage: VantageConfig = Field(
        default_factory=VantageConfig, description="who is measuring: labels on the vantage metrics"
    )
    defaults: Defaults = Field(
        default_factory=Defaults, description="interval, timeout and jitter for targets that set none"
    )
    scheduler: SchedulerConfig = Field(
        default_factory=SchedulerConfig,
        description="how many attempts run at once, and how gently destinations are treated",
    )
    confirmation: ConfirmationConfig = Field(
        default_factory=ConfirmationConfig,
        description="how many recent attempts must agree before a verdict changes",
    )
    controls: ControlsConfig = Field(
        default_factory=ControlsConfig,
        description="known-good targets that tell a vantage offline or shut down from a blocked target",
    )
    reference_vantages: list[ReferenceVantage] = Field(
        default_factory=list,
        description="other reachwatch vantages outside the country whose results confirm blocking",
    )
    evidence: EvidenceConfig = Field(
        default_factory=EvidenceConfig,
        description="how local measurements are weighed against reference observations",
    )
    targets: list[AnyTarget] = Field(
        default_factory=list,
        description="what to measure: one mapping per target, with the fields of its kind (see Targets)",
    )
    journal: JournalConfig = Field(
        default_factory=JournalConfig, description="the durable SQLite journal of every measurement"
    )
    incidents: IncidentsConfig = Field(
        default_factory=IncidentsConfig, description="how incidents are derived from the journal"
    )
    web: WebConfig = Field(
        default_factory=WebConfig,
        description="the HTTP endpoint: listen address, TLS and basic auth, which metrics are exported",
    )
    log: LogConfig = Field(default_factory=LogConfig, description="log level and format")
    tor: TorConfig = Field(
        default_factory=TorConfig,
        description="the tor processes reachwatch runs, and relays probed without one",
    )
    canary: CanaryServiceConfig | None = Field(
        default=None,
        description=(
            "settings of `reachwatch canary`, the keyed echo service abroad that port_survey targets and "
            "proxy canaries with mode: reachwatch talk to (the daemon itself ignores this section)"
        ),
    )

    @model_validator(mode="after")
    def _bridge_transports_have_a_client(self) -> Config:
        self.check_bridge_transports()
        return self

    def check_bridge_transports(self) -> None:
        """A bridge whose transport ``tor.transports`` cannot run fails every attempt (``tor_pt_missing``):
        say so at load (raises ``ValueError``; the loader calls it again once ``bridge_file``s are read).
        The message names the transport (public: a protocol), never the line."""
        for index, target in enumerate(self.targets):
            lines = [getattr(target, "bridge", None), *getattr(target, "bridges", [])]
            for line in (x for x in lines if isinstance(x, str)):
                transport = parse_bridge_line(line).transport
                if transport is not None and transport not in self.tor.transports:
                    known = ", ".join(sorted(self.tor.transports)) or "none"
                    raise ValueError(
                        f"targets[{index}] (name {target.name!r}): no client for the {transport!r} "
                        f"transport in tor.transports (configured: {known})"
                    )

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        seen: set[str] = set()
        for target in self.all_targets():
            if target.name in seen:
                raise ValueError(
                    f"duplicate target name {target.name!r} (names must be unique, controls included)"
                )
            seen.add(target.name)
        return self

    @model_validator(mode="after")
    def _data_stages_fit(self) -> Config:
        # the lifetime check runs inside the attempt: a timeout shorter than it would turn every attempt
        # into a deadline failure at stage transfer, which reads like a flow cut
        for target in self.all_targets():
            stage = target.__dict__.get("data_stage")
            if not isinstance(stage, DataStageConfig):
                continue
            stage_on = getattr(type(target), "data_stage_on", None)
            if stage_on is not None and not stage_on(target):
                continue  # e.g. a proxy without a canary: the data stage does not run
            timeout = target.timeout or self.defaults.timeout
            if stage.min_lifetime >= timeout:
                raise ValueError(
                    f"target {target.name!r}: data_stage.min_lifetime ({stage.min_lifetime:g}s) must be "
                    f"shorter than its timeout ({timeout:g}s), which also holds the handshake: raise timeout "
                    "or lower min_lifetime"
                )
        return self

    def all_targets(self) -> list[TargetBase]:
        """Controls first, then targets: the order the scheduler starts them in."""
        return [*self.controls.domestic, *self.controls.international, *self.targets]

    def control_role(self, name: str) -> str | None:
        """``"domestic"``/``"international"`` for a control, ``None`` for an ordinary target."""
        if any(t.name == name for t in self.controls.domestic):
            return "domestic"
        if any(t.name == name for t in self.controls.international):
            return "international"
        return None
