"""The CPU floor of one client TLS handshake in this Python, without asyncio or reachwatch around it.

    .venv/bin/python bench/handshake_floor.py [--n 300]

Starts the same uvloop TLS server as bench/sweep.py on loopback and times N blocking handshakes with the
stdlib ``ssl`` module (the OpenSSL Debian ships), for an ECDSA and an RSA certificate. If pyOpenSSL is
installed (it is not a dependency), the same loop runs through it too: it uses the newer OpenSSL that the
``cryptography`` wheel bundles. bench/README.md uses these figures to say what bounds the sweep's CPU.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import trustme
from sweep import SERVER, SNI  # type: ignore[import-not-found]

PORT = 18443


def stdlib_loop(ca_file: Path, n: int) -> float:
    ctx = ssl.create_default_context(cafile=str(ca_file))
    start = time.process_time()
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", PORT)) as raw, ctx.wrap_socket(raw, server_hostname=SNI):
            pass
    return 1000 * (time.process_time() - start) / n


def pyopenssl_loop(ca_file: Path, n: int) -> float | None:
    try:
        from OpenSSL import SSL  # noqa: PLC0415 - optional, not a dependency
    except ImportError:
        return None
    ctx = SSL.Context(SSL.TLS_CLIENT_METHOD)
    ctx.load_verify_locations(str(ca_file))
    ctx.set_verify(SSL.VERIFY_PEER, lambda _conn, _cert, _errno, _depth, ok: bool(ok))
    start = time.process_time()
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", PORT)) as raw:
            conn = SSL.Connection(ctx, raw)
            conn.set_tlsext_host_name(SNI.encode())
            conn.set_connect_state()
            conn.do_handshake()
    return 1000 * (time.process_time() - start) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--n", type=int, default=300)
    n = ap.parse_args().n
    print(f"client CPU ms per TLS handshake ({n} handshakes, {ssl.OPENSSL_VERSION})")
    for key_type in (trustme.KeyType.ECDSA, trustme.KeyType.RSA):
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            ca = trustme.CA(key_type=key_type)
            cert = ca.issue_cert(SNI)
            ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
            cert.cert_chain_pems[0].write_to_path(str(tmp / "cert.pem"))
            cert.private_key_pem.write_to_path(str(tmp / "key.pem"))
            server = subprocess.Popen(
                [sys.executable, "-c", SERVER, str(tmp / "cert.pem"), str(tmp / "key.pem"), str(PORT)],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert server.stdout is not None and server.stdout.readline().strip() == "ready"
                line = f"{key_type.name:<6} stdlib ssl: {stdlib_loop(tmp / 'ca.pem', n):.3f}"
                bundled = pyopenssl_loop(tmp / "ca.pem", n)
                if bundled is not None:
                    line += f"   pyOpenSSL (bundled OpenSSL): {bundled:.3f}"
                print(line)
            finally:
                server.terminate()
                server.wait(timeout=10)


if __name__ == "__main__":
    main()
