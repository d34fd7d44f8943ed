"""Elliptic-curve point arithmetic on public points, for butterfly expansion and ECQV.

pyca/cryptography (OpenSSL) computes ``s·G`` for a secret scalar in constant time but adds no
points. What butterfly key expansion (IEEE 1609.2.1 §9.3) and implicit certificates (SEC 4 §3)
also need is the sum of two public points and the product of a public point by a public scalar.
That arithmetic comes from two libraries, by curve: pycryptodome's ``EccPoint`` for the NIST
curves (the default path; about five times faster to add than the alternative here) and
fastecdsa for the Brainpool curves, which pycryptodome lacks. Secret scalars never reach either
library: ``s·G`` is always pyca's.

Keys go in and come out as pyca public keys; a result at infinity is refused, since no key can
be the point at infinity (SEC 1 §3.2.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

# Both names are the libraries' documented ones, re-exported without an __all__.
from Crypto.PublicKey.ECC import EccPoint  # type: ignore[attr-defined]
from cryptography.hazmat.primitives.asymmetric import ec
from fastecdsa import curve as fastecdsa_curve
from fastecdsa.point import Point as FastPoint  # type: ignore[attr-defined]

from fleetid.errors import EncodingError

__all__ = ["add", "add_base_multiple", "base_multiple", "group_order", "multiply_add"]


@dataclass(frozen=True, slots=True)
class _Curve:
    fastecdsa: Any  # fastecdsa's curve (its order n; its points where pycryptodome lacks the curve)
    pycryptodome: str | None  # EccPoint's name for the curve, where it has it

    @property
    def order(self) -> int:
        return int(self.fastecdsa.q)


_CURVES: Final = {
    "secp256r1": _Curve(fastecdsa_curve.P256, "p256"),
    "secp384r1": _Curve(fastecdsa_curve.P384, "p384"),
    "brainpoolP256r1": _Curve(fastecdsa_curve.brainpoolP256r1, None),
    "brainpoolP384r1": _Curve(fastecdsa_curve.brainpoolP384r1, None),
}


def _curve(curve: ec.EllipticCurve) -> _Curve:
    try:
        return _CURVES[curve.name]
    except KeyError:
        raise EncodingError(f"no point arithmetic for curve {curve.name}") from None


def group_order(curve: ec.EllipticCurve) -> int:
    """n, the order of the curve's base point."""
    return _curve(curve).order


def _point(key: ec.EllipticCurvePublicKey) -> Any:
    numbers = key.public_numbers()
    spec = _curve(key.curve)
    if spec.pycryptodome is not None:
        return EccPoint(numbers.x, numbers.y, spec.pycryptodome)
    return FastPoint(numbers.x, numbers.y, curve=spec.fastecdsa)


def _key(curve: ec.EllipticCurve, point: Any) -> ec.EllipticCurvePublicKey:
    at_infinity = (
        point.is_point_at_infinity() if _curve(curve).pycryptodome is not None else point.z == 0
    )
    if at_infinity:
        raise EncodingError("the result is the point at infinity")
    return ec.EllipticCurvePublicNumbers(int(point.x), int(point.y), curve).public_key()


def base_multiple(curve: ec.EllipticCurve, scalar: int) -> ec.EllipticCurvePublicKey:
    """s·G for a scalar that may be secret (pyca, constant time); 1 <= s mod n required."""
    s = scalar % group_order(curve)
    if s == 0:
        raise EncodingError("the scalar is 0 mod n")
    return ec.derive_private_key(s, curve).public_key()


def add(p: ec.EllipticCurvePublicKey, q: ec.EllipticCurvePublicKey) -> ec.EllipticCurvePublicKey:
    """P + Q for two public points of one curve."""
    if p.curve.name != q.curve.name:
        raise EncodingError(f"points on two curves: {p.curve.name}, {q.curve.name}")
    return _key(p.curve, _point(p) + _point(q))


def add_base_multiple(point: ec.EllipticCurvePublicKey, scalar: int) -> ec.EllipticCurvePublicKey:
    """P + s·G; s may be secret (its multiple is pyca's), P is public."""
    return add(point, base_multiple(point.curve, scalar))


def multiply_add(
    e: int, p: ec.EllipticCurvePublicKey, q: ec.EllipticCurvePublicKey
) -> ec.EllipticCurvePublicKey:
    """e·P + Q, for a public scalar e (SEC 4 §3.6 public key reconstruction: e·P_U + Q_CA)."""
    if p.curve.name != q.curve.name:
        raise EncodingError(f"points on two curves: {p.curve.name}, {q.curve.name}")
    product = _point(p) * (e % group_order(p.curve))
    return _key(p.curve, product + _point(q))
