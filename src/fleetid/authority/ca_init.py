"""Making a fleet CA (``fleetid ca init``): names, keys in a new HSM, the first certificates.

``create_fleet_ca`` makes, in the HSM the settings name (``fleetid.authority.ca_hsm``: the
software HSM in ``<data-dir>/ca/hsm`` by default, or a PKCS#11 token with ``FLEETID_HSM=pkcs11``),
a P-384 root key and a P-256 issuing key; the root self-signs, then signs the issuing CA (both
through the one CA profile, ``fleetid.formats.ca_profile``); both certificates go into the
``ca_keys`` table as generation 1.

It checks the organisation name first (X.520 upper bounds, ``ca_name``), then builds the ``ca``
directory under a temporary name beside it and renames it into place just before the one
transaction that records both certificates; any failure removes what it made, so an init either
makes a whole CA or leaves nothing behind (keys a PKCS#11 token generated before the failure stay
on the token, unreferenced).

Activation of the software HSM: init writes its key-encryption key to
``<data-dir>/ca/activation.key`` (mode 0600, ``fleetid.private_file``) and ``FleetCa.open`` reads
it. That file is the emulated HSM's "activated" state, as in ``fleetid.factory.ceremony``; an
operator with a hardware HSM keeps the KEK under split custody instead.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetid.authority import ca_audit
from fleetid.authority.ca_hsm import create_ca_hsm, open_ca_hsm
from fleetid.authority.urls import root_crl_point
from fleetid.clock import Clock
from fleetid.config import Settings
from fleetid.errors import ConfigError, NotFoundError
from fleetid.factory.auditlog import VKEY_FILENAME
from fleetid.formats.ca_profile import CaProfile
from fleetid.formats.x509_sign import key_usage
from fleetid.hsm import Hsm
from fleetid.policy import Policy
from fleetid.private_file import write_private_file
from fleetid.store.engine import engine_from_settings
from fleetid.store.repositories import NewCaKey, Store
from fleetid.store.schema import SERIAL_HEX_LENGTH, CaRole

__all__ = [
    "ACTIVATION_FILE",
    "CA_DIR",
    "CA_KEY_USAGE",
    "ORGANIZATION_NAME_MAX",
    "ca_key_row",
    "ca_name",
    "certificate_ec_key",
    "check_organization_name",
    "create_fleet_ca",
    "fleet_ca_profile",
    "new_serial",
    "organization_of",
    "serial_hex",
]

# RFC 5280 §4.2.1.3: a fleet CA signs certificates and CRLs (keyCertSign, cRLSign), and
# digitalSignature lets it sign OCSP responses (end entities: fleetid.authority.end_entity).
CA_KEY_USAGE = key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True)

CA_DIR: Final = "ca"
ACTIVATION_FILE: Final = "activation.key"
_ROOT_CURVE: Final = "P-384"
_ISSUING_CURVE: Final = "P-256"

# X.520 upper bounds (RFC 5280 Appendix A): ub-organization-name and ub-common-name are 64,
# counted as pyca counts them, in UTF-8 bytes. The CA common names append a role and generation
# to the organisation, so the organisation leaves room for the longest of them.
_UB_NAME: Final = 64
_ROLE_TITLES: Final = {CaRole.ROOT: "Fleet Root", CaRole.ISSUING: "Fleet Issuing CA"}
_LONGEST_SUFFIX: Final = " Fleet Issuing CA G999"
ORGANIZATION_NAME_MAX: Final = _UB_NAME - len(_LONGEST_SUFFIX.encode())


def check_organization_name(name: str) -> None:
    """Refuse an organisation name the CA subjects cannot carry (``fleetid ca init --name``)."""
    if not name.strip():
        raise ConfigError("the CA's organisation name (--name) is empty")
    if name != name.strip() or not name.isprintable():
        raise ConfigError(
            "the CA's organisation name (--name) has leading or trailing spaces or control "
            "characters"
        )
    size = len(name.encode("utf-8"))
    if size > ORGANIZATION_NAME_MAX:
        raise ConfigError(
            f"the CA's organisation name (--name) is at most {ORGANIZATION_NAME_MAX} bytes in "
            f"UTF-8, not {size}: the CA common names append up to '{_LONGEST_SUFFIX}' within "
            f"X.520's {_UB_NAME}"
        )


def ca_name(organization: str, role: CaRole, generation: int) -> x509.Name:
    """The subject of a fleet CA certificate: O=organisation, CN=organisation role G<n>."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(
                NameOID.COMMON_NAME, f"{organization} {_ROLE_TITLES[role]} G{generation}"
            ),
        ]
    )


