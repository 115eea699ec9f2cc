"""Tor-specific pieces that are not probes: certificate checks, the directory authorities, relay sets and
their aggregate metrics (and, from the bridge work, the supervised tor process).

Kept free of imports at package level so ``reachwatch.net`` and ``reachwatch.probes`` can use
``reachwatch.tor.certs`` without import cycles.
"""
