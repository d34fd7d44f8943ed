"""Software EC keys and key agreement, for what holds its keys in this process.

Simulated devices, demos and throwaway peers make their keys here; a device's real keys live in
its secure element and an authority's in its HSM, behind the ``Signer`` interface.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec

__all__ = ["ecdh_shared_secret", "new_private_key", "private_key_from_scalar"]


def new_private_key(curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    """A fresh private key on ``curve`` (P-256 unless named), from the OS's CSPRNG."""
    return ec.generate_private_key(curve or ec.SECP256R1())


def private_key_from_scalar(value: int, curve: ec.EllipticCurve) -> ec.EllipticCurvePrivateKey:
    """The key whose private scalar is ``value`` (SEC 1 v2 §3.2.1): what an attacker rebuilds
    from a scalar found in a memory or flash dump (``fleetid.sim.threats``). Raises
    ``ValueError`` for a scalar outside [1, n-1]."""
    return ec.derive_private_key(value, curve)


def ecdh_shared_secret(
    private_key: ec.EllipticCurvePrivateKey, peer: ec.EllipticCurvePublicKey
) -> bytes:
    """The ECDH shared secret: the x-coordinate of d·Q (SEC 1 v2 §3.3.1), not yet derived."""
    return private_key.exchange(ec.ECDH(), peer)
