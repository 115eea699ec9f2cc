"""Tor runtime pieces that are not probes: the directory authorities, relay sets and their aggregate
metrics, the supervised tor process and bridge batches. The Tor certificate format lives in
``formats/tor_certs.py``.
"""
