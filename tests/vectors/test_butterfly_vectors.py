"""Published CAMP vectors for butterfly key expansion, implicit certificates and linkage values.

``bfkeyexp.txt`` (IEEE 1609.2.1 §9.3 expansion, NIST P-256), ``implicit.txt`` (SEC 4 ECQV with
SEC 4's own hash input, see PROVENANCE.md) and ``lv.txt`` (linkage values, IEEE 1609.2.1 §9.4),
from tests/vectors/data/v2x. Every value our functions compute is compared with the file's.
"""

from __future__ import annotations

import hashlib
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from tests.vector_loader import vector_path

from fleetid.crypto.butterfly import expand_private, expand_public, expansion_integer
from fleetid.crypto.ecqv import (
    hash_to_integer,
    private_key_reconstruction_value,
    reconstruct_private,
    reconstruct_public,
    reconstruction_point,
)
from fleetid.crypto.linkage import linkage_value, next_linkage_seed, pre_linkage_value

P256 = ec.SECP256R1()

# A value line starts with "0x" (or "[0x" for a Python-2 pair of coordinates); its label is the
# line before it.
_VALUE_LINE = re.compile(r"^\[?0x[0-9A-Fa-f]+")
_SAME_LINE = re.compile(r"^(\w+) = 0x([0-9A-Fa-f]+)\s*$", re.M)


def _values(text: str) -> list[tuple[str, str]]:
    lines = text.splitlines()
    return [
        (lines[n - 1].strip(), line.strip())
        for n, line in enumerate(lines)
        if n and _VALUE_LINE.match(line)
    ]


def _int(value: str) -> int:
    return int(value.split()[0].strip("[],L"), 16)


def _point(value: str) -> tuple[int, int]:
    x, y = (int(part.strip("[] L"), 16) for part in value.split(","))
    return x, y


def _public(x: int, y: int, curve: ec.EllipticCurve = P256) -> ec.EllipticCurvePublicKey:
    return ec.EllipticCurvePublicNumbers(x, y, curve).public_key()


def _xy(key: ec.EllipticCurvePublicKey) -> tuple[int, int]:
    numbers = key.public_numbers()
    return numbers.x, numbers.y


# --- butterfly expansion (bfkeyexp.txt) ------------------------------------------------------


def _butterfly() -> dict[str, dict[str, str]]:
    text = vector_path("v2x/bfkeyexp.txt").read_text()
    head, signing, encryption = re.split(r"^Expanding \w+ key pair.*$", text, flags=re.M)
    common = dict(_values(head))
    halves = {}
    for name, part in (("signing", signing), ("encryption", encryption)):
        values = _values(part)
        fields = {
            "key": next(v for label, v in values if label.startswith(("ck:", "ek:"))),
            "seed": next(v for label, v in values if re.match(r"^[ah]: ", label)),
            "seed_public": next(v for label, v in values if re.match(r"^[AH]: ", label)),
            "f": next(v for label, v in values if label.startswith("f_k(x) = f_k^{int}")),
            "private": next(v for label, v in values if "Expanded private key" in label),
            "public": next(v for label, v in values if "Expanded public key" in label),
        }
        halves[name] = fields
    i = _int(next(v for label, v in common.items() if label.startswith("i (32 bits)")))
    j = _int(next(v for label, v in common.items() if label.startswith("j (in range")))
    return {"indices": {"i": hex(i), "j": hex(j)}, **halves}


@pytest.mark.parametrize("half", ["signing", "encryption"])
def test_expansion_reproduces_the_camp_vector(half: str) -> None:
    vector = _butterfly()
    i, j = int(vector["indices"]["i"], 16), int(vector["indices"]["j"], 16)
    fields = vector[half]
    key = _int(fields["key"]).to_bytes(16, "big")
    encryption = half == "encryption"

    assert expansion_integer(key, i, j, encryption=encryption) == _int(fields["f"])
    private = expand_private(_int(fields["seed"]), key, i, j, encryption=encryption)
    assert private == _int(fields["private"])
    seed_public = _public(*_point(fields["seed_public"]))
    expanded = expand_public(seed_public, key, i, j, encryption=encryption)
    assert _xy(expanded) == _point(fields["public"])
    # And the pair is a key pair: pyca derives the same point from the expanded private key.
    assert _xy(ec.derive_private_key(private, P256).public_key()) == _xy(expanded)


def test_the_vector_indices_are_the_documented_ones() -> None:
    vector = _butterfly()
    assert (int(vector["indices"]["i"], 16), int(vector["indices"]["j"], 16)) == (0x217D79E1, 0x11)


def test_signing_and_encryption_inputs_give_other_keys() -> None:
    fields = _butterfly()["signing"]
    key = _int(fields["key"]).to_bytes(16, "big")
    assert expansion_integer(key, 0x217D79E1, 0x11, encryption=True) != _int(fields["f"])
    assert expansion_integer(key, 0x217D79E1, 0x12) != _int(fields["f"])
    assert expansion_integer(key, 0x217D79E2, 0x11) != _int(fields["f"])