def organization_of(root: x509.Certificate) -> str:
    """The organisation a fleet root names (the one ``ca init`` was given)."""
    values = root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(values[0].value) if values else "fleetid"


def new_serial() -> int:
    """20 random octets, top bit cleared: positive and at most 20 octets (RFC 5280 §4.1.2.2)."""
    while True:
        value = int.from_bytes(secrets.token_bytes(SERIAL_HEX_LENGTH // 2), "big") >> 1
        if value:
            return value


def serial_hex(value: int) -> str:
    """A serial number as the store keys it: fixed-width lower-case hex."""
    return f"{value:0{SERIAL_HEX_LENGTH}x}"


def certificate_ec_key(certificate: x509.Certificate) -> ec.EllipticCurvePublicKey:
    """The key of a certificate this authority issued (a CA or a credential); the fleet issues
    for EC keys only (``ConfigError`` otherwise)."""
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError("fleet CA keys are EC keys")  # and so are its credentials' keys
    return key


def ca_key_row(
    *, role: CaRole, generation: int, label: str, certificate: x509.Certificate, now: datetime
) -> NewCaKey:
    """The ``ca_keys`` row that makes ``certificate`` (key ``label`` in the HSM) the active CA of
    its role and generation."""
    return NewCaKey(
        role=role,
        generation=generation,
        hsm_label=label,
        subject=certificate.subject.rfc4514_string(),
        subject_key_id=x509.SubjectKeyIdentifier.from_public_key(
            certificate_ec_key(certificate)
        ).digest,
        not_before=certificate.not_valid_before_utc,
        not_after=certificate.not_valid_after_utc,
        active=True,
        certificate=certificate.public_bytes(serialization.Encoding.DER),
        created_at=now,
    )


def fleet_ca_profile(
    policy: Policy,
    now: datetime,
    *,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate | None,
    path_length: int | None,
    lifetime: timedelta,
    crl: x509.CRLDistributionPoints | None = None,
) -> CaProfile:
    """A fleet CA certificate under ``issuer`` (self-signed when ``None``, with no authority key
    identifier), valid from ``now`` less the policy's backdating for ``lifetime``, but never
    beyond the policy's root lifetime nor beyond its issuer: a CA certificate that outlives the
    certificate above it would outlive every path through it (RFC 5280 §6.1.3 (a)(2))."""
    not_after = min(now + lifetime, now + policy.root_lifetime)
    if issuer is not None:
        not_after = min(not_after, issuer.not_valid_after_utc)
    return CaProfile(
        subject=subject,
        issuer=subject if issuer is None else issuer.subject,
        public_key=public_key,
        serial_number=new_serial(),
        not_before=now - policy.backdate,
        not_after=not_after,
        path_length=path_length,
        key_usage=CA_KEY_USAGE,
        authority_key=None if issuer is None else certificate_ec_key(issuer),
        crl_distribution_points=crl,
    )


def _make_ca_keys(
    settings: Settings,
    ca_dir: Path,
    kek: bytes,
    *,
    clock: Clock,
    name: str,
    root_crl: x509.CRLDistributionPoints | None,
) -> list[NewCaKey]:
    """In ``ca_dir``: a new HSM holding the root and issuing keys, its activation file, and the
    two certificates (the issuing CA naming ``root_crl``, when a public URL is set), returned as
    the rows that make them the CA's generation 1, the root first."""
    hsm = create_ca_hsm(settings, ca_dir, kek)
    try:
        write_private_file(ca_dir / ACTIVATION_FILE, kek.hex().encode())
        now = clock.now()
        policy = settings.policy
        root_label, issuing_label = "fleet-root-1", "fleet-issuing-1"
        root_public = hsm.generate_ec_key(root_label, _ROOT_CURVE)
        root_signer = hsm.signer(root_label)
        root = fleet_ca_profile(
            policy,
            now,
            subject=ca_name(name, CaRole.ROOT, 1),
            public_key=root_public,
            issuer=None,
            path_length=1,
            lifetime=policy.root_lifetime,
        ).issue(root_signer)
        issuing = fleet_ca_profile(
            policy,
            now,
            subject=ca_name(name, CaRole.ISSUING, 1),
            public_key=hsm.generate_ec_key(issuing_label, _ISSUING_CURVE),
            issuer=root,
            path_length=0,
            lifetime=policy.issuing_lifetime,
            crl=root_crl,
        ).issue(root_signer)
    finally:
        hsm.close()
    return [
        ca_key_row(role=CaRole.ROOT, generation=1, label=root_label, certificate=root, now=now),
        ca_key_row(
            role=CaRole.ISSUING, generation=1, label=issuing_label, certificate=issuing, now=now
        ),
    ]


def create_fleet_ca(settings: Settings, *, clock: Clock, name: str) -> tuple[Store, Hsm]:
    """Create the HSM, the root and the issuing CA; refuse if this data dir has a CA. All or
    nothing: a failure leaves no ``ca`` directory, rows or new data directory. Returns the store
    and the activated HSM of the new CA."""
    check_organization_name(name)
    root_crl = root_crl_point(settings, 1)  # refuses a loopback URL before anything is made
    ca_dir = settings.data_dir / CA_DIR
    if (ca_dir / ACTIVATION_FILE).exists():
        raise ConfigError(f"{ca_dir} holds a fleet CA already")
    if ca_dir.exists():
        raise ConfigError(f"{ca_dir} exists but holds no fleet CA; move it away first")
    new_data_dir = not settings.data_dir.exists()
    vkey = settings.data_dir / VKEY_FILENAME  # the audit log's, written on its first open
    new_vkey = not vkey.exists()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store: Store | None = None
    staging: Path | None = None
    hsm: Hsm | None = None
    try:
        store = Store(engine_from_settings(settings))
        with store.transaction() as tx:
            try:
                tx.ca_keys.active(CaRole.ROOT)
            except NotFoundError:
                pass
            else:
                raise ConfigError("the database holds a fleet root already")
        staging = Path(tempfile.mkdtemp(prefix=f".{CA_DIR}-init-", dir=settings.data_dir))
        kek = secrets.token_bytes(32)
        keys = _make_ca_keys(settings, staging, kek, clock=clock, name=name, root_crl=root_crl)
        os.rename(staging, ca_dir)  # atomic; the rows below make the CA usable
        staging = ca_dir
        hsm = open_ca_hsm(settings, ca_dir, kek)
        root = x509.load_der_x509_certificate(keys[0].certificate)
        ca_audit.install(settings, store, hsm, clock, root)  # the CA keys are its first entries
        with store.transaction() as tx:
            for key in keys:
                tx.ca_keys.add(key)
    except BaseException:
        if hsm is not None:
            hsm.close()
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if store is not None:
            store.dispose()
        if new_vkey:
            vkey.unlink(missing_ok=True)
        if new_data_dir:
            shutil.rmtree(settings.data_dir, ignore_errors=True)
        raise
    return store, hsm
