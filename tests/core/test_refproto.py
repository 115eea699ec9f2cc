"""Reference protocol v2: signed observations matched by destination; forgeries rejected and logged once.

The reference side is ``refproto.build_envelope`` served by a real aiohttp app on 127.0.0.1; the client
is the daemon's own ``ReferenceClient``. A "path attacker" is a server that answers in the reference's
place: with its own key, with no signature, with a replayed answer, or with a tampered payload.
"""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from reachwatch import refproto
from reachwatch.cli import main
from reachwatch.config.schema import ReferenceVantage
from reachwatch.failures import Failure, Stage
from reachwatch.model import ProbeResult
from reachwatch.reference import ReferenceClient, ReferenceSet
from tests.core.test_reference import http_app


def _result(name: str, success: bool, started_at: float, **facts: Any) -> ProbeResult:
    return ProbeResult(
        target=name,
        kind="https",
        started_at=started_at,
        duration_s=0.5,
        success=success,
        failure=None if success else Failure.GENERIC_TIMEOUT_ERROR,
        stage=None if success else Stage.CONNECT,
        stage_durations={"connect": 0.01, "http": 0.2},
        facts=facts,
    )


def _entries(now: float) -> list[dict[str, Any]]:
    views = [
        refproto.TargetView(
            "bank-de", "https", "bank.test:443", _result("bank-de", True, now - 5, status=200)
        ),
        refproto.TargetView("mirror", "https", "mirror.test:443", _result("mirror", True, now - 5)),
        refproto.TargetView("secret", "tcp", None, _result("secret", False, now - 5)),
        refproto.TargetView("fresh", "tcp", "fresh.test:1", None),
    ]
    return [e for v in views if (e := refproto.observation_entry(v)) is not None]


KEY = Ed25519PrivateKey.generate()
PUBLIC = refproto.public_key_text(KEY.public_key())


def test_a_signed_answer_opens_with_the_pinned_key_and_indexes_by_name_and_destination() -> None:
    now = time.time()
    body = refproto.build_envelope(_entries(now), vantage="abroad", nonce="n" * 16, key=KEY)
    answer = refproto.open_envelope(
        body, reference="de", pinned=refproto.parse_public_key(PUBLIC), nonce="n" * 16
    )
    assert answer.signed and set(answer.by_name) == {"bank-de", "mirror", "secret"}
    bank = answer.by_name["bank-de"]
    assert (bank.reference, bank.destination, bank.kind, bank.version, bank.signed) == (
        "de",
        "bank.test:443",
        "https",
        2,
        True,
    )
    assert bank.facts == {"status": 200} and bank.stage_durations == {"connect": 0.01, "http": 0.2}
    assert answer.by_name["secret"].destination is None  # a private target's address never travels
    assert [o.target for o in answer.by_destination["bank.test:443"]] == ["bank-de"]


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda env: {**env, "signature": None}, "unsigned"),
        (lambda env: {k: v for k, v in env.items() if k != "signature"}, "unsigned"),
        (
            lambda env: {**env, "payload": env["payload"].replace('"success":false', '"success":true')},
            "forged",
        ),
        (lambda env: {**env, "signature": "AAAA"}, "forged"),
        (lambda env: {**env, "signature": "not base64!"}, "forged"),
        (lambda env: {**env, "signature": 7}, "not text"),
    ],
)
def test_an_answer_the_pinned_key_does_not_vouch_for_is_rejected(
    tamper: Callable[[dict[str, Any]], dict[str, Any]], reason: str
) -> None:
    envelope = json.loads(
        refproto.build_envelope(_entries(time.time()), vantage="a", nonce="n" * 16, key=KEY)
    )
    body = json.dumps(tamper(envelope)).encode()
    with pytest.raises(refproto.SignatureRejected, match=reason):
        refproto.open_envelope(body, reference="de", pinned=KEY.public_key(), nonce="n" * 16)


