"""Butterfly expansion, ECQV and linkage beyond the published vectors: both curve families, the
algebra checked against pyca's own scalar multiplication, and the refusals."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fastecdsa import curve as fastecdsa_curve
from hypothesis import given
from hypothesis import strategies as st

from fleetid.crypto import ecpoint
from fleetid.crypto.butterfly import (
    BUTTERFLY_CURVES,
    expand_private,
    expand_public,
    expansion_input,
    expansion_integer,
)
from fleetid.crypto.ecqv import (
    certificate_hash_integer,
    hash_to_integer,
    private_key_reconstruction_value,
    reconstruct_private,
    reconstruct_public,
    reconstruction_point,
)
from fleetid.crypto.linkage import (
    linkage_seed_at,
    linkage_value,
    next_linkage_seed,
    pre_linkage_value,
)
from fleetid.errors import EncodingError

CURVES = {curve.name: curve for curve in BUTTERFLY_CURVES}
KEY = bytes(range(16))
u32 = st.integers(min_value=0, max_value=2**32 - 1)


def _xy(key: ec.EllipticCurvePublicKey) -> tuple[int, int]:
    numbers = key.public_numbers()
    return numbers.x, numbers.y


def _public(scalar: int, curve: ec.EllipticCurve) -> ec.EllipticCurvePublicKey:
    return ec.derive_private_key(scalar, curve).public_key()


# --- expansion -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CURVES))
@given(i=u32, j=u32, encryption=st.booleans(), seed=st.integers(min_value=1, max_value=2**255))
def test_expanded_private_and_public_keys_are_a_pair(
    name: str, i: int, j: int, encryption: bool, seed: int
) -> None:
    curve = CURVES[name]
    private = expand_private(seed, KEY, i, j, encryption=encryption, curve=curve)
    public = expand_public(_public(seed, curve), KEY, i, j, encryption=encryption)
    assert _xy(_public(private, curve)) == _xy(public)


def test_the_expansion_input_follows_the_layout() -> None:
    assert expansion_input(0x217D79E1, 0x11) == 0x00000000_217D79E1_00000011_00000000
    assert expansion_input(1, 2, encryption=True) == 0xFFFFFFFF_00000001_00000002_00000000


def test_each_index_gives_its_own_cocoon_key() -> None:
    seed = _public(12345, ec.SECP256R1())
    keys = {_xy(expand_public(seed, KEY, 7, j)) for j in range(1, 21)}
    assert len(keys) == 20


@pytest.mark.parametrize(("i", "j"), [(-1, 0), (0, -1), (2**32, 0), (0, 2**32)])
def test_indices_outside_32_bits_are_refused(i: int, j: int) -> None:
    with pytest.raises(EncodingError, match="32-bit"):
        expansion_integer(KEY, i, j)


@pytest.mark.parametrize("key", [b"", bytes(15), bytes(24), bytes(32)])
def test_an_expansion_key_is_aes_128(key: bytes) -> None:
    with pytest.raises(EncodingError, match="AES-128"):
        expansion_integer(key, 0, 1)


def test_a_384_bit_curve_is_refused() -> None:
    with pytest.raises(EncodingError, match="256-bit"):
        expansion_integer(KEY, 0, 1, curve=ec.SECP384R1())
    with pytest.raises(EncodingError, match="256-bit"):
        expand_public(_public(5, ec.SECP384R1()), KEY, 0, 1)


@pytest.mark.parametrize("seed", [0, -1, fastecdsa_curve.P256.q, fastecdsa_curve.P256.q + 1])
def test_a_caterpillar_private_key_outside_the_group_is_refused(seed: int) -> None:
    with pytest.raises(EncodingError, match=r"\[1, n-1\]"):
        expand_private(seed, KEY, 0, 1)


def test_another_expansion_key_gives_another_cocoon_key() -> None:
    seed = _public(99, ec.SECP256R1())
    assert _xy(expand_public(seed, KEY, 1, 1)) != _xy(expand_public(seed, bytes(16), 1, 1))


# --- point arithmetic ------------------------------------------------------------------------


@pytest.mark.parametrize("name", [*sorted(CURVES), "secp384r1", "brainpoolP384r1"])
@given(p=st.integers(min_value=1, max_value=2**250), q=st.integers(min_value=1, max_value=2**250))
def test_point_arithmetic_agrees_with_pyca_scalar_multiplication(name: str, p: int, q: int) -> None:
    curve = {**CURVES, "secp384r1": ec.SECP384R1(), "brainpoolP384r1": ec.BrainpoolP384R1()}[name]
    n = ecpoint.group_order(curve)
    if (p + q) % n == 0 or (3 * p + q) % n == 0:
        return
    assert _xy(ecpoint.add(_public(p, curve), _public(q, curve))) == _xy(_public(p + q, curve))
    combined = ecpoint.multiply_add(3, _public(p, curve), _public(q, curve))
    assert _xy(combined) == _xy(_public(3 * p + q, curve))


@given(p=st.integers(min_value=1, max_value=2**250), q=st.integers(min_value=1, max_value=2**250))
def test_pycryptodome_agrees_with_fastecdsa_on_p256(p: int, q: int) -> None:
    """Two independent libraries: P-256 sums go through pycryptodome, fastecdsa checks them."""
    if (p + q) % fastecdsa_curve.P256.q == 0:
        return
    ours = ecpoint.add(_public(p, ec.SECP256R1()), _public(q, ec.SECP256R1()))
    theirs = fastecdsa_curve.P256.G * p + fastecdsa_curve.P256.G * q
    assert _xy(ours) == (theirs.x, theirs.y)


@pytest.mark.parametrize("name", sorted(CURVES))
def test_a_sum_at_infinity_is_refused(name: str) -> None:
    curve = CURVES[name]
    n = ecpoint.group_order(curve)
    with pytest.raises(EncodingError, match="infinity"):
        ecpoint.add(_public(5, curve), _public(n - 5, curve))


def test_points_of_two_curves_do_not_add() -> None:
    with pytest.raises(EncodingError, match="two curves"):
        ecpoint.add(_public(5, ec.SECP256R1()), _public(5, ec.BrainpoolP256R1()))


def test_a_zero_scalar_has_no_base_multiple() -> None:
    with pytest.raises(EncodingError, match="0 mod n"):
        ecpoint.base_multiple(ec.SECP256R1(), ecpoint.group_order(ec.SECP256R1()))


# --- implicit certificates on both families --------------------------------------------------


@pytest.mark.parametrize("name", sorted(CURVES))
@given(
    request_private=st.integers(min_value=1, max_value=2**250),
    k=st.integers(min_value=1, max_value=2**250),
    ca_private=st.integers(min_value=1, max_value=2**250),
    tbs=st.binary(min_size=1, max_size=64),
)
def test_ecqv_reconstructs_a_key_pair(
    name: str, request_private: int, k: int, ca_private: int, tbs: bytes
) -> None:
    curve = CURVES[name]
    reconstruction = reconstruction_point(_public(request_private, curve), k)
    e = certificate_hash_integer(tbs, b"issuer certificate", curve)
    r = private_key_reconstruction_value(e, k, ca_private, curve)
    private = reconstruct_private(e, request_private, r, curve)
    public = reconstruct_public(e, reconstruction, _public(ca_private, curve))
    assert _xy(_public(private, curve)) == _xy(public)


def test_the_1609_hash_input_binds_the_issuer() -> None:
    curve = ec.SECP256R1()
    assert certificate_hash_integer(b"tbs", b"issuer A", curve) != certificate_hash_integer(
        b"tbs", b"issuer B", curve
    )


def test_hn_keeps_the_leftmost_bits_below_the_order() -> None:
    assert hash_to_integer(b"\xff" * 32, ec.SECP256R1()) == 2**255 - 1
    assert hash_to_integer(b"\xff" * 32, ec.BrainpoolP256R1()) == 2**255 - 1


def test_a_wrong_reconstruction_value_gives_a_key_that_does_not_match() -> None:
    curve = ec.SECP256R1()
    reconstruction = reconstruction_point(_public(11, curve), 22)
    e = certificate_hash_integer(b"tbs", b"", curve)
    r = private_key_reconstruction_value(e, 22, 33, curve)
    public = reconstruct_public(e, reconstruction, _public(33, curve))
    tampered = reconstruct_private(e, 11, (r + 1) % ecpoint.group_order(curve), curve)
    assert _xy(_public(tampered, curve)) != _xy(public)


@pytest.mark.parametrize("value", [0, fastecdsa_curve.P256.q])
def test_ecqv_scalars_outside_the_group_are_refused(value: int) -> None:
    curve = ec.SECP256R1()
    with pytest.raises(EncodingError):
        private_key_reconstruction_value(1, value, 5, curve)
    with pytest.raises(EncodingError):
        private_key_reconstruction_value(1, 5, value, curve)
    with pytest.raises(EncodingError):
        reconstruct_private(1, value, 5, curve)


# --- linkage ---------------------------------------------------------------------------------

LA1 = bytes.fromhex("8E09")


def test_the_seed_chain_walks_forward_only() -> None:
    seed = bytes(16)
    assert linkage_seed_at(seed, LA1, 3) == next_linkage_seed(
        next_linkage_seed(next_linkage_seed(seed, LA1), LA1), LA1
    )
    assert linkage_seed_at(seed, LA1, 0) == seed
    with pytest.raises(EncodingError, match="forward"):
        linkage_seed_at(seed, LA1, -1)


def test_another_la_id_gives_another_chain() -> None:
    assert next_linkage_seed(bytes(16), LA1) != next_linkage_seed(bytes(16), b"\x59\xce")


@pytest.mark.parametrize(
    ("seed", "la_id"), [(bytes(15), LA1), (bytes(17), LA1), (bytes(16), b"\x01")]
)
def test_wrong_sizes_are_refused(seed: bytes, la_id: bytes) -> None:
    with pytest.raises(EncodingError):
        next_linkage_seed(seed, la_id)
    with pytest.raises(EncodingError):
        pre_linkage_value(seed, la_id, 1)


def test_j_is_32_bits_and_linkage_values_9_bytes() -> None:
    with pytest.raises(EncodingError, match="32-bit"):
        pre_linkage_value(bytes(16), LA1, 2**32)
    with pytest.raises(EncodingError, match="9 bytes"):
        linkage_value(bytes(9), bytes(8))


def test_a_tampered_pre_linkage_value_changes_the_linkage_value() -> None:
    plv1, plv2 = pre_linkage_value(bytes(16), LA1, 1), pre_linkage_value(bytes(range(16)), LA1, 1)
    tampered = bytes([plv1[0] ^ 1]) + plv1[1:]
    assert linkage_value(tampered, plv2) != linkage_value(plv1, plv2)
