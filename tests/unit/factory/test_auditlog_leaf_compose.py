"""Property: the leaf appending composes around the canonical body is the leaf ``encode_leaf``
makes from the decoded body (RFC 8785 objects are their sorted members, each canonical alone)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine
from sqlalchemy.pool import StaticPool

from fleetid.clock import ManualClock
from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import EncodingError
from fleetid.factory.auditlog import AuditEvent, AuditLog, _body_json, _compose_leaf, encode_leaf

# JSON values RFC 8785 takes: I-JSON numbers (integers within 2^53, finite floats), any strings.
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_BODIES = st.dictionaries(st.text(), _JSON, max_size=6)
SIGNER = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))


@settings(max_examples=300, deadline=None)
@given(
    body=_BODIES,
    index=st.integers(0, 2**53 - 1),
    logged_at=st.text(),
    kind=st.text(),
    serial=st.none() | st.text(),
)
def test_composed_leaf_equals_encode_leaf(
    body: dict[str, Any], index: int, logged_at: str, kind: str, serial: str | None
) -> None:
    try:
        canonical = rfc8785.dumps(body).decode("utf-8")
    except (rfc8785.CanonicalizationError, ValueError):
        return  # not JSON RFC 8785 takes (e.g. lone surrogates): refused by both paths alike
    try:
        # What the reading path does with a stored body: decode it and encode the whole leaf.
        expected: bytes | None = encode_leaf(
            index=index, logged_at=logged_at, kind=kind, serial=serial, body=json.loads(canonical)
        )
    except EncodingError:
        expected = None
    try:
        body_json = _body_json(body)
    except EncodingError:
        assert expected is None  # appending refuses exactly what could not be read back
        return
    assert body_json == canonical
    composed = _compose_leaf(
        index=index, logged_at=logged_at, kind=kind, serial=serial, body_json=body_json
    )
    assert composed == expected


def test_a_float_that_would_not_read_back_is_refused_at_append() -> None:
    with pytest.raises(EncodingError):
        _body_json({"x": 2.0**53})
    assert _body_json({"x": 2.0**53 - 1, "y": 1e21}) == '{"x":9007199254740991,"y":1e+21}'


def test_a_body_out_of_canonical_form_composes_to_another_leaf() -> None:
    """The composition trusts its input to be canonical: fed anything else, it differs (which
    verify_all would report), so appending must only ever pass ``_body_json`` output."""
    canonical = _body_json({"b": 1, "a": 2})
    reordered = '{"b":1,"a":2}'
    args: dict[str, Any] = {"index": 0, "logged_at": "t", "kind": "k", "serial": None}
    assert _compose_leaf(body_json=canonical, **args) == encode_leaf(body={"a": 2, "b": 1}, **args)
    assert _compose_leaf(body_json=reordered, **args) != encode_leaf(body={"a": 2, "b": 1}, **args)


def test_an_unrepresentable_index_is_refused() -> None:
    with pytest.raises(EncodingError):
        _compose_leaf(index=2**60, logged_at="t", kind="k", serial=None, body_json="{}")


def test_appended_leaf_hashes_match_the_reading_path() -> None:
    log = AuditLog(
        create_engine("sqlite://", poolclass=StaticPool),
        SIGNER,
        "fleetid.example/compose",
        ManualClock(),
    )
    events = [
        AuditEvent(kind="injection", serial=f"SN-{i}", body={"kcvs": {"enc": "ABC"}, "n": i})
        for i in range(5)
    ] + [AuditEvent(kind="lock", serial=None, body={"note": "\u00e9\u2028\ud7ff"})]
    entries = log.append_many(events)
    report = log.verify_all(SIGNER.public_key())
    assert report.entries == len(events)
    stored = log.entries()
    assert [e.leaf_hash() for e in stored] == [e.leaf_hash() for e in entries]