def test_another_keys_signature_and_a_replayed_answer_are_rejected() -> None:
    entries = _entries(time.time())
    other = Ed25519PrivateKey.generate()
    forged = refproto.build_envelope(entries, vantage="a", nonce="n" * 16, key=other)
    with pytest.raises(refproto.SignatureRejected, match="forged"):
        refproto.open_envelope(forged, reference="de", pinned=KEY.public_key(), nonce="n" * 16)
    old = refproto.build_envelope(entries, vantage="a", nonce="o" * 16, key=KEY)
    with pytest.raises(refproto.SignatureRejected, match="replayed"):
        refproto.open_envelope(old, reference="de", pinned=KEY.public_key(), nonce="n" * 16)


def test_without_a_pinned_key_an_unsigned_answer_is_used_and_marked_unsigned() -> None:
    body = refproto.build_envelope(_entries(time.time()), vantage="a", nonce=None, key=None)
    answer = refproto.open_envelope(body, reference="de", pinned=None, nonce="n" * 16)
    assert not answer.signed and not answer.by_name["bank-de"].signed


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_any_bytes_are_an_answer_or_a_protocol_error_never_a_crash(body: bytes) -> None:
    for pinned in (None, KEY.public_key()):
        with suppress(refproto.ProtocolError):
            refproto.open_envelope(body, reference="de", pinned=pinned, nonce="n" * 16)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
        max_leaves=30,
    )
)
def test_any_payload_document_is_parsed_or_refused_never_a_crash(doc: Any) -> None:
    payload = json.dumps(
        {
            "format": refproto.FORMAT,
            "observations": [doc, {"name": "x", **({} if not isinstance(doc, dict) else doc)}],
        }
    )
    body = json.dumps({"version": 2, "payload": payload}).encode()
    answer = refproto.open_envelope(body, reference="de", pinned=None, nonce=None)
    for seen in answer.by_name.values():
        assert isinstance(seen.success, bool) and seen.observed_at == seen.observed_at  # finite, not NaN


# --- the client against real servers -----------------------------------------------------------------


@asynccontextmanager
async def v2_server(
    answer: Callable[[web.Request], bytes],
) -> AsyncIterator[tuple[int, list[web.Request]]]:
    requests: list[web.Request] = []

    async def handler(request: web.Request) -> web.Response:
        requests.append(request)
        return web.Response(body=answer(request), content_type="application/json")

    app = web.Application()
    app.router.add_get(refproto.PATH, handler)
    async with http_app(app) as port:
        yield port, requests


def _reference(port: int, **kw: Any) -> ReferenceVantage:
    return ReferenceVantage(name="abroad", url=f"http://127.0.0.1:{port}", **kw)


async def test_a_pinned_reference_is_read_through_signed_v2_and_matched_by_destination(
    tmp_path: Path,
) -> None:
    now = time.time()

    def answer(request: web.Request) -> bytes:
        return refproto.build_envelope(_entries(now), vantage="abroad", nonce=request.query["nonce"], key=KEY)

    async with v2_server(answer) as (port, requests):
        refs = ReferenceSet([_reference(port, public_key=PUBLIC)], tmp_path)
        try:
            # our "bank" is the reference's "bank-de": the same destination, named differently
            seen = await refs.observe("bank", now, destination="bank.test:443", kind="https")
            assert seen is not None and seen.success and seen.signed and seen.target == "bank-de"
            # the same name probing another server proves nothing about ours
            assert refs.observation_for("mirror", now, destination="elsewhere.test:443") is None
            # a name without a published destination (a private target there) still matches by name
            private = refs.observation_for("secret", now, destination="secret.test:22")
            assert private is not None and private.success is False
            # two nonces, two requests: every fetch asks a fresh question
            await refs.observe("bank", now + 31, destination="bank.test:443")
            nonces = [r.query["nonce"] for r in requests]
            assert len(nonces) == 2 and len(set(nonces)) == 2
            assert all(refproto.NONCE_PATTERN.match(n) for n in nonces)
        finally:
            await refs.close()


