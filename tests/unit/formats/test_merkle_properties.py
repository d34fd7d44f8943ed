"""Property tests: for random trees up to ~300 leaves every generated proof verifies, and any
single-bit change to a proof element, a root or the leaf hash makes it fail.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleetid.errors import VerificationError
from fleetid.factory.auditlog import leaf_hash, verify_consistency, verify_inclusion
from fleetid.formats.merkle_tree import MerkleTree

MAX_SIZE = 300


def _tree(size: int) -> MerkleTree:
    return MerkleTree(leaf_hash(i.to_bytes(4, "big")) for i in range(size))


def _flip(value: bytes, bit: int) -> bytes:
    mutated = bytearray(value)
    mutated[(bit // 8) % len(value)] ^= 1 << (bit % 8)
    return bytes(mutated)


@st.composite
def inclusion_cases(draw: st.DrawFn) -> tuple[MerkleTree, int, int]:
    size = draw(st.integers(1, MAX_SIZE))
    return _tree(size), draw(st.integers(0, size - 1)), size


@st.composite
def consistency_cases(draw: st.DrawFn) -> tuple[MerkleTree, int, int]:
    size2 = draw(st.integers(1, MAX_SIZE))
    return _tree(size2), draw(st.integers(1, size2)), size2


@given(inclusion_cases(), st.data())
def test_inclusion_proofs_verify_and_every_bit_flip_fails(
    case: tuple[MerkleTree, int, int], data: st.DataObject
) -> None:
    tree, index, size = case
    proof = tree.inclusion_proof(index, size)
    root = tree.root(size)
    verify_inclusion(tree.leaf(index), index, size, proof, root)

    # Any one bit of any element, of the root or of the leaf hash.
    targets = len(proof) + 2
    target = data.draw(st.integers(0, targets - 1), label="target")
    bit = data.draw(st.integers(0, 255), label="bit")
    leaf, mutated_proof, mutated_root = tree.leaf(index), list(proof), root
    if target < len(proof):
        mutated_proof[target] = _flip(proof[target], bit)
    elif target == len(proof):
        mutated_root = _flip(root, bit)
    else:
        leaf = _flip(leaf, bit)
    try:
        verify_inclusion(leaf, index, size, mutated_proof, mutated_root)
    except VerificationError:
        pass
    else:
        raise AssertionError("a mutated inclusion proof verified")


@given(consistency_cases(), st.data())
def test_consistency_proofs_verify_and_every_bit_flip_fails(
    case: tuple[MerkleTree, int, int], data: st.DataObject
) -> None:
    tree, size1, size2 = case
    proof = tree.consistency_proof(size1, size2)
    root1, root2 = tree.root(size1), tree.root(size2)
    verify_consistency(size1, size2, proof, root1, root2)

    targets = len(proof) + 2
    target = data.draw(st.integers(0, targets - 1), label="target")
    bit = data.draw(st.integers(0, 255), label="bit")
    mutated_proof, r1, r2 = list(proof), root1, root2
    if target < len(proof):
        mutated_proof[target] = _flip(proof[target], bit)
    elif target == len(proof):
        r1 = _flip(root1, bit)
    else:
        r2 = _flip(root2, bit)
    try:
        verify_consistency(size1, size2, mutated_proof, r1, r2)
    except VerificationError:
        pass
    else:
        raise AssertionError("a mutated consistency proof verified")


@given(st.integers(2, MAX_SIZE), st.data())
def test_inclusion_proof_of_one_leaf_does_not_prove_another(size: int, data: st.DataObject) -> None:
    tree = _tree(size)
    index = data.draw(st.integers(0, size - 1))
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
    proof = tree.inclusion_proof(index, size)
    for leaf, position in ((tree.leaf(other), index), (tree.leaf(index), other)):
        try:
            verify_inclusion(leaf, position, size, proof, tree.root(size))
        except VerificationError:
            continue
        raise AssertionError("an inclusion proof verified for the wrong leaf or position")
