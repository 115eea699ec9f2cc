"""net.tls helpers: pin formats, issuer naming and the national-root list, on real certificates."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from reachwatch.failures import Failure
from reachwatch.net.errors import NetFailure
from reachwatch.net.tls import PresentedChain, check_pins, normalize_pin, spki_sha256
from tests.servers import rogue_ca


def sm2_certificate_der(directory: Path) -> bytes:
    """A self-signed SM2 certificate (made by openssl): a key type cryptography cannot load."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "sm2", "-nodes", "-subj", "/CN=sm2.test", "-days", "2",
         "-keyout", str(directory / "k.pem"), "-out", str(directory / "c.der"), "-outform", "DER"],
        check=True, capture_output=True,
    )  # fmt: skip
    return (directory / "c.der").read_bytes()


def chain_of(ca: trustme.CA, name: str = "a.test") -> PresentedChain:
    leaf = ca.issue_cert(name)
    certs = [x509.load_pem_x509_certificate(p.bytes()) for p in leaf.cert_chain_pems]
    return PresentedChain(tuple(c.public_bytes(Encoding.DER) for c in certs))


def test_pin_formats_normalise_to_the_same_base64() -> None:
    digest = hashlib.sha256(b"key").digest()
    b64 = base64.b64encode(digest).decode()
    assert normalize_pin(f"sha256/{b64}") == b64
    assert normalize_pin(digest.hex()) == b64
    assert normalize_pin(":".join(f"{b:02X}" for b in digest)) == b64


@pytest.mark.parametrize(
    ("subject", "named"),
    [
        (("KZ", "ISCA", "Information Security Certification Authority"), True),
        (("KZ", "Qaznet", "Qaznet Trust Network"), True),
        (("KZ", "Other", "Information Security Certification Authority"), False),
        (("US", "Let's Encrypt", "R3"), False),
    ],
)
def test_known_interception_roots_are_recognised_by_name(subject: tuple[str, str, str], named: bool) -> None:
    chain = chain_of(rogue_ca(*subject))
    assert (chain.interception_root() is not None) is named
    assert chain.top_issuer == f"CN={subject[2]},O={subject[1]},C={subject[0]}"


def test_spki_pin_matches_the_leaf_and_fingerprint_must_match_the_leaf() -> None:
    chain = chain_of(trustme.CA())
    check_pins(chain, [spki_sha256(chain.certs[0])], [chain.leaf_sha256()])
    with pytest.raises(NetFailure) as err:
        check_pins(chain, [], ["ab" * 32])
    assert err.value.failure is Failure.SSL_PIN_MISMATCH


def test_garbage_der_keeps_what_parsed() -> None:
    good = chain_of(trustme.CA())
    chain = PresentedChain((good.der[0], b"\x30\x03garbage"))
    assert len(chain.certs) == 1
    assert chain.leaf_subject


def test_spki_pin_of_a_key_type_cryptography_cannot_load(tmp_path: Path) -> None:
    """The SPKI hash is taken from the certificate's own bytes, so an SM2 (Chinese national) chain is
    pinnable and never crashes the pin check."""
    chain = PresentedChain((sm2_certificate_der(tmp_path),))
    (pin,) = chain.spki_sha256()
    check_pins(chain, [pin], [])
    with pytest.raises(NetFailure) as err:
        check_pins(chain, ["AAAA" * 11], [])
    assert err.value.failure is Failure.SSL_PIN_MISMATCH


def test_spki_pin_equals_the_hash_of_the_encoded_public_key() -> None:
    chain = chain_of(trustme.CA())
    key = chain.certs[0].public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert chain.spki_sha256()[0] == base64.b64encode(hashlib.sha256(key).digest()).decode()


def test_leaf_subject_is_the_parsed_leafs_name_and_empty_for_a_leaf_that_does_not_parse() -> None:
    """The cached subject (a successful probe's ``tls_subject``) equals what parsing the chain gives, for
    different leaves in turn and for one seen again, and a garbage leaf still reports no subject."""
    first, second = chain_of(trustme.CA()), chain_of(trustme.CA())
    seen = [chain.leaf_subject for chain in (first, second, first)]
    assert seen == [c.certs[0].subject.rfc4514_string() for c in (first, second, first)]
    assert seen[0] != seen[1]
    assert PresentedChain((b"\x30\x03garbage", first.der[0])).leaf_subject == ""
    assert PresentedChain(()).leaf_subject == ""
