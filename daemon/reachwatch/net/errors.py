"""Failure classification: the one place where OS, TLS and protocol errors become a ``Failure``.

Exception tree::

    NetFailure(Exception)          a classified network failure: .failure, .stage, scrubbed .detail
                                   raised by every function in reachwatch.net, caught by probes.base.run_probe

Everything in ``reachwatch.net`` wraps its socket calls in ``classified(stage)``; probe modules never
inspect errno or ``ssl`` exceptions themselves. Unknown errors become ``unknown_failure``; the raw text,
with IP addresses scrubbed, is kept only for debug logs.
"""

from __future__ import annotations

import errno
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

from reachwatch.failures import Failure, Stage, scrub

_ERRNO: dict[int, Failure] = {
    errno.ECONNREFUSED: Failure.CONNECTION_REFUSED,
    errno.ECONNRESET: Failure.CONNECTION_RESET,
    errno.EPIPE: Failure.CONNECTION_RESET,
    errno.ECONNABORTED: Failure.CONNECTION_ABORTED,
    errno.ETIMEDOUT: Failure.GENERIC_TIMEOUT_ERROR,
    errno.EHOSTUNREACH: Failure.HOST_UNREACHABLE,
    errno.EHOSTDOWN: Failure.HOST_UNREACHABLE,
    errno.ENETUNREACH: Failure.NETWORK_UNREACHABLE,
    errno.ENETDOWN: Failure.NETWORK_DOWN,
    errno.EAFNOSUPPORT: Failure.ADDRESS_FAMILY_NOT_SUPPORTED,
    errno.EADDRNOTAVAIL: Failure.NETWORK_UNREACHABLE,
    errno.EACCES: Failure.PERMISSION_DENIED,
    errno.EPERM: Failure.PERMISSION_DENIED,  # nftables "reject with admin-prohibited" locally
}

# X509_V_ERR_* codes (OpenSSL x509_vfy.h) that mean "signed by a CA we do not trust": the signature of a
# substituted national root.
_UNKNOWN_AUTHORITY_CODES = {2, 18, 19, 20, 21, 27}
_HOSTNAME_CODES = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH

class NetFailure(Exception):
    """A classified failure of one network operation."""

    def __init__(self, failure: Failure, stage: Stage, detail: str = "") -> None:
        super().__init__(f"{stage.value}: {failure.value}")
        self.failure = failure
        self.stage = stage
        self.detail = scrub(detail)


def classify(exc: BaseException) -> Failure:
    """Map one exception to the closed vocabulary. Order: timeouts, TLS, errno, EOF, unknown."""
    if isinstance(exc, NetFailure):
        return exc.failure
    if isinstance(exc, TimeoutError):
        return Failure.GENERIC_TIMEOUT_ERROR
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        if code in _UNKNOWN_AUTHORITY_CODES:
            return Failure.SSL_UNKNOWN_AUTHORITY
        if code in _HOSTNAME_CODES:
            return Failure.SSL_INVALID_HOSTNAME
        return Failure.SSL_INVALID_CERTIFICATE
    if isinstance(exc, ssl.SSLZeroReturnError | ssl.SSLEOFError):
        return Failure.EOF_ERROR
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or "").upper()
        if "UNRECOGNIZED_NAME" in reason:
            return Failure.SSL_INVALID_HOSTNAME
        if "RESET" in reason:
            return Failure.CONNECTION_RESET
        return Failure.SSL_FAILED_HANDSHAKE
    if isinstance(exc, ConnectionResetError):
        return Failure.CONNECTION_RESET
    if isinstance(exc, ConnectionRefusedError):
        return Failure.CONNECTION_REFUSED
    if isinstance(exc, OSError) and exc.errno in _ERRNO:
        return _ERRNO[exc.errno]
    if isinstance(exc, EOFError | ConnectionError):
        # asyncio.IncompleteReadError is an EOFError: the peer closed before sending what we needed.
        return Failure.EOF_ERROR
    return Failure.UNKNOWN_FAILURE


@contextmanager
def classified(stage: Stage) -> Iterator[None]:
    """Turn any OS/TLS error raised inside the block into a ``NetFailure`` for ``stage``."""
    try:
        yield
    except NetFailure:
        raise
    except (OSError, EOFError, TimeoutError, ssl.SSLError) as exc:
        raise NetFailure(classify(exc), stage, f"{type(exc).__name__}: {exc}") from exc
