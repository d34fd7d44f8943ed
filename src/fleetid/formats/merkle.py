"""RFC 6962 / RFC 9162 Merkle tree hashing, and the verifiers for its proofs.

This module is the half a third party needs: the hash functions (RFC 9162 §2.1.1) and the two
verification algorithms, inclusion (§2.1.3.2) and consistency (§2.1.4.2), written iteratively as
the RFC gives them. It deliberately imports nothing from the prover (``merkle_tree``): the two
halves share only ``leaf_hash`` and ``node_hash``, so a bug in the way proofs are built cannot be
mirrored by the way they are checked.

Conventions: SHA-256 throughout; leaf indices are 0-based; proof elements are ordered from the
leaf level upwards (RFC 9162 §2.1.3.1).

Size semantics of ``verify_consistency`` (RFC 9162 §2.1.4.2 is stated for ``0 < first < second``):

* ``size1 > size2`` is rejected.
* ``size1 == 0`` is rejected. Every tree extends the empty tree, so a "proof" from size 0 proves
  nothing, and accepting one would let a caller believe it had checked something. (The Go
  reference, transparency-dev/merkle, accepts an empty proof here; we are stricter on purpose.)
* ``size1 == size2`` is accepted only with an empty proof and equal roots: a tree head is
  consistent with itself and there is nothing to prove (as transparency-dev/merkle and sigsum do).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from fleetid.errors import VerificationError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "leaf_hash",
    "node_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32

# RFC 9162 §2.1.1: the hash of an empty list is the hash of the empty string.
EMPTY_ROOT = hashlib.sha256(b"").digest()

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"


def leaf_hash(data: bytes) -> bytes:
    """MTH({d0}) = SHA-256(0x00 || d0) (RFC 9162 §2.1.1)."""
    return hashlib.sha256(_LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right) (RFC 9162 §2.1.1).

    The children are taken as given: the published hasher vector hashes the raw 4-byte strings
    ``N123`` and ``N456``. The verifiers below check that every hash they are handed is 32 bytes.
    """
    return hashlib.sha256(_NODE_PREFIX + bytes(left) + bytes(right)).digest()


def _check_hash(value: bytes, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise VerificationError(f"{what} is not bytes")
    value = bytes(value)
    if len(value) != HASH_SIZE:
        raise VerificationError(f"{what} is {len(value)} bytes, not {HASH_SIZE}")
    return value


def _check_size(value: int, what: str) -> int:
    # bool is an int in Python; a size given as True is a caller bug, not a tree of one leaf.
    if not isinstance(value, int) or isinstance(value, bool):
        raise VerificationError(f"{what} is not an integer")
    if value < 0:
        raise VerificationError(f"{what} is negative")
    return value


def _check_proof(proof: Sequence[bytes], what: str) -> list[bytes]:
    if isinstance(proof, bytes | bytearray | str):
        raise VerificationError(f"{what} must be a sequence of hashes, not a single string")
    return [_check_hash(element, f"{what} element {i}") for i, element in enumerate(proof)]


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that the leaf with hash ``leaf_hash`` is at ``index`` in the tree ``root`` of
    ``tree_size`` leaves; raise ``VerificationError`` otherwise (RFC 9162 §2.1.3.2).
    """
    leaf = _check_hash(leaf_hash, "leaf hash")
    expected_root = _check_hash(root, "root hash")
    index = _check_size(index, "leaf index")
    tree_size = _check_size(tree_size, "tree size")
    path = _check_proof(proof, "inclusion proof")
    # Step 1: the index must lie inside the tree.
    if index >= tree_size:
        raise VerificationError(f"leaf index {index} is not below tree size {tree_size}")
    # Step 2-3.
    fn, sn = index, tree_size - 1
    r = leaf
    # Step 4.
    for p in path:
        if sn == 0:  # 4a: more elements than the path from this leaf to the root has.
            raise VerificationError("inclusion proof has more elements than the tree is deep")
        if fn & 1 or fn == sn:  # 4b
            r = node_hash(p, r)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1  # 4c
        sn >>= 1
    # Step 5.
    if sn != 0:
        raise VerificationError("inclusion proof has fewer elements than the tree is deep")
    if r != expected_root:
        raise VerificationError("inclusion proof does not lead to the root hash")


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree ``root2`` of ``size2`` leaves extends the tree ``root1`` of ``size1``
    leaves; raise ``VerificationError`` otherwise (RFC 9162 §2.1.4.2; sizes: module docstring).
    """
    first_hash = _check_hash(root1, "first root hash")
    second_hash = _check_hash(root2, "second root hash")
    first = _check_size(size1, "first tree size")
    second = _check_size(size2, "second tree size")
    path = _check_proof(proof, "consistency proof")
    if first > second:
        raise VerificationError(f"first tree size {first} exceeds second tree size {second}")
    if first == 0:
        raise VerificationError("a consistency proof from the empty tree proves nothing")
    if first == second:
        if path:
            raise VerificationError("trees of equal size need an empty consistency proof")
        if first_hash != second_hash:
            raise VerificationError("trees of equal size have different root hashes")
        return
    # Step 1.
    if not path:
        raise VerificationError("consistency proof is empty")
    # Step 2: when the first tree is a complete subtree, its root is the path's starting point.
    if first & (first - 1) == 0:
        path = [first_hash, *path]
    # Step 3-4.
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    # Step 5.
    fr = sr = path[0]
    # Step 6.
    for c in path[1:]:
        if sn == 0:  # 6a
            raise VerificationError("consistency proof has more elements than needed")
        if fn & 1 or fn == sn:  # 6b
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while not (fn & 1 or fn == 0):
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1  # 6c
        sn >>= 1
    # Step 7.
    if sn != 0:
        raise VerificationError("consistency proof has fewer elements than needed")
    if fr != first_hash:
        raise VerificationError("consistency proof does not lead to the first root hash")
    if sr != second_hash:
        raise VerificationError("consistency proof does not lead to the second root hash")
