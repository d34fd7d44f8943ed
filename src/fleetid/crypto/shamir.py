"""Split custody of a key-encryption key: M-of-N Shamir shares that detect their own misuse.

The split itself is pycryptodome's ``Shamir`` over GF(2^128), which only takes 16-byte secrets and
whose docs warn that "reconstruction may succeed but still produce the incorrect secret if any of
the presented shares is incorrect". So a 256-bit KEK is split as two independent 128-bit halves
(same custodian index for both), and every share carries what is needed to refuse a bad combine:

* ``ceremony_id``, ``index``, ``threshold`` and ``total``, so a share from another ceremony or a
  mixed set is refused before any arithmetic;
* ``checksum``: SHA-256 over the share's canonical body, so a corrupted (mistyped, bit-rotted)
  share is refused on its own, before combining;
* ``kek_kcv`` (GlobalPlatform AES KCV, GPCS 2.3.1 §7.2.2 / Amd D §6.2.8: first three bytes of
  AES(K, 16×01)) for humans to compare against the transcript, and ``kek_check``, a full 16-byte
  AES-CMAC of the ceremony id under the KEK, so a wrong reconstruction is caught with 2^-128
  rather than 2^-24 odds;
* ``share_mac``: AES-CMAC under the KEK over the share's body, so once M good shares rebuild the
  KEK, every other presented share is authenticated too and a bad one is named.

Shares use pycryptodome's ``ssss=True`` polynomial, so each half is also accepted by the
independent ``ssss-combine -x -D`` tool (Debian ``ssss``): a custodian can cross-check without
trusting this code.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import secrets
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations, islice

from Crypto.Protocol.SecretSharing import Shamir
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.keywrap import aes_key_wrap_with_padding

from fleetid.errors import CeremonyError, EncodingError

__all__ = [
    "SHARE_FORMAT",
    "KekShare",
    "combine_kek",
    "kek_check",
    "kek_kcv",
    "new_kek",
    "split_kek",
    "wrap_under_kek",
]

SHARE_FORMAT = "fleetid-kek-share/1"

_HALF = 16
_CEREMONY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAX_SUBSETS = 1000
_MAX_SHARES = 255  # ssss and GF(2^8)-indexed tools cap custodian indices at 255


def new_kek(bits: int) -> bytes:
    """A fresh random KEK of 128 or 256 bits (from the OS CSPRNG)."""
    if bits not in (128, 256):
        raise CeremonyError(f"a KEK has 128 or 256 bits, not {bits}")
    return secrets.token_bytes(bits // 8)


def wrap_under_kek(kek: bytes, key: bytes) -> bytes:
    """RFC 5649 AES key wrap with padding of ``key`` under the KEK (what an HSM imports)."""
    _check_kek_length(kek)
    return aes_key_wrap_with_padding(kek, key)


def kek_kcv(kek: bytes) -> bytes:
    """The GlobalPlatform AES key check value: first 3 bytes of AES-ECB(kek, 16×0x01)."""
    _check_kek_length(kek)
    encryptor = Cipher(algorithms.AES(kek), modes.ECB()).encryptor()  # noqa: S305 - one block, KCV
    return (encryptor.update(b"\x01" * 16) + encryptor.finalize())[:3]


def kek_check(kek: bytes, ceremony_id: str) -> bytes:
    """A 16-byte check value binding the KEK to its ceremony: AES-CMAC(kek, label ‖ ceremony_id)."""
    return _cmac(kek, b"fleetid kek check v1\x00" + ceremony_id.encode())


@dataclass(frozen=True, kw_only=True)
class KekShare:
    """One custodian's share of a ceremony's KEK, as written to (and read from) their file."""

    ceremony_id: str
    custodian: str
    index: int
    threshold: int
    total: int
    kek_kcv: bytes
    kek_check: bytes
    halves: tuple[bytes, ...]
    share_mac: bytes

    @property
    def kek_bits(self) -> int:
        return 128 * len(self.halves)

    def body(self) -> bytes:
        """The canonical bytes the checksum and the share MAC cover."""
        fields = {
            "format": SHARE_FORMAT,
            "ceremony_id": self.ceremony_id,
            "custodian": self.custodian,
            "index": self.index,
            "threshold": self.threshold,
            "total": self.total,
            "kek_bits": self.kek_bits,
            "kek_kcv": self.kek_kcv.hex(),
            "kek_check": self.kek_check.hex(),
            "halves": [half.hex() for half in self.halves],
        }
        return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def checksum(self) -> bytes:
        return hashlib.sha256(self.body() + self.share_mac).digest()

    def to_text(self) -> str:
        """The custodian file: TOML, with the halves in ``ssss-combine -x -D`` form."""
        halves = ", ".join(_toml_str(f"{self.index}-{half.hex()}") for half in self.halves)
        lines = [
            f"# fleetid key-encryption-key share {self.index} of {self.total}.",
            f"# {self.threshold} of {self.total} shares activate the HSM. Keep this file offline,",
            "# sealed, and in your sole custody. It reveals nothing on its own.",
            f"format = {_toml_str(SHARE_FORMAT)}",
            f"ceremony_id = {_toml_str(self.ceremony_id)}",
            f"custodian = {_toml_str(self.custodian)}",
            f"index = {self.index}",
            f"threshold = {self.threshold}",
            f"total = {self.total}",
            f"kek_bits = {self.kek_bits}",
            f"kek_kcv = {_toml_str(self.kek_kcv.hex().upper())}",
            f"kek_check = {_toml_str(self.kek_check.hex())}",
            f"halves = [{halves}]",
            f"share_mac = {_toml_str(self.share_mac.hex())}",
            f"checksum = {_toml_str(self.checksum().hex())}",
        ]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str, *, source: str = "share") -> KekShare:
        """Parse a custodian file; raise ``CeremonyError`` if it is not an intact share."""
        try:
            doc = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise EncodingError(f"{source}: not a fleetid share file ({exc})") from exc
        try:
            if doc.get("format") != SHARE_FORMAT:
                raise CeremonyError(f"{source}: format is not {SHARE_FORMAT!r}")
            index = _int(doc, "index")
            halves = []
            for item in doc["halves"]:
                prefix, _, value = str(item).partition("-")
                if prefix != str(index):
                    raise CeremonyError(f"{source}: half {item!r} is not for index {index}")
                halves.append(bytes.fromhex(value))
            share = cls(
                ceremony_id=str(doc["ceremony_id"]),
                custodian=str(doc["custodian"]),
                index=index,
                threshold=_int(doc, "threshold"),
                total=_int(doc, "total"),
                kek_kcv=bytes.fromhex(str(doc["kek_kcv"])),
                kek_check=bytes.fromhex(str(doc["kek_check"])),
                halves=tuple(halves),
                share_mac=bytes.fromhex(str(doc["share_mac"])),
            )
            checksum = bytes.fromhex(str(doc["checksum"]))
            bits = _int(doc, "kek_bits")
        except (KeyError, TypeError, ValueError) as exc:
            raise CeremonyError(f"{source}: share file is incomplete or malformed ({exc})") from exc
        share._validate(source)
        if bits != share.kek_bits:
            raise CeremonyError(f"{source}: kek_bits {bits} does not match its halves")
        if not hmac.compare_digest(checksum, share.checksum()):
            raise CeremonyError(f"{source}: share {index} is corrupted (checksum mismatch)")
        return share

    def _validate(self, source: str) -> None:
        if not _CEREMONY_ID.match(self.ceremony_id):
            raise CeremonyError(f"{source}: bad ceremony id {self.ceremony_id!r}")
        if not 2 <= self.threshold <= self.total <= _MAX_SHARES:
            raise CeremonyError(f"{source}: impossible threshold {self.threshold}-of-{self.total}")
        if not 1 <= self.index <= self.total:
            raise CeremonyError(f"{source}: index {self.index} outside 1..{self.total}")
        if len(self.halves) not in (1, 2) or any(len(h) != _HALF for h in self.halves):
            raise CeremonyError(f"{source}: a share holds one or two 16-byte halves")
        if len(self.kek_kcv) != 3 or len(self.kek_check) != 16 or len(self.share_mac) != 16:
            raise CeremonyError(f"{source}: check values have the wrong length")


def split_kek(
    kek: bytes, *, ceremony_id: str, threshold: int, custodians: Sequence[str]
) -> list[KekShare]:
    """Split ``kek`` (16 or 32 bytes) ``threshold``-of-``len(custodians)``, one share each."""
    _check_kek_length(kek)
    total = len(custodians)
    if not _CEREMONY_ID.match(ceremony_id):
        raise CeremonyError(f"ceremony id {ceremony_id!r} must match {_CEREMONY_ID.pattern}")
    if not 2 <= threshold <= total <= _MAX_SHARES:
        raise CeremonyError(
            f"a {threshold}-of-{total} split is not allowed: need 2 <= M <= N <= {_MAX_SHARES}"
        )
    if len(set(custodians)) != total:
        raise CeremonyError("custodian names must be distinct")
    per_half = [
        Shamir.split(threshold, total, kek[i : i + _HALF], ssss=True)
        for i in range(0, len(kek), _HALF)
    ]
    kcv, check = kek_kcv(kek), kek_check(kek, ceremony_id)
    shares = []
    for position, custodian in enumerate(custodians):
        index = position + 1
        halves = []
        for split in per_half:
            split_index, value = split[position]
            assert split_index == index  # noqa: S101 - pycryptodome numbers shares from 1
            halves.append(bytes(value))
        unsigned = KekShare(
            ceremony_id=ceremony_id,
            custodian=custodian,
            index=index,
            threshold=threshold,
            total=total,
            kek_kcv=kcv,
            kek_check=check,
            halves=tuple(halves),
            share_mac=b"\x00" * 16,
        )
        shares.append(_with_mac(unsigned, kek))
    return shares


def combine_kek(
    shares: Sequence[KekShare],
    *,
    ceremony_id: str | None = None,
    expected_kcv: bytes | None = None,
) -> bytes:
    """Rebuild the KEK from at least M shares, or raise ``CeremonyError`` saying what is wrong.

    Every presented share must belong to the same ceremony (and to ``ceremony_id`` when given),
    carry a distinct index, and authenticate under the rebuilt KEK; the KEK must match the
    ceremony's check values (and ``expected_kcv`` from the transcript when given).
    """
    if not shares:
        raise CeremonyError("no shares presented")
    first = shares[0]
    expected_id = ceremony_id if ceremony_id is not None else first.ceremony_id
    for share in shares:
        if share.ceremony_id != expected_id:
            raise CeremonyError(
                f"share {share.index} ({share.custodian}) belongs to ceremony "
                f"{share.ceremony_id!r}, not {expected_id!r}"
            )
        same_split = (share.threshold, share.total, share.kek_bits, share.kek_kcv, share.kek_check)
        if same_split != (
            first.threshold,
            first.total,
            first.kek_bits,
            first.kek_kcv,
            first.kek_check,
        ):
            raise CeremonyError(
                f"share {share.index} ({share.custodian}) does not describe the same split "
                f"as share {first.index}"
            )
    if expected_kcv is not None and not hmac.compare_digest(expected_kcv, first.kek_kcv):
        raise CeremonyError(
            f"the shares carry KCV {first.kek_kcv.hex().upper()}, the ceremony recorded "
            f"{expected_kcv.hex().upper()}"
        )
    indices = [share.index for share in shares]
    if len(set(indices)) != len(indices):
        raise CeremonyError(f"a share index was presented twice: {sorted(indices)}")
    if len(shares) < first.threshold:
        raise CeremonyError(
            f"{len(shares)} share(s) presented; ceremony {expected_id!r} needs "
            f"{first.threshold} of {first.total}"
        )
    kek = _first_consistent_combination(shares, expected_id)
    if kek is None:
        raise CeremonyError(
            f"the shares do not rebuild the KEK of ceremony {expected_id!r} (check value "
            "mismatch): at least one share is wrong"
        )
    bad = [s for s in shares if not hmac.compare_digest(s.share_mac, _with_mac(s, kek).share_mac)]
    if bad:
        names = ", ".join(f"{s.index} ({s.custodian})" for s in bad)
        raise CeremonyError(f"share(s) {names} do not authenticate under the ceremony's KEK")
    return kek


def _first_consistent_combination(shares: Sequence[KekShare], ceremony_id: str) -> bytes | None:
    threshold, check = shares[0].threshold, shares[0].kek_check
    # Bounded: with a handful of custodians this tries every M-subset to get past one bad share.
    for subset in islice(combinations(shares, threshold), _MAX_SUBSETS):
        halves = [
            Shamir.combine([(s.index, s.halves[h]) for s in subset], ssss=True)
            for h in range(len(shares[0].halves))
        ]
        candidate = b"".join(halves)
        if hmac.compare_digest(kek_check(candidate, ceremony_id), check):
            return candidate
    return None


def _with_mac(share: KekShare, kek: bytes) -> KekShare:
    mac = _cmac(kek, b"fleetid kek share v1\x00" + share.body())
    return dataclasses.replace(share, share_mac=mac)


def _cmac(key: bytes, data: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(data)
    return mac.finalize()


def _check_kek_length(kek: bytes) -> None:
    if len(kek) not in (16, 32):
        raise CeremonyError(f"a KEK is 16 or 32 bytes, not {len(kek)}")


def _int(doc: dict[str, object], name: str) -> int:
    value = doc[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer")
    return value


def _toml_str(value: str) -> str:
    # A JSON string without non-ASCII escapes is a valid TOML basic string (TOML 1.0 §String).
    return json.dumps(value, ensure_ascii=False)
