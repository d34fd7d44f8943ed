"""The fleet CA: a fleet root and an issuing CA whose keys live in the HSM, and issuance under them.

``FleetCa.init`` (``fleetid ca init``) makes the CA (``fleetid.authority.ca_init``);
``FleetCa.open`` opens the CA of a data directory with its HSM activated. Certificates are signed
by reference through ``fleetid.formats.x509_sign``, so no CA private key is ever in this module.
End-entity certificates follow ``fleetid.authority.end_entity``'s profile and name the URLs of
``fleetid.authority.urls``; the TLS server certificate of ``fleetid serve`` is
``fleetid.authority.tls_files``'s; rollover is ``fleetid.authority.rollover``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.authority import ca_audit
from fleetid.authority.ca_hsm import open_ca_hsm

# Re-exported: the CA's on-disk layout, names and URL paths, imported from here by the
# revocation publishers, the CLI and many tests.
from fleetid.authority.ca_init import (
    ACTIVATION_FILE,
    CA_DIR,
    CA_KEY_USAGE,
    ca_name,
    check_organization_name,
    create_fleet_ca,
    new_serial,
    serial_hex,
)
from fleetid.authority.csr import public_key_sha256
from fleetid.authority.end_entity import EndEntity, EndEntityIssuer
from fleetid.authority.tls_files import tls_server_files
from fleetid.authority.urls import (
    CRL_SHARDS,
    OCSP_PATH,
    crl_path,
    crl_shard,
    delta_crl_path,
    root_crl_path,
    root_crl_point,
)
from fleetid.clock import Clock
from fleetid.config import Settings
from fleetid.crypto.signer import Signer
from fleetid.errors import ConfigError, HsmError, PolicyError
from fleetid.hsm import Hsm
from fleetid.policy import CredentialType
from fleetid.store.engine import engine_from_settings
from fleetid.store.repositories import (
    CaKeyRecord,
    CertificateRecord,
    NewCertificate,
    Repositories,
    Store,
)
from fleetid.store.schema import CaRole

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
        All or nothing (``fleetid.authority.ca_init.create_fleet_ca``)."""
        store, hsm = create_fleet_ca(settings, clock=clock, name=name)
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
        if public_key.curve.name not in profile.key_types:
            raise PolicyError(
                f"the {credential_type} profile certifies {', '.join(profile.key_types)} keys,"
                f" not {public_key.curve.name}"
            )
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
                serial=serial_hex(serial),
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
        """A TLS server certificate for ``hosts`` (``fleetid.authority.tls_files``)."""
        return tls_server_files(self, hosts)
