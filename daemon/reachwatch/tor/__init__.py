"""Tor runtime: the supervised tor process (``supervisor``), bridge batches (``bridges``), fresh-tor
bootstraps (``bootstrap``) and the service the daemon owns (``service``). Nothing else: bridge lines, relay
sets and the directory authorities are config values (``config/``), the Tor certificate format is
``formats/tor_certs.py``, the relay-set metrics are ``metrics/relaysets.py``.
"""
