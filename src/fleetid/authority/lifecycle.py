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
* **Rollover** is ``fleetid.authority.rollover``'s (re-exported here); ``cacerts`` serves its
  link certificates next to the chain (RFC 7030 §4.1.3).
* **Authority change.** ``release`` (``POST /enrol/release`` with a proof) revokes every valid
  credential of the device as ``cessationOfOperation`` and marks it ``transferred``; the device
  then enrols at the other authority with its IDevID, which refuses it unless its manifest lists
  the device.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.authority.ca_init import certificate_ec_key
from fleetid.authority.csr import load_csr, public_key_sha256
from fleetid.authority.enrolment import EnrolmentService
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.issuance_events import record_issuance
from fleetid.authority.provisioners import Provisioner
from fleetid.authority.provisioners.attestation import AttestationProvisioner, Challenge
from fleetid.authority.revoke import revoke_device_certificates

# Re-exported: rollover was this module's, and the demo and many tests import it from here.
from fleetid.authority.rollover import (
    LINKS_DIR,
    RootRollover,
    link_certificates,
    roll_issuing_ca,
    roll_root,
)
from fleetid.crypto.signer import verify_signature
from fleetid.errors import (
    AuthenticationError,
    LimitExceededError,
    NotConfiguredError,
    NotOnManifestError,
    PolicyError,
    VerificationError,
)
from fleetid.formats.proof import (
    PROOF_HEADER,
    REENROLL_PATH,
    RELEASE_PATH,
    CredentialProof,
    proof_message,
    sign_proof,
)
from fleetid.policy import CredentialType
from fleetid.store.repositories import CertificateRecord, Repositories, Revocation
from fleetid.store.schema import DeviceStatus, RevocationReason
from fleetid.structured_logs import annotate

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

_REENROL_NEEDS: Final = (
    f"re-enrolment needs TLS client authentication with the current certificate"
    f" (RFC 7030 §3.3.2) or a {PROOF_HEADER} header"
)


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
        annotate(device=device_id)
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
        key = certificate_ec_key(x509.load_der_x509_certificate(current.der))
        try:
            verify_signature(
                key, proof.signature, proof_message(path=path, nonce=proof.nonce, body=body)
            )
        except VerificationError:
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
        started = time.perf_counter()
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
            annotate(device=device_id)
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
        record_issuance(
            certificate,
            provisioner="refresh" if refresh else "rekey",
            credential_type=CredentialType(current.profile),
            device_id=device_id,
            started=started,
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
            annotate(device=device_id)
            done = revoke_device_certificates(
                tx, device_id, RevocationReason.CESSATION_OF_OPERATION, now
            )
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
