"""The FIDO metadata store: authenticator models, their attestation roots and their status, in the
role of the FIDO Metadata Service (FIDO MDS3, "FIDO Metadata Service" v3.0 §3).

``load_blob`` reads a signed MDS3 BLOB (a JWS, ``fleetid.crypto.jws``) and follows the BLOB
processing rules of MDS3 §3.2:

1. the x5c chain validates to the metadata root this authority was configured with, and the
   signature verifies under its leaf, else ``MetadataBlobError``;
   every certificate of the chain that names a CRL distribution point is checked against a
   current CRL of its issuer (the revocation check of MDS3 §3.2; RFC 5280 §6.3): one signed by
   the issuer, thisUpdate passed and nextUpdate not, not listing the certificate; no such CRL
   among those given, or a revoked certificate, is a ``MetadataBlobError`` (fail closed);
2. the payload parses as an MDS3 ``MetadataBLOBPayload`` (python-fido2's ``fido2.mds3`` schema);
3. its ``nextUpdate`` has not passed, else ``MetadataStaleError``;
4. its serial ``no`` is above the newest held, else ``MetadataRollbackError``;

and then replaces the models held with the BLOB's: one per AAGUID (a U2F model, which has none,
by each attestation certificate key identifier), each with its attestation roots and the status
its reports give it.

``check`` is the trust decision after ``fleetid.authority.attestation.fido.verify_attestation``:
the store holds a current BLOB, the model is known (``AuthenticatorUnknownError``; also when the
attestation certificate does not name its model and the model's root serves several), no status
report of the model refuses it (``AuthenticatorStatusError``), and the trust path validates to
one of the model's attestation roots at ``now`` (``UnknownManufacturerError``: manufacturer root
→ model → device, as for the fleet's own devices). A model is refused if any of its reports, not
only the latest, has a refused status: an UPDATE_AVAILABLE after a USER_VERIFICATION_BYPASS says
that a fixed firmware exists, not that this authenticator runs it.

Not done here: fetching those CRLs (the caller gives them: ``fleetid fido load-metadata --crl``),
the per certificate scope of an ATTESTATION_KEY_COMPROMISE report (the whole model is refused).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fido2.mds3 import MetadataBlobPayload, MetadataBlobPayloadEntry

from fleetid.authority.attestation.fido import ACCEPTED_FORMATS, FIDO_AAGUID_OID, FidoAttestation
from fleetid.crypto.jws import verified_jws_payload
from fleetid.crypto.pkix import (
    PathValidationError,
    crl_signed_by_ca,
    path_verifier,
    plain_ca_policy,
)
from fleetid.errors import (
    AttestationTypeRefusedError,
    AuthenticatorStatusError,
    AuthenticatorUnknownError,
    ConfigError,
    MetadataBlobError,
    MetadataRollbackError,
    MetadataStaleError,
    UnknownManufacturerError,
)
from fleetid.store.fido_repository import AuthenticatorModelRecord, BlobRecord, FidoRepository

__all__ = [
    "REFUSED_STATUSES",
    "FidoMetadataStore",
    "FidoPolicy",
    "LoadedBlob",
    "model_key",
]

# MDS3 §3.1.4 AuthenticatorStatus values that say the model must not be trusted.
REFUSED_STATUSES: Final = frozenset(
    {
        "REVOKED",
        "ATTESTATION_KEY_COMPROMISE",
        "USER_VERIFICATION_BYPASS",
        "USER_KEY_REMOTE_COMPROMISE",
        "USER_KEY_PHYSICAL_COMPROMISE",
    }
)
_ZERO_AAGUID: Final = uuid.UUID(int=0)


@dataclass(frozen=True, kw_only=True)
class FidoPolicy:
    """What the authority requires of an operator's authenticator; the FIDO twin of
    ``fleetid.authority.attestation.VerificationPolicy`` (docs/attestation.md sets them side by
    side)."""

    metadata_root: x509.Certificate  # the MDS3 BLOB signer's root
    refused_statuses: frozenset[str] = REFUSED_STATUSES
    formats: frozenset[str] = ACCEPTED_FORMATS
    require_user_verification: bool = True

    def __post_init__(self) -> None:
        if not self.formats <= ACCEPTED_FORMATS:
            raise ConfigError(f"FIDO formats outside {sorted(ACCEPTED_FORMATS)}")


@dataclass(frozen=True, kw_only=True)
class LoadedBlob:
    serial: int
    next_update: date
    models: int
    signer: str = field(repr=False)


def model_key(aaguid: uuid.UUID | None, key_identifier: bytes | None = None) -> str:
    """The store's name of a model: its AAGUID, or for a U2F model (AAGUID zero) ``ski:`` and
    the hex attestation certificate key identifier (MDS3 §3.1.1)."""
    if aaguid is not None and aaguid != _ZERO_AAGUID:
        return str(aaguid)
    if key_identifier is None:
        raise AuthenticatorUnknownError("a U2F authenticator is known by its key identifier")
    return "ski:" + key_identifier.hex()


def _key_identifier(certificate: x509.Certificate) -> bytes:
    """The attestation certificate key identifier: the subjectKeyIdentifier, or RFC 5280
    §4.2.1.2 method 1 over the key when the certificate has none (MDS3 §3.1.1)."""
    try:
        return certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest


def _end_of(day: date) -> datetime:
    """MDS3 dates are days; a BLOB is current through the end of its nextUpdate day (UTC)."""
    return datetime.combine(day, time.max, tzinfo=UTC)


def _refusing(entry: MetadataBlobPayloadEntry, refused: frozenset[str]) -> tuple[str, str | None]:
    """The status the store records: the first refused one of the history, else the latest."""
    reports = sorted(entry.status_reports, key=lambda r: r.effective_date or date.min)
    for report in reports:
        if str(report.status) in refused:
            return str(report.status), _iso(report.effective_date)
    if not reports:
        return "NOT_FIDO_CERTIFIED", None
    return str(reports[-1].status), _iso(reports[-1].effective_date)


def _iso(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _pem(certificates: list[bytes]) -> str:
    try:
        return "".join(
            x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()
            for der in certificates
        )
    except ValueError as exc:
        raise MetadataBlobError(f"an attestation root is not a DER certificate: {exc}") from exc


def _parsed_crls(crls: Sequence[bytes]) -> list[x509.CertificateRevocationList]:
    try:
        return [x509.load_der_x509_crl(crl) for crl in crls]
    except ValueError as exc:
        raise MetadataBlobError(f"a CRL given for the BLOB's chain is not DER: {exc}") from exc


def _check_chain_revocation(
    chain: Sequence[x509.Certificate],
    root: x509.Certificate,
    crls: Sequence[x509.CertificateRevocationList],
    now: datetime,
) -> None:
    """Each chain certificate naming a CRL distribution point is on no current CRL of its
    issuer, and one such CRL is among ``crls`` (RFC 5280 §6.3.3, fail closed)."""
    issuers = [*chain[1:], root]
    for certificate, issuer in zip(chain, issuers, strict=True):
        try:
            certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
        except x509.ExtensionNotFound:
            continue
        name = certificate.subject.rfc4514_string()
        current = [
            crl
            for crl in crls
            if crl.issuer == issuer.subject
            and crl_signed_by_ca(crl, issuer)
            and crl.last_update_utc <= now
            and crl.next_update_utc is not None
            and now < crl.next_update_utc
        ]
        if not current:
            raise MetadataBlobError(f"no current CRL of its issuer for {name} in the BLOB's chain")
        if any(
            crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
            for crl in current
        ):
            raise MetadataBlobError(f"{name} in the BLOB's chain is revoked")


class FidoMetadataStore:
    """Load MDS3 BLOBs into the store and decide trust in a verified attestation."""

    def __init__(self, repository: FidoRepository, policy: FidoPolicy) -> None:
        self._repository = repository
        self.policy = policy

    def load_blob(self, token: str, now: datetime, crls: Sequence[bytes] = ()) -> LoadedBlob:
        """Verify ``token`` and make its models the ones held (steps in the module docstring);
        ``crls`` are DER CRLs for the chain's revocation check."""
        payload_bytes, chain = verified_jws_payload(token.strip(), [self.policy.metadata_root], now)
        _check_chain_revocation(chain, self.policy.metadata_root, _parsed_crls(crls), now)
        signer = chain[0]
        try:
            document = json.loads(payload_bytes)
            # MDS3 §3.1.6: "no" is a Number; python-fido2's schema would take "1" as well.
            if not isinstance(document, dict) or type(document.get("no")) is not int:
                raise ValueError("no serial number")
            payload = MetadataBlobPayload.from_dict(document)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise MetadataBlobError(f"the BLOB's payload is not an MDS3 payload: {exc}") from exc
        if now > _end_of(payload.next_update):
            raise MetadataStaleError(
                f"BLOB {payload.no} was to be replaced by {payload.next_update.isoformat()}"
            )
        blob = BlobRecord(
            serial=payload.no,
            next_update=_end_of(payload.next_update),
            loaded_at=now,
            sha256=hashlib.sha256(token.strip().encode()).digest(),
        )
        models = list(self._models(payload))

        def newer(held: BlobRecord | None) -> None:
            if held is not None and payload.no <= held.serial:
                raise MetadataRollbackError(
                    f"BLOB {payload.no} is not newer than BLOB {held.serial}, already loaded"
                )

        self._repository.replace_models(blob, models, newer)
        return LoadedBlob(
            serial=payload.no,
            next_update=payload.next_update,
            models=len(models),
            signer=signer.subject.rfc4514_string(),
        )

    def _models(self, payload: MetadataBlobPayload) -> Iterator[AuthenticatorModelRecord]:
        for entry in payload.entries:
            statement = entry.metadata_statement
            if statement is None:
                continue
            aaguid = uuid.UUID(bytes=bytes(entry.aaguid)) if entry.aaguid is not None else None
            keys = (
                [model_key(aaguid)]
                if aaguid is not None
                else [
                    model_key(None, k) for k in entry.attestation_certificate_key_identifiers or ()
                ]
            )
            status, effective = _refusing(entry, self.policy.refused_statuses)
            roots = _pem(list(statement.attestation_root_certificates))
            for key in keys:  # a UAF entry (aaid only) names neither and is not kept
                yield AuthenticatorModelRecord(
                    model=key,
                    description=statement.description[:200],
                    status=status,
                    status_effective=effective,
                    roots_pem=roots,
                    blob_serial=payload.no,
                )

    def _names_its_model(
        self, attestation: FidoAttestation, model: AuthenticatorModelRecord
    ) -> None:
        """WebAuthn §8.2.1: a root used for several models requires id-fido-gen-ce-aaguid in the
        attestation certificate; without it, authData's AAGUID (which ``verify_attestation``
        matched against the extension when present) could name any model of that root."""
        if attestation.fmt not in ("packed", "tpm"):
            return
        try:
            attestation.trust_path[0].extensions.get_extension_for_oid(FIDO_AAGUID_OID)
        except x509.ExtensionNotFound:
            if self._repository.models_sharing_roots(model.roots_pem) > 1:
                raise AuthenticatorUnknownError(
                    f"the attestation certificate names no model, and the root of {model.model}"
                    " serves several: the model cannot be told"
                ) from None

    def check(self, attestation: FidoAttestation, now: datetime) -> AuthenticatorModelRecord:
        """The trust decision (module docstring); returns the model's record."""
        if attestation.fmt not in self.policy.formats:
            raise AttestationTypeRefusedError(f"format {attestation.fmt} is not accepted here")
        blob = self._repository.newest_blob()
        if blob is None or now > blob.next_update:
            raise MetadataStaleError("the metadata store holds no current BLOB; load one first")
        key = model_key(attestation.aaguid, _key_identifier(attestation.trust_path[0]))
        model = self._repository.model(key)
        if model is None:
            raise AuthenticatorUnknownError(f"authenticator model {key} is not in the metadata")
        if model.status in self.policy.refused_statuses:
            raise AuthenticatorStatusError(
                f"authenticator model {key} ({model.description}) is {model.status}"
                f" since {model.status_effective or 'an unknown date'}",
                model.status,
            )
        self._names_its_model(attestation, model)
        roots = x509.load_pem_x509_certificates(model.roots_pem.encode())
        leaf, *intermediates = attestation.trust_path
        try:
            path_verifier(roots, now, ca_policy=plain_ca_policy()).verify(leaf, intermediates)
        except PathValidationError as exc:
            raise UnknownManufacturerError(
                f"the attestation does not chain to a root of model {key}: {exc}"
            ) from exc
        return model
