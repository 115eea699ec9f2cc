"""Pure wire formats: bytes in, bytes or a verdict out. No sockets, no processes, no event loop.

One module per protocol: ``tor_certs`` (the CERTS cell of Tor's link handshake), ``openvpn_packets``
(control-channel packets and their tls-auth / tls-crypt / tls-crypt-v2 wrapping), ``ike_packets``
(IKEv2 IKE_SA_INIT), ``noise`` (WireGuard's Noise IKpsk2 handshake and cookie reply), ``shadowsocks``
and ``ss2022`` (key derivation and AEAD chunk framing of both Shadowsocks editions).

Kept apart from runtime code so that each can be read, fuzzed and tested on bytes alone, and so that
importers (which check key files) can use them without loading the socket stack. Layering: this package
imports only the vocabulary (``errors``, ``failures``, ``model``) and ``config``; ``net``, ``tor``, ``vpn``,
``probes`` and ``importers`` import it.
"""
