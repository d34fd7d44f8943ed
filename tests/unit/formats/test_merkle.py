"""Merkle verifiers: malformed inputs of every kind, size semantics, and prover/verifier separation.

Trees here are built from our own leaves, so these run without the external vectors.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path
from typing import Any

import pytest

import fleetid.formats.merkle as merkle_module
from fleetid.errors import VerificationError
from fleetid.factory.auditlog import leaf_hash, verify_consistency, verify_inclusion
from fleetid.formats.merkle import EMPTY_ROOT, node_hash
from fleetid.formats.merkle_tree import MerkleTree

TREE = MerkleTree(leaf_hash(bytes([i]) * i) for i in range(13))


def _naive_mth(leaves: list[bytes]) -> bytes:
    """RFC 6962 §2.1 MTH straight from the definition, on raw leaf data (test oracle)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + _naive_mth(leaves[:k]) + _naive_mth(leaves[k:])).digest()


def test_roots_match_the_definition() -> None:
    data = [bytes([i]) * i for i in range(13)]
    for size in range(14):
        assert TREE.root(size) == _naive_mth(data[:size])


def test_valid_proofs_verify() -> None:
    verify_inclusion(TREE.leaf(5), 5, 13, TREE.inclusion_proof(5, 13), TREE.root(13))
    verify_consistency(5, 13, TREE.consistency_proof(5, 13), TREE.root(5), TREE.root(13))


# -- inclusion: malformed ------------------------------------------------------------------


def _inclusion_args(**changes: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "leaf_hash": TREE.leaf(5),
        "index": 5,
        "tree_size": 13,
        "proof": TREE.inclusion_proof(5, 13),
        "root": TREE.root(13),
    }
    args.update(changes)
    return args


PROOF5 = TREE.inclusion_proof(5, 13)

INCLUSION_CASES = {
    "element too short": _inclusion_args(proof=[PROOF5[0][:31], *PROOF5[1:]]),
    "element too long": _inclusion_args(proof=[PROOF5[0] + b"\x00", *PROOF5[1:]]),
    "empty element": _inclusion_args(proof=[b"", *PROOF5[1:]]),
    "extra element": _inclusion_args(proof=[*PROOF5, PROOF5[0]]),
    "missing element": _inclusion_args(proof=PROOF5[:-1]),
    "empty proof": _inclusion_args(proof=[]),
    "proof is one bytes string": _inclusion_args(proof=b"".join(PROOF5)),
    "element not bytes": _inclusion_args(proof=[p.hex() for p in PROOF5]),
    "index equals size": _inclusion_args(index=13),
    "index beyond size": _inclusion_args(index=14),
    "negative index": _inclusion_args(index=-1),
    "size zero": _inclusion_args(index=0, tree_size=0),
    "negative size": _inclusion_args(tree_size=-13),
    "size as bool": _inclusion_args(index=0, tree_size=True, proof=[]),
    "wrong index": _inclusion_args(index=4),
    "wrong size (shape changes)": _inclusion_args(tree_size=6),
    "wrong root": _inclusion_args(root=TREE.root(12)),
    "short root": _inclusion_args(root=TREE.root(13)[:31]),
    "short leaf hash": _inclusion_args(leaf_hash=TREE.leaf(5)[:31]),
    "raw leaf instead of leaf hash": _inclusion_args(leaf_hash=bytes([5]) * 5),
    "leaf data hashed without the 00 prefix": _inclusion_args(
        leaf_hash=hashlib.sha256(bytes([5]) * 5).digest()
    ),
    "swapped elements": _inclusion_args(proof=[PROOF5[1], PROOF5[0], *PROOF5[2:]]),
}


@pytest.mark.parametrize("case", INCLUSION_CASES, ids=list(INCLUSION_CASES))
def test_inclusion_rejects(case: str) -> None:
    with pytest.raises(VerificationError):
        verify_inclusion(**INCLUSION_CASES[case])


