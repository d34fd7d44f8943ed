"""The prover side of an RFC 6962 Merkle tree: roots, inclusion and consistency proofs.

Proofs are built with the recursive definitions of RFC 6962 §2.1.1 (``PATH``) and §2.1.2
(``PROOF``/``SUBPROOF``), on purpose a different shape from the iterative RFC 9162 verifiers in
``fleetid.formats.merkle``; the two share only the hash functions.

``MerkleTree`` keeps every complete, aligned subtree hash (``levels[k][i]`` is the hash of leaves
``i*2^k .. (i+1)*2^k - 1``), so appending is amortised O(1) and ``MTH`` of any range the recursion
asks for costs O(log n): in RFC 6962's split, every left part is a complete subtree aligned on its
own size, so only the right edge is hashed afresh.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleetid.formats.merkle import EMPTY_ROOT, HASH_SIZE, node_hash

__all__ = ["MerkleTree"]


def _split(n: int) -> int:
    """The largest power of two smaller than ``n`` (RFC 6962 §2.1), for ``n > 1``."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only list of leaf hashes with the proofs RFC 6962 defines over its prefixes."""

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for leaf in leaf_hashes:
            self.append(leaf)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def append(self, leaf_hash: bytes) -> int:
        """Add a leaf hash (already ``leaf_hash(data)``); return its 0-based index."""
        if len(leaf_hash) != HASH_SIZE:
            raise ValueError(f"a leaf hash is {HASH_SIZE} bytes")
        index = self.size
        self._levels[0].append(bytes(leaf_hash))
        level = 0
        while len(self._levels[level]) % 2 == 0:
            row = self._levels[level]
            parent = node_hash(row[-2], row[-1])
            if level + 1 == len(self._levels):
                self._levels.append([])
            self._levels[level + 1].append(parent)
            level += 1
        return index

    def leaf(self, index: int) -> bytes:
        return self._levels[0][index]

    def root(self, size: int | None = None) -> bytes:
        """MTH of the first ``size`` leaves (default: all of them)."""
        size = self.size if size is None else size
        self._check_size(size)
        return EMPTY_ROOT if size == 0 else self._mth(0, size)

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """PATH(index, D[0:size]) of RFC 6962 §2.1.1, leaf level first."""
        size = self.size if size is None else size
        self._check_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is not in a tree of size {size}")
        return self._path(index, 0, size)

    def consistency_proof(self, size1: int, size2: int | None = None) -> list[bytes]:
        """PROOF(size1, D[0:size2]) of RFC 6962 §2.1.2, for 0 < size1 <= size2."""
        size2 = self.size if size2 is None else size2
        self._check_size(size2)
        if not 0 < size1 <= size2:
            raise ValueError(f"no consistency proof from size {size1} to size {size2}")
        return self._subproof(size1, 0, size2, True)

    def _check_size(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is outside 0..{self.size}")

    def _mth(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi]) for ``lo < hi``; uses a stored subtree hash when the range is one."""
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            level = n.bit_length() - 1
            return self._levels[level][lo >> level]
        k = _split(n)
        return node_hash(self._mth(lo, lo + k), self._mth(lo + k, hi))

    def _path(self, m: int, lo: int, hi: int) -> list[bytes]:
        # RFC 6962 §2.1.1: PATH(0, {d0}) = {}; otherwise recurse into the half holding leaf m and
        # append the MTH of the other half.
        n = hi - lo
        if n == 1:
            return []
        k = _split(n)
        if m < k:
            return [*self._path(m, lo, lo + k), self._mth(lo + k, hi)]
        return [*self._path(m - k, lo + k, hi), self._mth(lo, lo + k)]

    def _subproof(self, m: int, lo: int, hi: int, whole: bool) -> list[bytes]:
        # RFC 6962 §2.1.2: SUBPROOF(m, D[m], true) = {}, SUBPROOF(m, D[m], false) = {MTH(D[m])}.
        n = hi - lo
        if m == n:
            return [] if whole else [self._mth(lo, hi)]
        k = _split(n)
        if m <= k:
            return [*self._subproof(m, lo, lo + k, whole), self._mth(lo + k, hi)]
        return [*self._subproof(m - k, lo + k, hi, False), self._mth(lo, lo + k)]
