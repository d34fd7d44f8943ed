"""The fleet CA: a fleet root and an issuing CA whose keys live in the HSM, and issuance under them.

``FleetCa.init`` (``fleetid ca init``) creates, in the HSM the settings name
(``fleetid.authority.ca_hsm``: the software HSM in ``<data-dir>/ca/hsm`` by default, or a PKCS#11
token with ``FLEETID_HSM=pkcs11``), a P-384 root key and a P-256 issuing key; the root
self-signs, then signs the issuing CA; both certificates go into the ``ca_keys`` table as
generation 1. Certificates are signed by reference through ``fleetid.formats.x509_sign``, so no CA
private key is ever in this module.

``init`` checks the organisation name first (X.520 upper bounds, ``ca_name``), then builds the
``ca`` directory under a temporary name beside it and renames it into place just before the one
transaction that records both certificates; any failure removes what it made, so an init either
makes a whole CA or leaves nothing behind (keys a PKCS#11 token generated before the failure stay
on the token, unreferenced).

Activation of the software HSM: ``init`` writes its key-encryption key to
``<data-dir>/ca/activation.key`` (mode 0600) and ``open`` reads it. That file is the emulated
HSM's "activated" state, as in ``fleetid.factory.ceremony``; an operator with a hardware HSM keeps
the KEK under split custody instead.

End-entity certificates (RFC 5280 §4.2) carry an authorityInfoAccess OCSP URL (§4.2.2.1) and a
cRLDistributionPoints URL (§4.2.1.13) on the server that issued them
(``Settings.certificate_base_url``, never a loopback address outside tests): ``OCSP_PATH`` and
``crl_path(generation, crl_shard(serial))``, one CRL partition per shard
(``fleetid.revocation.crl`` serves them). An issuing CA made with a public URL configured names
its root's CRL (``root_crl_path``), so that the whole chain can be checked.

The TLS server certificate of ``fleetid serve`` comes from this PKI too. Its key is a software
key in ``<data-dir>/ca/tls`` (mode 0600): TLS stacks (``ssl``, uvicorn) need the key in process.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetid.authority import ca_audit
from fleetid.authority.ca_hsm import create_ca_hsm, open_ca_hsm
from fleetid.authority.csr import public_key_sha256
from fleetid.authority.end_entity import EndEntity, EndEntityIssuer
from fleetid.clock import Clock
from fleetid.config import Settings, check_public_url
from fleetid.crypto.signer import Signer
from fleetid.errors import ConfigError, HsmError, NotFoundError, PolicyError
from fleetid.factory.auditlog import VKEY_FILENAME
from fleetid.formats.x509_sign import key_usage, sign_certificate
from fleetid.hsm import Hsm
from fleetid.policy import CredentialType
from fleetid.store.engine import engine_from_settings
from fleetid.store.repositories import (
    CaKeyRecord,
    CertificateRecord,
    NewCaKey,
    NewCertificate,
    Repositories,
    Store,
)
from fleetid.store.schema import SERIAL_HEX_LENGTH, CaRole

__all__ = [
    "ACTIVATION_FILE",
    "CA_DIR",
    "CA_KEY_USAGE",
    "CRL_SHARDS",
    "OCSP_PATH",
    "FleetCa",
    "IssuingCa",
    "ca_name",
    "check_organization_name",
    "crl_path",
    "crl_shard",
    "delta_crl_path",
    "new_serial",
    "root_crl_path",
    "root_crl_point",
]

# RFC 5280 §4.2.1.3: a fleet CA signs certificates and CRLs (keyCertSign, cRLSign), and
# digitalSignature lets it sign OCSP responses (end entities: fleetid.authority.end_entity).
CA_KEY_USAGE = key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True)

CA_DIR: Final = "ca"
ACTIVATION_FILE: Final = "activation.key"
_TLS_DIR: Final = "tls"
OCSP_PATH: Final = "/ocsp"
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


# CRL partitions per issuing-CA generation (the Let's Encrypt model): a certificate's shard is
# fixed by its serial and written into its CRL distribution point, so no CRL grows without bound.
CRL_SHARDS: Final = 16


def crl_shard(serial_number: int) -> int:
    """The CRL partition of a certificate: its serial number modulo ``CRL_SHARDS``."""
    return serial_number % CRL_SHARDS


def crl_path(generation: int, shard: int) -> str:
    """Shard ``shard``'s full CRL of issuing-CA generation ``generation`` (relative to base URL)."""
    return f"/crl/issuing-{generation}/{shard}.crl"


def delta_crl_path(generation: int, shard: int) -> str:
    """The shard's delta CRL (RFC 5280 §5.2.4), named by its full CRL's freshestCRL (§5.2.6)."""
    return f"/crl/issuing-{generation}/{shard}-delta.crl"


def root_crl_path(generation: int) -> str:
    """The CRL root generation ``generation`` signs over the issuing CAs it certified."""
    return f"/crl/root-{generation}.crl"


