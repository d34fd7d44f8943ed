"""Property: the appending path's canonical JSON (Python's encoder for ASCII-only values) is
byte for byte what the rfc8785 package writes, and anything it does not cover goes to rfc8785."""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetid.factory.auditlog import _canonical, _plain

_ASCII = st.text(st.characters(max_codepoint=0x7F))
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _ASCII
    | st.text()
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(_ASCII | st.text(), inner, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=500, deadline=None)
@given(value=_JSON)
def test_canonical_equals_rfc8785(value: Any) -> None:
    try:
        expected: bytes | None = rfc8785.dumps(value)
    except (rfc8785.CanonicalizationError, ValueError, TypeError):
        expected = None
    if expected is None:
        assert not _plain(value)
        return
    assert _canonical(value, "value") == expected


def test_values_outside_the_fast_path() -> None:
    assert not _plain(1.5)
    assert not _plain("é")
    assert not _plain({"é": 1})
    assert not _plain(2**53)
    assert not _plain((1, 2))
    assert _plain({"a": [1, True, None, "x\n\x00\x7f"]})
