"""RFC 6962 / RFC 9162 Merkle vectors from transparency-dev/merkle (shared/vectors/merkle).

The prover (``fleetid.formats.merkle_tree``) must reproduce every published root, node and proof;
the verifier (``fleetid.factory.auditlog`` entry points) must accept them and reject each
corruption of them.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from tests.vector_loader import load_json

from fleetid.errors import VerificationError
from fleetid.factory.auditlog import leaf_hash, verify_consistency, verify_inclusion
from fleetid.formats.merkle import EMPTY_ROOT, node_hash
from fleetid.formats.merkle_tree import MerkleTree

VECTORS = "merkle/rfc6962-merkle-vectors.json"


@pytest.fixture(scope="module")
def vectors() -> Any:
    data = load_json(VECTORS)
    assert data["format"] == "merkle-rfc6962-vectors/1"
    return data


@pytest.fixture(scope="module")
def tree(vectors: Any) -> MerkleTree:
    leaves = [bytes.fromhex(x) for x in vectors["tree"]["leaf_inputs_hex"]]
    return MerkleTree(leaf_hash(leaf) for leaf in leaves)


def _h(text: str) -> bytes:
    return bytes.fromhex(text)


def _flips(proof: list[bytes]) -> list[list[bytes]]:
    """Every single-bit corruption of every element of a proof."""
    out = []
    for i, element in enumerate(proof):
        for bit in range(len(element) * 8):
            mutated = bytearray(element)
            mutated[bit // 8] ^= 1 << (bit % 8)
            out.append([*proof[:i], bytes(mutated), *proof[i + 1 :]])
    return out


# -- basic hashes, at the raw hash-function level ------------------------------------------


def test_basic_hashes(vectors: Any) -> None:
    seen = set()
    for case in vectors["basic_hashes"]:
        expected = _h(case["expected"])
        if case["operation"] == "empty_root":
            assert expected == EMPTY_ROOT == hashlib.sha256(b"").digest()
            assert MerkleTree().root() == expected
        elif case["operation"] == "leaf_hash":
            assert leaf_hash(_h(case["input_hex"])) == expected
        elif case["operation"] == "node_hash":
            # Raw 4-byte children (PROVENANCE pitfall): the hasher must not insist on 32 bytes.
            assert node_hash(_h(case["left_hex"]), _h(case["right_hex"])) == expected
        else:  # pragma: no cover - a new vector kind must be handled, not ignored
            pytest.fail(f"unknown operation {case['operation']}")
        seen.add(case["operation"])
    assert seen == {"empty_root", "leaf_hash", "node_hash"}


def test_empty_leaf_is_not_empty_root(vectors: Any) -> None:
    assert leaf_hash(b"") != EMPTY_ROOT
    assert MerkleTree([leaf_hash(b"")]).root() == leaf_hash(b"")


def test_node_hash_vector_negative(vectors: Any) -> None:
    case = next(c for c in vectors["basic_hashes"] if c["operation"] == "node_hash")
    # Swapped children give another hash: the order of the children is part of the hash.
    assert node_hash(_h(case["right_hex"]), _h(case["left_hex"])) != _h(case["expected"])


# -- the 8-leaf tree ----------------------------------------------------------------------


def test_leaf_hashes(vectors: Any, tree: MerkleTree) -> None:
    expected = [_h(x) for x in vectors["tree"]["leaf_hashes"]]
    assert [tree.leaf(i) for i in range(tree.size)] == expected


def test_node_hashes(vectors: Any) -> None:
    leaves = [leaf_hash(_h(x)) for x in vectors["tree"]["leaf_inputs_hex"]]
    for level, row in enumerate(vectors["tree"]["node_hashes"]):
        width = 1 << level
        for i, expected in enumerate(row):
            subtree = MerkleTree(leaves[i * width : (i + 1) * width])
            assert subtree.size == width
            assert subtree.root() == _h(expected), (level, i)


@pytest.mark.parametrize("size", range(9))
def test_root(vectors: Any, tree: MerkleTree, size: int) -> None:
    assert tree.root(size) == _h(vectors["tree"]["roots"][str(size)])


# -- the published proofs -----------------------------------------------------------------


def test_published_inclusion_proofs(vectors: Any, tree: MerkleTree) -> None:
    assert len(vectors["inclusion_proofs"]) == 3
    for case in vectors["inclusion_proofs"]:
        proof = [_h(x) for x in case["proof"]]
        index, size, root = case["leaf_index"], case["tree_size"], _h(case["root"])
        assert leaf_hash(_h(case["leaf_input_hex"])) == _h(case["leaf_hash"])
        assert tree.inclusion_proof(index, size) == proof
        verify_inclusion(_h(case["leaf_hash"]), index, size, proof, root)


def test_published_consistency_proofs(vectors: Any, tree: MerkleTree) -> None:
    assert len(vectors["consistency_proofs"]) == 3
    for case in vectors["consistency_proofs"]:
        proof = [_h(x) for x in case["proof"]]
        size1, size2 = case["size1"], case["size2"]
        assert tree.consistency_proof(size1, size2) == proof
        verify_consistency(size1, size2, proof, _h(case["root1"]), _h(case["root2"]))


def test_published_inclusion_proofs_reject_every_bit_flip(vectors: Any) -> None:
    for case in vectors["inclusion_proofs"]:
        proof = [_h(x) for x in case["proof"]]
        args = (case["leaf_index"], case["tree_size"])
        for mutated in _flips(proof):
            with pytest.raises(VerificationError):
                verify_inclusion(_h(case["leaf_hash"]), *args, mutated, _h(case["root"]))


def test_published_consistency_proofs_reject_every_bit_flip(vectors: Any) -> None:
    for case in vectors["consistency_proofs"]:
        proof = [_h(x) for x in case["proof"]]
        roots = (_h(case["root1"]), _h(case["root2"]))
        for mutated in _flips(proof):
            with pytest.raises(VerificationError):
                verify_consistency(case["size1"], case["size2"], mutated, *roots)


def test_published_inclusion_proofs_reject_wrong_parameters(vectors: Any) -> None:
    roots = {int(k): _h(v) for k, v in vectors["tree"]["roots"].items()}
    for case in vectors["inclusion_proofs"]:
        proof = [_h(x) for x in case["proof"]]
        leaf, index, size, root = (
            _h(case["leaf_hash"]),
            case["leaf_index"],
            case["tree_size"],
            _h(case["root"]),
        )
        probes = [
            (leaf_hash(b"not this leaf"), index, size, proof, root),  # wrong leaf
            (leaf, index, size, proof, roots[size - 1] if size > 1 else EMPTY_ROOT),  # wrong root
            # Wrong sizes that change the path's shape. (A size with the same shape, e.g. 7
            # for leaf 0 of 8, is not caught by the proof: RFC 9162 binds the size through the
            # root, which a checkpoint signs together with it.)
            (leaf, index, size * 2, proof, root),
            (leaf, index, index, proof, root),  # index == size
            (leaf, index, size, proof[:-1], root),  # missing element
            (leaf, index, size, [*proof, proof[-1]], root),  # extra element
            (leaf, index, size, [bytes(32), *proof], root),  # element prepended
            (leaf, index, size, list(reversed(proof)), root) if len(proof) > 1 else None,
        ]
        probes += [(leaf, other, size, proof, root) for other in range(size) if other != index]
        for probe in probes:
            if probe is None:
                continue
            with pytest.raises(VerificationError):
                verify_inclusion(*probe)


def test_published_consistency_proofs_reject_wrong_parameters(vectors: Any) -> None:
    roots = {int(k): _h(v) for k, v in vectors["tree"]["roots"].items()}
    for case in vectors["consistency_proofs"]:
        proof = [_h(x) for x in case["proof"]]
        s1, s2, r1, r2 = case["size1"], case["size2"], _h(case["root1"]), _h(case["root2"])
        probes = [
            (s1, s2, proof, r2, r2),  # wrong first root
            (s1, s2, proof, r1, r1),  # wrong second root
            (s1, s2, proof, r2, r1),  # swapped roots
            (s1, s2, proof[:-1], r1, r2),  # missing element
            (s1, s2, [*proof, proof[-1]], r1, r2),  # extra element (the hash-tree 0.1.1 bug)
            (s1, s2, [bytes(32), *proof], r1, r2),
            (s2, s1, proof, r2, r1),  # size1 > size2
            (0, s2, proof, EMPTY_ROOT, r2),  # from the empty tree
            (s1, s2, [], r1, r2),  # empty proof
        ]
        probes += [
            (s1, other, proof, r1, roots[other]) for other in range(s1 + 1, 9) if other != s2
        ]
        probes += [(other, s2, proof, roots[other], r2) for other in range(1, s2) if other != s1]
        for probe in probes:
            with pytest.raises(VerificationError):
                verify_consistency(*probe)


# -- every proof of the 8-leaf tree: our prover, checked by our verifier -------------------


def test_all_inclusion_proofs_of_the_tree(vectors: Any, tree: MerkleTree) -> None:
    count = 0
    for size in range(1, 9):
        root = _h(vectors["tree"]["roots"][str(size)])
        for index in range(size):
            proof = tree.inclusion_proof(index, size)
            verify_inclusion(tree.leaf(index), index, size, proof, root)
            count += 1
            if size > 1:
                with pytest.raises(VerificationError):
                    verify_inclusion(tree.leaf(index), (index + 1) % size, size, proof, root)
    assert count == 36


def test_all_consistency_proofs_of_the_tree(vectors: Any, tree: MerkleTree) -> None:
    roots = {int(k): _h(v) for k, v in vectors["tree"]["roots"].items()}
    count = 0
    for size2 in range(1, 9):
        for size1 in range(1, size2 + 1):
            proof = tree.consistency_proof(size1, size2)
            verify_consistency(size1, size2, proof, roots[size1], roots[size2])
            count += 1
            if size1 < size2:
                for mutated in _flips(proof)[::37]:
                    with pytest.raises(VerificationError):
                        verify_consistency(size1, size2, mutated, roots[size1], roots[size2])
    assert count == 36