def root_crl_point(settings: Settings, root_generation: int) -> x509.CRLDistributionPoints | None:
    """The cRLDistributionPoints of an issuing CA (RFC 5280 §4.2.1.13): its root's CRL, so that
    a relying party checking the whole chain (``openssl verify -crl_check_all``) finds it. Only
    with a configured public URL: a CA certificate outlives any listener address."""
    if settings.public_url is None:
        return None
    url = check_public_url(settings.public_url, allow_loopback=settings.allow_loopback_urls)
    return x509.CRLDistributionPoints(
        [
            x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(url + root_crl_path(root_generation))],
                relative_name=None,
                reasons=None,
                crl_issuer=None,
            )
        ]
    )


def new_serial() -> int:
    """20 random octets, top bit cleared: positive and at most 20 octets (RFC 5280 §4.1.2.2)."""
    while True:
        value = int.from_bytes(secrets.token_bytes(SERIAL_HEX_LENGTH // 2), "big") >> 1
        if value:
            return value


def _serial_hex(value: int) -> str:
    return f"{value:0{SERIAL_HEX_LENGTH}x}"


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)


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
        _write_private(ca_dir / ACTIVATION_FILE, kek.hex().encode())
        now = clock.now()
        policy = settings.policy
        root_label, issuing_label = "fleet-root-1", "fleet-issuing-1"
        root_public = hsm.generate_ec_key(root_label, _ROOT_CURVE)
        root_name = ca_name(name, CaRole.ROOT, 1)
        root_ski = x509.SubjectKeyIdentifier.from_public_key(root_public)
        root = sign_certificate(
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(root_public)
            .serial_number(new_serial())
            .not_valid_before(now - policy.backdate)
            .not_valid_after(now + policy.root_lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(CA_KEY_USAGE, critical=True)
            .add_extension(root_ski, critical=False),
            hsm.signer(root_label),
        )
        issuing_public = hsm.generate_ec_key(issuing_label, _ISSUING_CURVE)
        issuing_builder = (
            x509.CertificateBuilder()
            .subject_name(ca_name(name, CaRole.ISSUING, 1))
            .issuer_name(root_name)
            .public_key(issuing_public)
            .serial_number(new_serial())
            .not_valid_before(now - policy.backdate)
            .not_valid_after(now + policy.issuing_lifetime)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(CA_KEY_USAGE, critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(issuing_public), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), False
            )
        )
        if root_crl is not None:
            issuing_builder = issuing_builder.add_extension(root_crl, critical=False)
        issuing = sign_certificate(issuing_builder, hsm.signer(root_label))
    finally:
        hsm.close()
    return [
        NewCaKey(
            role=role,
            generation=1,
            hsm_label=label,
            subject=cert.subject.rfc4514_string(),
            subject_key_id=x509.SubjectKeyIdentifier.from_public_key(_ec_public(cert)).digest,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            active=True,
            certificate=cert.public_bytes(serialization.Encoding.DER),
            created_at=now,
        )
        for role, label, cert in (
            (CaRole.ROOT, root_label, root),
            (CaRole.ISSUING, issuing_label, issuing),
        )
    ]


@dataclass(frozen=True, kw_only=True)
class IssuingCa:
    """The CA generation that issues now: its store row, certificate and HSM signer."""

    record: CaKeyRecord
    certificate: x509.Certificate
    signer: Signer


class FleetCa:
    """The fleet root and issuing CA of one data directory; open it with ``open``."""

    def __init__(self, *, settings: Settings, store: Store, hsm: Hsm, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.clock = clock
        self._hsm = hsm
        with store.transaction() as tx:
            root = tx.ca_keys.active(CaRole.ROOT)
            issuing = tx.ca_keys.active(CaRole.ISSUING)
        self._root = x509.load_der_x509_certificate(root.certificate)
        # Every write of this authority goes into the audit log, in its own transaction.
        self.audit_log = ca_audit.install(settings, store, hsm, clock, self._root)
        self.issuing = IssuingCa(
            record=issuing,
            certificate=x509.load_der_x509_certificate(issuing.certificate),
            signer=hsm.signer(issuing.hsm_label),
        )
        self._end_entities = EndEntityIssuer(
            issuing=self.issuing.certificate, signer=self.issuing.signer
        )

    # -- set-up --------------------------------------------------------------------------------

    @classmethod
    def init(cls, settings: Settings, *, clock: Clock, name: str = "fleetid") -> FleetCa:
        """Create the HSM, the root and the issuing CA; refuse if this data dir has a CA.
        All or nothing: a failure leaves no ``ca`` directory, rows or new data directory."""
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
        return cls(settings=settings, store=store, hsm=hsm, clock=clock)

    @classmethod
    def open(cls, settings: Settings, *, clock: Clock) -> FleetCa:
        """The CA of ``settings.data_dir`` with its HSM activated; refuse if there is none."""
        ca_dir = settings.data_dir / CA_DIR
        try:
            kek = bytes.fromhex((ca_dir / ACTIVATION_FILE).read_text().strip())
        except FileNotFoundError:
            raise ConfigError(
                f"no fleet CA in {settings.data_dir}: run `fleetid ca init --data-dir` first"
            ) from None
        except (OSError, ValueError) as exc:
            raise HsmError(f"the CA HSM activation key in {ca_dir} is unreadable") from exc
        hsm = open_ca_hsm(settings, ca_dir, kek)
        store = Store(engine_from_settings(settings))
        return cls(settings=settings, store=store, hsm=hsm, clock=clock)

    def close(self) -> None:
        self._hsm.lock()
        self.store.dispose()

    @property
    def hsm(self) -> Hsm:
        """The activated HSM holding the CA keys (rollover makes the next generation there)."""
        return self._hsm

    # -- public material -----------------------------------------------------------------------

    @property
    def root(self) -> x509.Certificate:
        return self._root

    def chain(self) -> list[x509.Certificate]:
        """The issuing CA first, then the root (what ``fleetid ca certs`` and ``cacerts`` give)."""
        return [self.issuing.certificate, self._root]

    # -- issuance ------------------------------------------------------------------------------

    def issue(
        self,
        tx: Repositories,
        *,
        public_key: ec.EllipticCurvePublicKey,
        credential_type: CredentialType,
        common_name: str,
        device_id: str | None,
        alt_names: tuple[x509.GeneralName, ...] = (),
    ) -> tuple[x509.Certificate, CertificateRecord]:
        """Sign an end-entity certificate under the active issuing CA and record it in ``tx``."""
        profile = self.settings.policy.profile(credential_type)
        issuing = self.issuing.certificate
        now = self.clock.now()
        not_after = now + profile.cadence.lifetime
        if not_after > issuing.not_valid_after_utc:
            raise PolicyError("the issuing CA expires before this certificate would; roll it over")
        base = self.settings.certificate_base_url  # refuses loopback URLs outside tests
        serial = new_serial()
        certificate = self._end_entities.issue(
            EndEntity(
                public_key=public_key,
                serial=serial,
                common_name=common_name,
                not_before=now - self.settings.policy.backdate,
                not_after=not_after,
                crl_url=base + crl_path(self.issuing.record.generation, crl_shard(serial)),
                alt_names=alt_names,
            ),
            extended_key_usages=tuple(profile.extended_key_usages),
            ocsp_url=base + OCSP_PATH,
        )
        record = tx.certificates.add(
            NewCertificate(
                serial=_serial_hex(serial),
                issuer_id=self.issuing.record.id,
                device_id=device_id,
                profile=str(credential_type),
                subject=certificate.subject.rfc4514_string(),
                public_key_sha256=public_key_sha256(public_key),
                not_before=certificate.not_valid_before_utc,
                not_after=certificate.not_valid_after_utc,
                issued_at=now,
                der=certificate.public_bytes(serialization.Encoding.DER),
            )
        )
        return certificate, record

    def tls_server_files(self, hosts: list[str]) -> tuple[Path, Path]:
        """A TLS server certificate for ``hosts`` (chain PEM file, key PEM file), renewed when due.

        The chain file holds the server certificate then the issuing CA (RFC 8446 §4.4.2 order).
        """
        tls_dir = self.settings.data_dir / CA_DIR / _TLS_DIR
        cert_path, key_path = tls_dir / "server.crt", tls_dir / "server.key"
        if cert_path.exists() and key_path.exists() and not self._tls_due(cert_path, hosts):
            return cert_path, key_path
        key = ec.generate_private_key(ec.SECP256R1())
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        with self.store.transaction() as tx:
            certificate, _ = self.issue(
                tx,
                public_key=key.public_key(),
                credential_type=CredentialType.TLS_SERVER,
                common_name=hosts[0],
                device_id=None,
                alt_names=tuple(names),
            )
        _write_private(
            key_path,
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ),
        )
        cert_path.write_bytes(
            b"".join(
                c.public_bytes(serialization.Encoding.PEM)
                for c in (certificate, self.issuing.certificate)
            )
        )
        return cert_path, key_path

    def _tls_due(self, cert_path: Path, hosts: list[str]) -> bool:
        try:
            current = x509.load_pem_x509_certificate(cert_path.read_bytes())
            san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (ValueError, x509.ExtensionNotFound):
            return True
        named = {str(v) for v in san.get_values_for_type(x509.IPAddress)} | set(
            san.get_values_for_type(x509.DNSName)
        )
        cadence = self.settings.policy.profile(CredentialType.TLS_SERVER).cadence
        stale = current.issuer != self.issuing.certificate.subject
        return (
            stale
            or not set(hosts) <= named
            or cadence.renewal_due(current.not_valid_after_utc, self.clock.now())
        )


def _ec_public(certificate: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = certificate.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)  # noqa: S101 - we issued it with an EC key
    return key
