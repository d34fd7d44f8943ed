"""The credential lifecycle after the factory: enrol, refresh, re-key, rollover, authority change.

``LifecycleService`` extends the EST operations of ``fleetid.authority.enrolment``:

* **Enrol by attestation.** ``simpleenroll`` with no HTTP credential and a CSR carrying a
  draft-ietf-lamps-csr-attestation bundle goes to the attestation provisioner. A device that
  enrolled before (same IDevID key) may enrol again this way: its factory identity is the
  recovery path when its operational credential lapsed; the previous credentials are superseded.
* **Refresh and re-key** (``simplereenroll``) are authenticated by the current credential: a
  ``Fleetid-Proof`` header (``fleetid.formats.proof``, shared with the device), a signature by
  the current credential's key over the request and a fresh challenge. The named certificate
  must be valid, unexpired and unrevoked, and its device enrolled. A CSR for the same key is a
  refresh; a CSR for a new key is a re-key and must carry attestation evidence for that key from
  the same device, bound to the same nonce. Instead of the header, a client may authenticate
  TLS with the current certificate (RFC 7030 §3.3.2; the CSR's subject must equal it, §4.2.2).
  Without either the request is refused: a CSR's own signature proves no fresh possession.
  Either way the old certificate is linked to its successor and no longer re-enrols. A refresh
  leaves it unrevoked: a short-lived credential simply expires, as step-ca and Vault let renewed
  ones do, so routine refreshes put nothing on the CRLs or the filter. A re-key revokes it as
  ``superseded`` (the old key is retired, perhaps on suspicion).
* **Rollover.** ``roll_issuing_ca`` makes the next issuing-CA generation under the same root.
  ``roll_root`` makes a new root and the RFC 4210 §4.4 root-key-update certificates: NewWithOld
  (the new root's key and name, signed by the old root: the link a device follows) and
  OldWithNew; both are served by ``cacerts`` next to the chain (RFC 7030 §4.1.3), and kept as
  PEM in ``<data-dir>/ca/links``. The next issuing CA is signed by the new root.
* **Authority change.** ``release`` (``POST /enrol/release`` with a proof) revokes every valid
  credential of the device as ``cessationOfOperation`` and marks it ``transferred``; the device
  then enrols at the other authority with its IDevID, which refuses it unless its manifest lists
  the device.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from fleetid.authority.attestation.errors import NotOnManifestError
from fleetid.authority.csr import load_csr, public_key_sha256
from fleetid.authority.enrolment import EnrolmentService
from fleetid.authority.fleet_ca import (
    CA_DIR,
    CA_KEY_USAGE,
    FleetCa,
    ca_name,
    new_serial,
    root_crl_point,
)
from fleetid.authority.provisioners import Provisioner
from fleetid.authority.provisioners.attestation import AttestationProvisioner, Challenge
from fleetid.crypto.signer import Signer, hash_for_curve
from fleetid.errors import (
    AuthenticationError,
    ConfigError,
    LimitExceededError,
    NotConfiguredError,
    PolicyError,
)
from fleetid.formats.proof import (
    PROOF_HEADER,
    REENROLL_PATH,
    RELEASE_PATH,
    CredentialProof,
    proof_message,
    sign_proof,
)
from fleetid.formats.x509_sign import sign_certificate
from fleetid.policy import CredentialType
from fleetid.store.repositories import CertificateRecord, NewCaKey, Repositories, Revocation
from fleetid.store.schema import CaRole, CertificateStatus, DeviceStatus, RevocationReason

__all__ = [
    "LINKS_DIR",
    "PROOF_HEADER",
    "REENROLL_PATH",
    "RELEASE_PATH",
    "CredentialProof",
    "LifecycleService",
    "RootRollover",
    "lifecycle_service",
    "link_certificates",
    "proof_message",
    "roll_issuing_ca",
    "roll_root",
    "sign_proof",
]

LINKS_DIR: Final = "links"
_REENROL_NEEDS: Final = (
    f"re-enrolment needs TLS client authentication with the current certificate"
    f" (RFC 7030 §3.3.2) or a {PROOF_HEADER} header"
)


# --- rollover ---------------------------------------------------------------------------------


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


def _ec(certificate: x509.Certificate) -> ec.EllipticCurvePublicKey:
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ConfigError("fleet CA keys are EC keys")
    return key


def _ca_builder(
    *,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Certificate | None,
    issuer_key: ec.EllipticCurvePublicKey,
    ca: FleetCa,
    path_length: int | None,
    lifetime_days: float,
) -> x509.CertificateBuilder:
    now = ca.clock.now()
    not_after = now + ca.settings.policy.root_lifetime
    if issuer is not None:
        not_after = min(not_after, issuer.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer.subject)
        .public_key(public_key)
        .serial_number(new_serial())
        .not_valid_before(now - ca.settings.policy.backdate)
        .not_valid_after(min(not_after, now + timedelta(days=lifetime_days)))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(CA_KEY_USAGE, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key), critical=False
        )
    return builder


def _record_ca(
    tx: Repositories,
    *,
    role: CaRole,
    generation: int,
    label: str,
    cert: x509.Certificate,
    ca: FleetCa,
) -> None:
    tx.ca_keys.add(
        NewCaKey(
            role=role,
            generation=generation,
            hsm_label=label,
            subject=cert.subject.rfc4514_string(),
            subject_key_id=x509.SubjectKeyIdentifier.from_public_key(_ec(cert)).digest,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            active=True,
            certificate=cert.public_bytes(serialization.Encoding.DER),
            created_at=ca.clock.now(),
        )
    )


def _organization(ca: FleetCa) -> str:
    values = ca.root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(values[0].value) if values else "fleetid"


def _next_generation(tx: Repositories, role: CaRole) -> int:
    return max((k.generation for k in tx.ca_keys.all() if k.role == role), default=0) + 1


def _issue_issuing_ca(
    ca: FleetCa, tx: Repositories, root: x509.Certificate, root_signer: Signer
) -> x509.Certificate:
    generation = _next_generation(tx, CaRole.ISSUING)
    label = f"fleet-issuing-{generation}"
    public_key = ca.hsm.generate_ec_key(label, "P-256")
    name = ca_name(_organization(ca), CaRole.ISSUING, generation)
    builder = _ca_builder(
        subject=name,
        public_key=public_key,
        issuer=root,
        issuer_key=_ec(root),
        ca=ca,
        path_length=0,
        lifetime_days=ca.settings.policy.issuing_lifetime.total_seconds() / 86400,
    )
    root_generation = max(k.generation for k in tx.ca_keys.all() if k.role == CaRole.ROOT)
    root_crl = root_crl_point(ca.settings, root_generation)
    if root_crl is not None:
        builder = builder.add_extension(root_crl, critical=False)
    issuing = sign_certificate(builder, root_signer)
    _record_ca(tx, role=CaRole.ISSUING, generation=generation, label=label, cert=issuing, ca=ca)
    return issuing


def _reopen(ca: FleetCa) -> FleetCa:
    return FleetCa(settings=ca.settings, store=ca.store, hsm=ca.hsm, clock=ca.clock)


def roll_issuing_ca(ca: FleetCa) -> FleetCa:
    """A new issuing-CA generation under the current root; the returned CA issues with it.

    Devices need no new anchor: the new issuing CA chains to the root they hold. Credentials from
    the old generation stay valid until they expire or are refreshed.
    """
    root_record = _active_root(ca)
    with ca.store.transaction() as tx:
        _issue_issuing_ca(ca, tx, ca.root, ca.hsm.signer(root_record))
    return _reopen(ca)


def _active_root(ca: FleetCa) -> str:
    with ca.store.transaction() as tx:
        return tx.ca_keys.active(CaRole.ROOT).hsm_label


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
        name = ca_name(_organization(ca), CaRole.ROOT, generation)
        lifetime = ca.settings.policy.root_lifetime.total_seconds() / 86400
        new_root = sign_certificate(
            _ca_builder(
                subject=name,
                public_key=public_key,
                issuer=None,
                issuer_key=public_key,
                ca=ca,
                path_length=2,
                lifetime_days=lifetime,
            ),
            new_signer,
        )
        new_with_old = sign_certificate(
            _ca_builder(
                subject=name,
                public_key=public_key,
                issuer=old_root,
                issuer_key=_ec(old_root),
                ca=ca,
                path_length=2,
                lifetime_days=lifetime,
            ),
            old_signer,
        )
        old_with_new = sign_certificate(
            _ca_builder(
                subject=old_root.subject,
                public_key=_ec(old_root),
                issuer=new_root,
                issuer_key=public_key,
                ca=ca,
                path_length=_path_length(old_root),
                lifetime_days=(old_root.not_valid_after_utc - ca.clock.now()).total_seconds()
                / 86400,
            ),
            new_signer,
        )
        _record_ca(tx, role=CaRole.ROOT, generation=generation, label=label, cert=new_root, ca=ca)
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


# --- the service ------------------------------------------------------------------------------


class LifecycleService(EnrolmentService):
    """EST plus attestation-gated enrolment, proof-authenticated refresh/re-key and release."""

    def __init__(
        self,
        ca: FleetCa,
        *,
        attestation: AttestationProvisioner | None = None,
        provisioners: Mapping[str, Provisioner] | None = None,
    ) -> None:
        super().__init__(ca, provisioners)
        self.attestation = attestation
        if attestation is not None:
            self.provisioners[attestation.type_key] = attestation

    def _require_attestation(self) -> AttestationProvisioner:
        if self.attestation is None or not self.attestation.configured:
            raise NotConfiguredError(
                "attestation-gated enrolment is not configured: no manufacturer root is trusted"
            )
        return self.attestation

    # -- publication ---------------------------------------------------------------------------

    def cacerts(self) -> list[x509.Certificate]:
        """Issuing CA, root, then the root-key-update certificates (RFC 7030 §4.1.3)."""
        return [*self.ca.chain(), *link_certificates(self.ca)]

    def replace_ca(self, ca: FleetCa) -> None:
        """Issue with a rolled-over CA from now on."""
        self.ca = ca

    # -- enrolment -----------------------------------------------------------------------------

    def issue_challenge(self, device_id: str) -> Challenge:
        """A fresh challenge for a device this authority knows (its manifest lists it, or it
        enrolled here), at most ``policy.outstanding_challenges`` unused at a time; expired
        challenges are pruned. An unknown device is refused before anything is written."""
        provisioner = self._require_attestation()
        now = self.ca.clock.now()
        bound = self.ca.settings.policy.outstanding_challenges
        with self.ca.store.transaction() as tx:
            if tx.manifest.by_serial(device_id) is None and tx.devices.get(device_id) is None:
                # The refusal attested enrolment would give, given before anything is written.
                raise NotOnManifestError(
                    f"device {device_id} is not on a manifest trusted here; no challenge issued"
                )
            tx.challenges.prune(now)
            if tx.challenges.outstanding(device_id, now) >= bound:
                raise LimitExceededError(
                    f"the device holds {bound} unused challenges; use one or let them expire"
                )
            return provisioner.issue_challenge(tx, device_id)

    # -- refresh and re-key --------------------------------------------------------------------

    def _authenticate(
        self, tx: Repositories, proof: CredentialProof, path: str, body: bytes
    ) -> CertificateRecord:
        now = self.ca.clock.now()
        current = self.current_credential(tx, proof.serial)
        key = _ec(x509.load_der_x509_certificate(current.der))
        try:
            key.verify(
                proof.signature,
                proof_message(path=path, nonce=proof.nonce, body=body),
                ec.ECDSA(hash_for_curve(key.curve)),
            )
        except InvalidSignature:
            raise AuthenticationError(
                f"the {PROOF_HEADER} signature does not verify under credential {current.serial}"
            ) from None
        challenge = tx.challenges.get(proof.nonce)
        if challenge is None:
            raise AuthenticationError("the proof's nonce was not issued here")
        if challenge.used_at is not None:
            raise AuthenticationError("the proof's nonce was used already")
        if now >= challenge.expires_at:
            raise AuthenticationError("the proof's nonce expired")
        if challenge.device_id is not None and challenge.device_id != current.device_id:
            raise AuthenticationError("the proof's nonce was issued for another device")
        return current

    def simple_reenroll(
        self,
        csr_der: bytes,
        proof: CredentialProof | str | None = None,
        *,
        client_certificate: x509.Certificate | None = None,
    ) -> x509.Certificate:
        """Refresh (same key) or re-key (new attested key) under the current credential.

        Possession of the current credential is proven freshly, always: by a ``Fleetid-Proof``
        over this CSR and a fresh challenge, or by TLS client authentication with the credential
        (``client_certificate``, verified by the server's TLS stack; RFC 7030 §3.3.2). Neither is
        refused: the CSR's own signature is no proof (a copied CSR replays).
        """
        if isinstance(proof, str):
            proof = CredentialProof.parse(proof)
        if proof is None and client_certificate is None:
            raise AuthenticationError(_REENROL_NEEDS)
        csr = load_csr(csr_der)
        public_key = csr.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)  # noqa: S101 - load_csr checked
        now = self.ca.clock.now()
        with self.ca.store.transaction() as tx:
            if proof is not None:
                current = self._authenticate(tx, proof, REENROLL_PATH, csr_der)
            else:
                assert client_certificate is not None  # noqa: S101 - checked above
                current = self.client_credential(tx, client_certificate, csr)
            device_id = current.device_id
            assert device_id is not None  # noqa: S101 - current_credential checked
            refresh = public_key_sha256(public_key) == current.public_key_sha256
            if refresh:
                if proof is not None and not tx.challenges.consume(proof.nonce, now):
                    raise AuthenticationError("the proof's nonce was spent concurrently")
            else:
                attested = self._require_attestation().verify(tx, csr)
                if attested.device_id != device_id:
                    raise PolicyError(
                        f"the new key is attested by device {attested.device_id}, "
                        f"the credential is {device_id}'s"
                    )
                if proof is not None and attested.challenge != proof.nonce:
                    raise AuthenticationError("re-key evidence and proof use different nonces")
            certificate, record = self.ca.issue(
                tx,
                public_key=public_key,
                credential_type=CredentialType(current.profile),
                common_name=device_id,
                device_id=device_id,
            )
            if refresh:  # the old credential simply expires: it is on no CRL or filter
                tx.certificates.supersede(current.serial, record.id)
            else:
                tx.certificates.revoke(
                    current.serial, RevocationReason.SUPERSEDED, now, superseded_by=record.id
                )
        return certificate

    # -- authority change ----------------------------------------------------------------------

    def release(self, body: bytes, proof: CredentialProof | str) -> list[Revocation]:
        """The device leaves this authority: its credentials end as ``cessationOfOperation``."""
        if isinstance(proof, str):
            proof = CredentialProof.parse(proof)
        now = self.ca.clock.now()
        with self.ca.store.transaction() as tx:
            current = self._authenticate(tx, proof, RELEASE_PATH, body)
            if not tx.challenges.consume(proof.nonce, now):
                raise AuthenticationError("the proof's nonce was spent concurrently")
            device_id = current.device_id
            assert device_id is not None  # noqa: S101 - _authenticate checked
            done = [
                tx.certificates.revoke(c.serial, RevocationReason.CESSATION_OF_OPERATION, now)
                for c in tx.certificates.for_device(device_id)
                if c.status == CertificateStatus.VALID
            ]
            tx.devices.set_status(device_id, DeviceStatus.TRANSFERRED, now)
        return done


def lifecycle_service(ca: FleetCa) -> LifecycleService:
    """The service for ``ca``: attestation-gated enrolment is on while the data directory trusts
    at least one manufacturer root (``trust/manufacturers/*.pem``, followed as it changes)."""
    from fleetid.authority.provisioners.attestation import ManufacturerTrust

    attestation = AttestationProvisioner(
        ca.clock,
        ManufacturerTrust(ca.settings.data_dir).policy,
        challenge_ttl=ca.settings.policy.challenge_ttl,
    )
    return LifecycleService(ca, attestation=attestation)
