"""The preparation and discovery services of one fleet authority's data directory.

The preparation and discovery services' own keys (``ServiceIdentity``) are held where the CA's
keys are: in the CA's PKCS#11 token when it has one, else made in this process; each is
certified by the fleet CA on first use, as a server credential: the device checks the
services' signatures against its fleet trust anchors, as an SGP.22 LPA checks CERT.DPauth
against the CI. Credential packages are certified by the same CA.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.authority.attestation.base import VerificationPolicy
from fleetid.authority.discovery.service import DiscoveryService
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.lifecycle import LifecycleService
from fleetid.authority.preparation.service import (
    EventRegistrar,
    Order,
    PackageKind,
    PreparationService,
)
from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import Signer, SoftwareSigner
from fleetid.errors import NotConfiguredError, NotOnManifestError
from fleetid.formats.package_messages import discovery_reference
from fleetid.hsm import SoftwareHsm
from fleetid.policy import CredentialType
from fleetid.store.package_repository import PackageRecord, PackageRepository

__all__ = [
    "PackageServices",
    "ServiceIdentity",
    "issue_credential",
    "order_for_device",
    "order_for_devices",
    "package_services",
    "preparation_service",
]

PREPARATION_PATH = "/preparation"


@dataclass(frozen=True, kw_only=True)
class PackageServices:
    preparation: PreparationService
    discovery: DiscoveryService


class ServiceIdentity:
    """A service's signer, whose certificate (a server credential named ``name``) the CA issues
    on first use (then kept for the process).

    Where the key lives follows the CA's HSM (``fleetid.authority.ca_hsm``): on a PKCS#11 token
    it is made once in that token under ``label`` (not extractable; signatures are made there)
    and found there by every later process; with the CA's software HSM (the embedded default)
    it is a software key made in this process, as before."""

    def __init__(
        self,
        ca: FleetCa,
        name: str = "fleetid preparation service",
        label: str = "preparation-service-1",
    ) -> None:
        self._ca = ca
        self._name = name
        self._label = label
        self._lock = threading.Lock()
        self._made: tuple[Signer, tuple[x509.Certificate, ...]] | None = None

    def get(self) -> tuple[Signer, tuple[x509.Certificate, ...]]:
        with self._lock:
            if self._made is None:
                signer = self._signer()
                chain = issue_credential(self._ca, CredentialType.TLS_SERVER)(
                    signer.public_key(), self._name
                )
                self._made = (signer, tuple(chain))
            return self._made

    def _signer(self) -> Signer:
        hsm = self._ca.hsm
        if isinstance(hsm, SoftwareHsm):
            return SoftwareSigner(new_private_key())
        if self._label not in hsm.labels():
            hsm.generate_ec_key(self._label, "P-256")
        return hsm.signer(self._label)


def issue_credential(
    ca: FleetCa, credential_type: CredentialType = CredentialType.OPERATIONAL
) -> Callable[[ec.EllipticCurvePublicKey, str], list[x509.Certificate]]:
    """A ``CredentialIssuer`` over ``ca``: the certificate, then the CA chain."""

    def issue(public_key: ec.EllipticCurvePublicKey, reference: str) -> list[x509.Certificate]:
        with ca.store.transaction() as tx:
            certificate, _ = ca.issue(
                tx,
                public_key=public_key,
                credential_type=credential_type,
                common_name=reference,
                device_id=None,
            )
        return [certificate, *ca.chain()]

    return issue


def _policy_of(lifecycle: LifecycleService) -> Callable[[], VerificationPolicy]:
    def attestation_policy() -> VerificationPolicy:
        if lifecycle.attestation is None:
            raise NotConfiguredError("no manufacturer root is trusted here")
        return lifecycle.attestation.policy

    return attestation_policy


def preparation_service(
    ca: FleetCa, lifecycle: LifecycleService, discovery: EventRegistrar
) -> PreparationService:
    """The preparation service of ``ca`` at its public URL, registering events with
    ``discovery`` (its own, or another authority's: the authority-change flow); devices are
    checked against the manufacturer roots attested enrolment trusts."""
    return PreparationService(
        repository=PackageRepository(ca.store.engine),
        clock=ca.clock,
        identity=ServiceIdentity(ca).get,
        address=lambda: ca.settings.base_url + PREPARATION_PATH,
        attestation_policy=_policy_of(lifecycle),
        discovery=discovery,
        issuer=issue_credential(ca),
    )


def package_services(ca: FleetCa, lifecycle: LifecycleService) -> PackageServices:
    """Both services over the CA's database."""
    discovery = DiscoveryService(
        repository=PackageRepository(ca.store.engine),
        clock=ca.clock,
        attestation_policy=_policy_of(lifecycle),
        identity=ServiceIdentity(ca, "fleetid discovery service", "discovery-service-1").get,
    )
    return PackageServices(
        preparation=preparation_service(ca, lifecycle, discovery), discovery=discovery
    )


def order_for_device(
    ca: FleetCa,
    preparation: PreparationService,
    *,
    serial: str,
    kind: PackageKind,
    content: bytes = b"",
    reference: str | None = None,
    confirmation_code: str | None = None,
    lifetime: timedelta = timedelta(days=30),
) -> PackageRecord:
    """Order a package for the device the line manifest lists as ``serial``: the binding key is
    its attestation key as the manifest recorded it, the discovery reference a hash of the
    serial; the preparation service keeps neither the serial nor the key."""
    (order,) = _orders(ca, [serial], kind, content, reference, confirmation_code, lifetime)
    return preparation.order(order)


def order_for_devices(
    ca: FleetCa,
    preparation: PreparationService,
    *,
    serials: Sequence[str],
    kind: PackageKind,
    content: bytes = b"",
    lifetime: timedelta = timedelta(days=30),
) -> list[PackageRecord]:
    """``order_for_device`` for a cohort, as one batch (``PreparationService.order_batch``):
    every device must be on the manifest before anything is ordered."""
    orders = _orders(ca, serials, kind, content, None, None, lifetime)
    return preparation.order_batch(orders)


def _orders(
    ca: FleetCa,
    serials: Sequence[str],
    kind: PackageKind,
    content: bytes,
    reference: str | None,
    confirmation_code: str | None,
    lifetime: timedelta,
) -> list[Order]:
    """The orders for ``serials``, read from the manifest in one transaction."""
    with ca.store.transaction() as tx:
        entries = [(serial, tx.manifest.by_serial(serial)) for serial in serials]
    orders = []
    for serial, entry in entries:
        if entry is None or entry.attestation_public_key is None:
            raise NotOnManifestError(f"device {serial} is not on a manifest trusted here")
        orders.append(
            Order(
                reference=reference or f"{kind}-{serial}",
                kind=kind,
                binding_sha256=hashlib.sha256(entry.attestation_public_key).digest(),
                device_ref=discovery_reference(serial),
                content=content,
                confirmation_code=confirmation_code,
                lifetime=lifetime,
            )
        )
    return orders
