"""CA rollover: the next issuing-CA generation, or a new root with its link certificates.

``roll_issuing_ca`` makes the next issuing-CA generation under the same root. ``roll_root`` makes
a new root and the RFC 4210 §4.4 root-key-update certificates: NewWithOld (the new root's key and
name, signed by the old root: the link a device follows) and OldWithNew; both are served by
``cacerts`` next to the chain (RFC 7030 §4.1.3), and kept as PEM in ``<data-dir>/ca/links``. The
next issuing CA is signed by the new root. Every certificate is the one CA profile's
(``fleetid.formats.ca_profile``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fleetid.authority.ca_init import (
    CA_DIR,
    ca_key_row,
    ca_name,
    certificate_ec_key,
    fleet_ca_profile,
    organization_of,
)
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.urls import root_crl_point
from fleetid.crypto.signer import Signer
from fleetid.store.repositories import Repositories
from fleetid.store.schema import CaRole

__all__ = ["LINKS_DIR", "RootRollover", "link_certificates", "roll_issuing_ca", "roll_root"]

LINKS_DIR: Final = "links"


@dataclass(frozen=True, kw_only=True)
class RootRollover:
    """The certificates of one root rollover (RFC 4210 §4.4)."""

    new_root: x509.Certificate  # NewWithNew, self-signed
    new_with_old: x509.Certificate  # the new root's key and name, signed by the old root
    old_with_new: x509.Certificate  # the old root's key and name, signed by the new root
    issuing: x509.Certificate  # the next issuing CA, under the new root


def _links_dir(ca: FleetCa) -> Path:
    return ca.settings.data_dir / CA_DIR / LINKS_DIR


def link_certificates(ca: FleetCa) -> list[x509.Certificate]:
    """Every root-key-update certificate this authority has published, oldest first."""
    directory = _links_dir(ca)
    out: list[x509.Certificate] = []
    for path in sorted(directory.glob("*.pem")) if directory.is_dir() else []:
        out.extend(x509.load_pem_x509_certificates(path.read_bytes()))
    return out


def _record(
    ca: FleetCa, tx: Repositories, role: CaRole, generation: int, label: str, cert: x509.Certificate
) -> None:
    row = ca_key_row(
        role=role, generation=generation, label=label, certificate=cert, now=ca.clock.now()
    )
    tx.ca_keys.add(row)


def _next_generation(tx: Repositories, role: CaRole) -> int:
    return max((k.generation for k in tx.ca_keys.all() if k.role == role), default=0) + 1


def _issue_issuing_ca(
    ca: FleetCa, tx: Repositories, root: x509.Certificate, root_signer: Signer
) -> x509.Certificate:
    generation = _next_generation(tx, CaRole.ISSUING)
    label = f"fleet-issuing-{generation}"
    root_generation = max(k.generation for k in tx.ca_keys.all() if k.role == CaRole.ROOT)
    issuing = fleet_ca_profile(
        ca.settings.policy,
        ca.clock.now(),
        subject=ca_name(organization_of(ca.root), CaRole.ISSUING, generation),
        public_key=ca.hsm.generate_ec_key(label, "P-256"),
        issuer=root,
        path_length=0,
        lifetime=ca.settings.policy.issuing_lifetime,
        crl=root_crl_point(ca.settings, root_generation),
    ).issue(root_signer)
    _record(ca, tx, CaRole.ISSUING, generation, label, issuing)
    return issuing


def _reopen(ca: FleetCa) -> FleetCa:
    return FleetCa(settings=ca.settings, store=ca.store, hsm=ca.hsm, clock=ca.clock)


def _active_root(ca: FleetCa) -> str:
    with ca.store.transaction() as tx:
        return tx.ca_keys.active(CaRole.ROOT).hsm_label


def roll_issuing_ca(ca: FleetCa) -> FleetCa:
    """A new issuing-CA generation under the current root; the returned CA issues with it.

    Devices need no new anchor: the new issuing CA chains to the root they hold. Credentials from
    the old generation stay valid until they expire or are refreshed.
    """
    root_label = _active_root(ca)
    with ca.store.transaction() as tx:
        _issue_issuing_ca(ca, tx, ca.root, ca.hsm.signer(root_label))
    return _reopen(ca)


def roll_root(ca: FleetCa) -> tuple[FleetCa, RootRollover]:
    """A new root, its link certificates, and an issuing CA under it (RFC 4210 §4.4).

    The new root allows two CA certificates below it (pathLenConstraint 2) so that OldWithNew can
    carry old credentials to a device that holds only the new root.
    """
    old_root = ca.root
    old_signer = ca.hsm.signer(_active_root(ca))
    with ca.store.transaction() as tx:
        generation = _next_generation(tx, CaRole.ROOT)
        label = f"fleet-root-{generation}"
        public_key = ca.hsm.generate_ec_key(label, "P-384")
        new_signer = ca.hsm.signer(label)
        name = ca_name(organization_of(old_root), CaRole.ROOT, generation)
        policy, now = ca.settings.policy, ca.clock.now()
        # NewWithNew and NewWithOld: the same key, name and constraints, under each root.
        new_root, new_with_old = (
            fleet_ca_profile(
                policy,
                now,
                subject=name,
                public_key=public_key,
                issuer=issuer,
                path_length=2,
                lifetime=policy.root_lifetime,
            ).issue(signer)
            for issuer, signer in ((None, new_signer), (old_root, old_signer))
        )
        old_with_new = fleet_ca_profile(
            policy,
            now,
            subject=old_root.subject,
            public_key=certificate_ec_key(old_root),
            issuer=new_root,
            path_length=_path_length(old_root),
            lifetime=old_root.not_valid_after_utc - now,
        ).issue(new_signer)
        _record(ca, tx, CaRole.ROOT, generation, label, new_root)
        issuing = _issue_issuing_ca(ca, tx, new_root, new_signer)
    directory = _links_dir(ca)
    directory.mkdir(parents=True, exist_ok=True)
    for kind, cert in (("new-with-old", new_with_old), ("old-with-new", old_with_new)):
        (directory / f"root-{generation:03d}-{kind}.pem").write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
        )
    rollover = RootRollover(
        new_root=new_root, new_with_old=new_with_old, old_with_new=old_with_new, issuing=issuing
    )
    return _reopen(ca), rollover


def _path_length(certificate: x509.Certificate) -> int | None:
    return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