# --- implicit certificates (implicit.txt, SEC 4's hash input) --------------------------------


def _implicit() -> list[dict[str, int]]:
    text = vector_path("v2x/implicit.txt").read_text()
    blocks = re.split(r"^Test Vector #\d+:", text, flags=re.M)[1:]
    return [{name: int(value, 16) for name, value in _SAME_LINE.findall(b)} for b in blocks]


@pytest.mark.parametrize("number", [1, 2])
def test_ecqv_reproduces_the_camp_vector(number: int) -> None:
    v = _implicit()[number - 1]
    request = _public(v["RUx"], v["RUy"])
    ca_public = _public(v["QCAx"], v["QCAy"])
    assert _xy(ec.derive_private_key(v["kU"], P256).public_key()) == _xy(request)

    reconstruction = reconstruction_point(request, v["k"])
    assert _xy(reconstruction) == (v["PUx"], v["PUy"])
    # The file's CertU is tbsCert ‖ compressed P_U, and e its SHA-256 reduced to 255 bits.
    tbs = v["tbsCert"].to_bytes(16, "big")
    compressed = bytes([2 + (v["PUy"] & 1)]) + v["PUx"].to_bytes(32, "big")
    certificate = tbs + compressed
    assert certificate == v["CertU"].to_bytes(49, "big")
    e = hash_to_integer(hashlib.sha256(certificate).digest(), P256)
    assert e == int.from_bytes(hashlib.sha256(certificate).digest(), "big") >> 1

    r = private_key_reconstruction_value(e, v["k"], v["dCA"], P256)
    assert r == v["r"]
    private = reconstruct_private(e, v["kU"], r, P256)
    assert private == v["dU"]
    public = reconstruct_public(e, reconstruction, ca_public)
    assert _xy(public) == (v["QUx"], v["QUy"])
    assert _xy(ec.derive_private_key(private, P256).public_key()) == _xy(public)


def test_ecqv_with_another_ca_key_reconstructs_a_key_that_does_not_match() -> None:
    v = _implicit()[0]
    request = _public(v["RUx"], v["RUy"])
    reconstruction = reconstruction_point(request, v["k"])
    e = hash_to_integer(hashlib.sha256(v["CertU"].to_bytes(49, "big")).digest(), P256)
    private = reconstruct_private(e, v["kU"], v["r"], P256)
    other_ca = ec.generate_private_key(P256).public_key()
    public = reconstruct_public(e, reconstruction, other_ca)
    assert _xy(ec.derive_private_key(private, P256).public_key()) != _xy(public)


# --- linkage values (lv.txt) -----------------------------------------------------------------


def _linkage() -> dict[str, bytes]:
    """ "<period>:<label>" -> value, the period being the last "i = N" line above the value."""
    text = vector_path("v2x/lv.txt").read_text()
    values: dict[str, bytes] = {}
    period = "-"
    lines = text.splitlines()
    for n, line in enumerate(lines):
        if match := re.match(r"^i = (\d+)$", line):
            period = match[1]
        elif n and _VALUE_LINE.match(line):
            values[f"{period}:{lines[n - 1].strip()}"] = bytes.fromhex(line.strip()[2:])
    return values


def _find(values: dict[str, bytes], period: str, prefix: str) -> bytes:
    matches = [v for k, v in values.items() if k.startswith(f"{period}:{prefix}")]
    assert len(matches) == 1, (period, prefix, [k for k in values if k.startswith(f"{period}:")])
    return matches[0]


def test_linkage_values_reproduce_the_camp_vector() -> None:
    values = _linkage()
    la1, la2 = bytes.fromhex("8E09"), bytes.fromhex("59CE")
    ls1 = _find(values, "0", "ls1(0) = AES key")
    ls2 = _find(values, "0", "ls2(0) = AES key")
    for period, j, lv in (("0", 8, "688ACF70E25EC01F32"), ("1", 6, "38479FDA0B161A5357")):
        if period == "1":
            ls1, ls2 = next_linkage_seed(ls1, la1), next_linkage_seed(ls2, la2)
            assert ls1 == _find(values, "1", "ls1(1) = AES key")
            assert ls2 == _find(values, "1", "ls2(1) = AES key")
        plv1, plv2 = pre_linkage_value(ls1, la1, j), pre_linkage_value(ls2, la2, j)
        assert plv1 == _find(values, period, f"plv1({period},j)")
        assert plv2 == _find(values, period, f"plv2({period},j)")
        assert linkage_value(plv1, plv2) == _find(values, period, f"lv({period},j) = plv1")
        assert linkage_value(plv1, plv2) == bytes.fromhex(lv)