def test_single_leaf_tree_has_empty_proof() -> None:
    verify_inclusion(TREE.leaf(0), 0, 1, [], TREE.root(1))
    with pytest.raises(VerificationError):
        verify_inclusion(TREE.leaf(0), 0, 1, [TREE.leaf(1)], TREE.root(1))


# -- consistency: malformed and size semantics ---------------------------------------------

P5 = TREE.consistency_proof(5, 13)
R5, R13 = TREE.root(5), TREE.root(13)

CONSISTENCY_CASES = {
    "element too short": (5, 13, [P5[0][:31], *P5[1:]], R5, R13),
    "element too long": (5, 13, [P5[0] + b"\x00", *P5[1:]], R5, R13),
    "extra element": (5, 13, [*P5, P5[-1]], R5, R13),
    "missing element": (5, 13, P5[:-1], R5, R13),
    "empty proof": (5, 13, [], R5, R13),
    "size1 > size2": (13, 5, P5, R13, R5),
    "from size 0 with empty proof": (0, 13, [], EMPTY_ROOT, R13),
    "from size 0 with a proof": (0, 13, P5, EMPTY_ROOT, R13),
    "negative size1": (-5, 13, P5, R5, R13),
    "equal sizes, non-empty proof": (13, 13, [R13], R13, R13),
    "equal sizes, different roots": (13, 13, [], R13, R5),
    "wrong first root": (5, 13, P5, TREE.root(4), R13),
    "wrong second root": (5, 13, P5, R5, TREE.root(12)),
    "wrong size1": (6, 13, P5, R5, R13),
    "wrong size2": (5, 8, P5, R5, R13),
    "short root": (5, 13, P5, R5[:31], R13),
    "proof is one bytes string": (5, 13, b"".join(P5), R5, R13),
}


@pytest.mark.parametrize("case", CONSISTENCY_CASES, ids=list(CONSISTENCY_CASES))
def test_consistency_rejects(case: str) -> None:
    with pytest.raises(VerificationError):
        verify_consistency(*CONSISTENCY_CASES[case])


def test_equal_sizes_with_empty_proof_and_same_root_verify() -> None:
    # RFC 9162 §2.1.4.2 is written for first < second; a tree is trivially consistent with
    # itself (documented in fleetid.formats.merkle).
    verify_consistency(13, 13, [], R13, R13)


def test_power_of_two_first_size() -> None:
    # When size1 is a power of two its root is implied, not sent (RFC 9162 §2.1.4.2 step 2).
    proof = TREE.consistency_proof(4, 13)
    verify_consistency(4, 13, proof, TREE.root(4), R13)
    with pytest.raises(VerificationError):
        verify_consistency(4, 13, [TREE.root(4), *proof], TREE.root(4), R13)


# -- prover side --------------------------------------------------------------------------


def test_prover_refuses_impossible_requests() -> None:
    for call in (
        lambda: TREE.inclusion_proof(13, 13),
        lambda: TREE.inclusion_proof(0, 14),
        lambda: TREE.consistency_proof(0, 13),
        lambda: TREE.consistency_proof(14, 13),
        lambda: TREE.root(14),
        lambda: MerkleTree([b"short"]),
    ):
        with pytest.raises(ValueError):
            call()


def test_node_hash_is_ordered() -> None:
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert node_hash(a, b) != node_hash(b, a)


# -- separation: the verifier shares only the hash functions with the prover ---------------


def _fleetid_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fleetid"):
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("fleetid")}
    return found


def test_verifier_module_imports_nothing_from_the_prover() -> None:
    assert _fleetid_imports(Path(merkle_module.__file__)) == {"fleetid.errors.VerificationError"}


def test_prover_module_takes_only_hashing_from_the_verifier_module() -> None:
    import fleetid.formats.merkle_tree as prover

    assert _fleetid_imports(Path(prover.__file__)) == {
        "fleetid.formats.merkle.EMPTY_ROOT",
        "fleetid.formats.merkle.HASH_SIZE",
        "fleetid.formats.merkle.node_hash",
    }
