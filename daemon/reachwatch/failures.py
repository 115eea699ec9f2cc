"""The closed vocabularies every other module speaks: failures, stages, techniques, verdicts, vantage states.

Why closed: each value becomes a Prometheus label value, a journal column and an alert condition. An open
set (raw error strings) would explode cardinality and leak addresses; a closed one lets dashboards and
alert rules be written once. Raw error text only ever goes to debug logs, scrubbed (``scrub``: here, not
in ``net``, so the runtime services and the reference client use the same rule without the socket layer).

The failure names follow OONI's df-007 vocabulary where one exists (``connection_reset``,
``generic_timeout_error``, ``ssl_unknown_authority`` ...) so results compare with OONI data; protocol-specific
values (Tor, VPN, proxies) are added here, never invented inside a probe.
"""

from __future__ import annotations

import re
from enum import StrEnum

_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")
_IPV6 = re.compile(r"\b(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}\b")


def scrub(text: str) -> str:
    """Remove IP addresses from an error text before it may reach a debug log."""
    return _IPV6.sub("[addr]", _IPV4.sub("[addr]", text))


class Failure(StrEnum):
    """Why one probe attempt failed. Classified once, in ``reachwatch.net``."""

    # transport
    CONNECTION_REFUSED = "connection_refused"
    CONNECTION_RESET = "connection_reset"
    CONNECTION_ABORTED = "connection_aborted"
    GENERIC_TIMEOUT_ERROR = "generic_timeout_error"
    HOST_UNREACHABLE = "host_unreachable"
    NETWORK_UNREACHABLE = "network_unreachable"
    NETWORK_DOWN = "network_down"
    EOF_ERROR = "eof_error"
    ADDRESS_FAMILY_NOT_SUPPORTED = "address_family_not_supported"
    PERMISSION_DENIED = "permission_denied"
    # dns
    DNS_NXDOMAIN_ERROR = "dns_nxdomain_error"
    DNS_NO_ANSWER = "dns_no_answer"
    DNS_SERVFAIL_ERROR = "dns_servfail_error"
    DNS_REFUSED_ERROR = "dns_refused_error"
    DNS_BOGON_ERROR = "dns_bogon_error"
    DNS_ANSWER_MISMATCH = "dns_answer_mismatch"
    DNS_SERVER_MISBEHAVING = "dns_server_misbehaving"
    DNS_TEMPORARY_FAILURE = "dns_temporary_failure"
    # tls
    SSL_FAILED_HANDSHAKE = "ssl_failed_handshake"
    SSL_UNKNOWN_AUTHORITY = "ssl_unknown_authority"
    SSL_INVALID_HOSTNAME = "ssl_invalid_hostname"
    SSL_INVALID_CERTIFICATE = "ssl_invalid_certificate"
    SSL_PIN_MISMATCH = "ssl_pin_mismatch"
    # http
    HTTP_INVALID_RESPONSE = "http_invalid_response"
    HTTP_UNEXPECTED_STATUS_CODE = "http_unexpected_status_code"
    HTTP_BLOCKPAGE = "http_blockpage"
    RESPONSE_TOO_LARGE = "response_too_large"
    # transfer
    THROUGHPUT_BELOW_THRESHOLD = "throughput_below_threshold"
    TRANSFER_INCOMPLETE = "transfer_incomplete"
    # generic protocol outcomes (VPN, Tor, proxies)
    PROTOCOL_ERROR = "protocol_error"
    PROTOCOL_NO_RESPONSE = "protocol_no_response"
    AUTH_FAILED = "auth_failed"
    # proxies
    PROXY_AUTH_FAILED = "proxy_auth_failed"
    PROXY_UPSTREAM_FAILED = "proxy_upstream_failed"
    PROXY_CONNECT_REFUSED = "proxy_connect_refused"
    CANARY_MISMATCH = "canary_mismatch"
    # tor
    TOR_IDENTITY_MISMATCH = "tor_identity_mismatch"
    TOR_LINK_HANDSHAKE_FAILED = "tor_link_handshake_failed"
    TOR_BOOTSTRAP_STALLED = "tor_bootstrap_stalled"
    TOR_BRIDGE_FAILED = "tor_bridge_failed"
    TOR_PT_MISSING = "tor_pt_missing"
    TOR_UNAVAILABLE = "tor_unavailable"
    # the daemon itself
    INTERNAL_ERROR = "internal_error"
    UNKNOWN_FAILURE = "unknown_failure"


class Stage(StrEnum):
    """Where in the attempt a failure happened; the first failing stage wins."""

    RESOLVE = "resolve"
    CONNECT = "connect"
    TLS_HANDSHAKE = "tls_handshake"
    HTTP = "http"
    PROTOCOL_HANDSHAKE = "protocol_handshake"
    TUNNEL = "tunnel"
    TRANSFER = "transfer"


class Technique(StrEnum):
    """How a target is blocked; only ever attached to a ``blocked`` verdict with evidence."""

    DNS_TAMPERING = "dns_tampering"
    TCP_BLACKHOLE = "tcp_blackhole"
    TCP_RESET = "tcp_reset"
    TLS_INTERFERENCE = "tls_interference"
    TLS_INTERCEPTION = "tls_interception"
    HTTP_BLOCKPAGE = "http_blockpage"
    THROTTLED = "throttled"
    # a flow killed after it was established and carried data (slow-but-alive is ``throttled``, a RST
    # answering the SYN is ``tcp_reset``): the Russian 2023-2024 VPN cut-offs after some kilobytes
    FLOW_CUT = "flow_cut"
    PROTOCOL_BLOCKING = "protocol_blocking"


class Verdict(StrEnum):
    """What the dashboards show for a target."""

    REACHABLE = "reachable"
    BLOCKED = "blocked"
    UNREACHABLE = "unreachable"
    UNKNOWN = "unknown"


class VantageState(StrEnum):
    """What the controls say about the vantage's own connectivity this cycle."""

    ONLINE = "online"
    INTERNATIONAL_SHUTDOWN = "international_shutdown"
    OFFLINE = "offline"
    UNKNOWN = "unknown"