async def test_a_forged_answer_is_rejected_logged_once_and_leaves_no_reference(tmp_path: Path) -> None:
    """A path attacker answering in the reference's place with its own key: every answer rejected, one
    error line for the whole streak, and no observation reaches the verdict."""
    now = time.time()
    attacker = Ed25519PrivateKey.generate()

    def answer(request: web.Request) -> bytes:
        entries = [{**e, "success": True} for e in _entries(now)]  # "everything reached from abroad"
        return refproto.build_envelope(entries, vantage="abroad", nonce=request.query["nonce"], key=attacker)

    async with v2_server(answer) as (port, requests):
        client = ReferenceClient(_reference(port, public_key=PUBLIC), tmp_path)
        try:
            with capture_logs() as logs:
                for i in range(3):
                    assert not await client.refresh(now + i)
            assert client.observation_for("secret", now) is None
            assert client.rejected == 3 and len(requests) == 3
            errors = [e for e in logs if e["event"] == "reference_answer_rejected"]
            assert len(errors) == 1 and errors[0]["log_level"] == "error"
            assert "forged" in errors[0]["reason"]
        finally:
            await client.close()


async def test_unsigned_or_v1_only_answers_are_refused_when_a_key_is_pinned(tmp_path: Path) -> None:
    now = time.time()

    async with v2_server(
        lambda r: refproto.build_envelope(_entries(now), vantage="abroad", nonce=r.query["nonce"], key=None)
    ) as (port, _):
        client = ReferenceClient(_reference(port, public_key=PUBLIC), tmp_path)
        try:
            with capture_logs() as logs:
                assert not await client.refresh(now)
            assert any("unsigned" in e.get("reason", "") for e in logs)
        finally:
            await client.close()
    # an old reference (v1 only: v2 is a 404): pinned, it is refused; unpinned, it is read through v1
    app = web.Application()

    async def v1(request: web.Request) -> web.Response:
        doc = {"targets": [{"name": "t", "last": {"started_at": now, "success": True}}]}
        return web.json_response(doc)

    app.router.add_get("/api/v1/status", v1)
    async with http_app(app) as port:
        pinned = ReferenceClient(_reference(port, public_key=PUBLIC), tmp_path)
        plain = ReferenceClient(_reference(port), tmp_path)
        try:
            assert not await pinned.refresh(now)
            assert await plain.refresh(now) and plain.version == 1
            seen = plain.observation_for("t", now)
            assert seen is not None and seen.success and seen.version == 1 and not seen.signed
        finally:
            await pinned.close()
            await plain.close()


@pytest.mark.parametrize(
    ("key", "message"),
    [("not base64!", "not base64"), ("AAAA", "3 bytes"), (PUBLIC, None)],
    ids=["not-base64", "3-bytes", "a-fresh-key"],  # the key is new in every process: not a stable id
)
def test_a_pinned_key_is_checked_when_the_config_loads(key: str, message: str | None) -> None:
    fields = {"name": "abroad", "url": "https://ref.example.org", "public_key": key}
    if message is None:
        ReferenceVantage(**fields)
    else:
        with pytest.raises(ValueError, match=message):
            ReferenceVantage(**fields)


def test_keygen_writes_a_private_key_0600_never_overwrites_and_prints_the_key_to_pin(tmp_path: Path) -> None:
    out, err = StringIO(), StringIO()
    assert main(["keygen", "--output-dir", str(tmp_path / "keys")], out, err) == 0
    private, public = tmp_path / "keys" / "reference.key", tmp_path / "keys" / "reference.pub"
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o600
    key = refproto.load_private_key(private.read_bytes())
    pinned = public.read_text().strip()
    assert refproto.public_key_text(key.public_key()) == pinned and f"public_key: {pinned}" in out.getvalue()
    before = private.read_bytes()
    assert main(["keygen", "--output-dir", str(tmp_path / "keys")], StringIO(), err) == 2
    assert "never overwritten" in err.getvalue() and private.read_bytes() == before
    assert main(["keygen", "--name", "../x"], StringIO(), err) == 2
