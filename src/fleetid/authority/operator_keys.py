"""Registration of device operators' authenticators (WebAuthn Level 3 §7.1), gated by FIDO
attestation and the metadata store.

A device operator is a person who acts on the fleet (releases a device, approves a transfer);
their key is a FIDO authenticator. ``begin`` issues a single-use challenge for a named operator;
``finish`` takes the browser's registration (attestation object and clientDataJSON) and, in this
order:

1. clientDataJSON is a JSON object with type "webauthn.create", a challenge, an origin this
   authority accepts, and not crossOrigin (the registration page is never framed here);
2. ``verify_attestation`` checks the statement alone (§7.1 "verify that attStmt is a correct
   attestation statement", and §8);
3. rpIdHash is SHA-256 of this authority's RP ID, UP is set, UV when the policy asks (and then no
   fido-u2f, whose signature does not cover the flags), BS only with BE;
4. the metadata store decides trust: model known, no refusing status, trust path to the model's
   root (§7.1 "obtain a list of acceptable trust anchors" and "assess the attestation
   trustworthiness");
5. the challenge is spent and the credential recorded in one transaction: an unknown, expired or
   already used challenge is refused (a replay), and nothing is recorded.

The relying-party configuration (RP ID, origins, metadata root) lives in the data directory,
``fido/relying-party.json`` and ``fido/metadata-root.pem``, written by ``fleetid fido init``.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from fleetid.authority.attestation.fido import FidoAttestation, verify_attestation
from fleetid.authority.fido_metadata import FidoMetadataStore, FidoPolicy
from fleetid.clock import Clock
from fleetid.errors import (
    AttestationTypeRefusedError,
    ChallengeExpiredError,
    ChallengeReplayedError,
    ChallengeUnknownError,
    ConfigError,
    EncodingError,
    EvidenceMalformedError,
    PolicyError,
)
from fleetid.formats.webauthn import FLAG_BE, FLAG_BS, FLAG_UP, FLAG_UV, b64url_decode
from fleetid.store.fido_repository import (
    FidoChallengeRecord,
    FidoRepository,
    OperatorCredentialRecord,
)

__all__ = [
    "CHALLENGE_TTL",
    "IssuedRegistration",
    "OperatorRegistration",
    "RelyingParty",
    "fido_config_dir",
    "has_fido",
    "load_relying_party",
    "save_relying_party",
]

CHALLENGE_TTL: Final = timedelta(minutes=5)
_CONFIG: Final = "relying-party.json"
_ROOT: Final = "metadata-root.pem"


@dataclass(frozen=True, kw_only=True)
class RelyingParty:
    """This authority as a WebAuthn Relying Party (§5.1.3 RP ID, §13.4.9 origins)."""

    rp_id: str
    origins: frozenset[str]
    policy: FidoPolicy


@dataclass(frozen=True, kw_only=True)
class IssuedRegistration:
    challenge: bytes
    operator: str
    rp_id: str
    expires_at: datetime


def fido_config_dir(data_dir: Path) -> Path:
    return data_dir / "fido"


def has_fido(data_dir: Path) -> bool:
    return (fido_config_dir(data_dir) / _CONFIG).is_file()


def save_relying_party(
    data_dir: Path, rp_id: str, origins: list[str], root: x509.Certificate
) -> None:
    folder = fido_config_dir(data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / _ROOT).write_bytes(root.public_bytes(serialization.Encoding.PEM))
    (folder / _CONFIG).write_text(json.dumps({"rp_id": rp_id, "origins": sorted(origins)}) + "\n")


def load_relying_party(data_dir: Path) -> RelyingParty:
    folder = fido_config_dir(data_dir)
    try:
        config = json.loads((folder / _CONFIG).read_text())
        root = x509.load_pem_x509_certificate((folder / _ROOT).read_bytes())
        rp_id, origins = str(config["rp_id"]), frozenset(map(str, config["origins"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"the FIDO relying-party configuration in {folder} is unusable") from exc
    return RelyingParty(rp_id=rp_id, origins=origins, policy=FidoPolicy(metadata_root=root))


class OperatorRegistration:
    """Register operators' authenticators (see the module docstring)."""

    def __init__(
        self,
        repository: FidoRepository,
        relying_party: RelyingParty,
        clock: Clock,
        *,
        challenge_ttl: timedelta = CHALLENGE_TTL,
    ) -> None:
        self.repository = repository
        self._repository = repository
        self.relying_party = relying_party
        self.metadata = FidoMetadataStore(repository, relying_party.policy)
        self._clock = clock
        self._ttl = challenge_ttl

    def begin(self, operator: str) -> IssuedRegistration:
        """A fresh single-use challenge for ``operator`` (32 random bytes, §13.4.3)."""
        if not 0 < len(operator) <= 128:
            raise PolicyError("an operator's name has 1 to 128 characters")
        now = self._clock.now()
        record = FidoChallengeRecord(
            challenge=secrets.token_bytes(32),
            operator=operator,
            expires_at=now + self._ttl,
            used_at=None,
        )
        self._repository.issue_challenge(record, now)
        return IssuedRegistration(
            challenge=record.challenge,
            operator=operator,
            rp_id=self.relying_party.rp_id,
            expires_at=record.expires_at,
        )

    def finish(
        self, attestation_object: bytes, client_data_json: bytes
    ) -> OperatorCredentialRecord:
        """Verify a registration and record the credential (steps 1 to 5)."""
        challenge = self._client_data(client_data_json)
        attestation = verify_attestation(
            attestation_object, hashlib.sha256(client_data_json).digest()
        )
        self._authenticator_data(attestation)
        now = self._clock.now()
        self.metadata.check(attestation, now)

        def credential(spent: FidoChallengeRecord) -> OperatorCredentialRecord:
            return OperatorCredentialRecord(
                credential_id=attestation.credential_id,
                operator=spent.operator,
                aaguid=str(attestation.aaguid),
                fmt=attestation.fmt,
                public_key=attestation.credential_public_key,
                sign_count=attestation.sign_count,
                registered_at=now,
            )

        recorded = self._repository.register(challenge, now, credential)
        if recorded is None:
            self._refuse_challenge(challenge, now)
        assert recorded is not None  # noqa: S101 - _refuse_challenge raised otherwise
        return recorded

    def _client_data(self, client_data_json: bytes) -> bytes:
        """Step 1; the challenge's bytes."""
        try:
            data = json.loads(client_data_json.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise EvidenceMalformedError("clientDataJSON is not UTF-8 JSON") from exc
        if not isinstance(data, dict):
            raise EvidenceMalformedError("clientDataJSON is not a JSON object")
        if data.get("type") != "webauthn.create":
            raise EvidenceMalformedError('clientDataJSON\'s type is not "webauthn.create"')
        if data.get("crossOrigin") is True:
            raise EvidenceMalformedError("the credential was created in a cross-origin frame")
        if data.get("origin") not in self.relying_party.origins:
            raise EvidenceMalformedError(f"origin {data.get('origin')!r} is not accepted here")
        challenge = data.get("challenge")
        if not isinstance(challenge, str) or not challenge:
            raise EvidenceMalformedError("clientDataJSON carries no challenge")
        try:
            return b64url_decode(challenge)
        except EncodingError as exc:
            raise EvidenceMalformedError("the client data's challenge is not base64url") from exc

    def _authenticator_data(self, attestation: FidoAttestation) -> None:
        """Step 3."""
        expected = hashlib.sha256(self.relying_party.rp_id.encode()).digest()
        if attestation.rp_id_hash != expected:
            raise EvidenceMalformedError(
                f"the credential was made for another RP ID than {self.relying_party.rp_id}"
            )
        if attestation.flags & FLAG_BS and not attestation.flags & FLAG_BE:
            raise EvidenceMalformedError("backup state (BS) is set without backup eligibility (BE)")
        if not attestation.flags & FLAG_UP:
            raise EvidenceMalformedError("the authenticator did not test user presence (UP)")
        if self.relying_party.policy.require_user_verification:
            if not attestation.flags & FLAG_UV:
                raise EvidenceMalformedError("the authenticator did not verify the user (UV)")
            if attestation.fmt == "fido-u2f":  # its signature does not cover the flags (§8.6)
                raise AttestationTypeRefusedError(
                    "a fido-u2f registration cannot attest user verification, which policy requires"
                )

    def _refuse_challenge(self, challenge: bytes, now: datetime) -> None:
        record = self._repository.challenge(challenge)
        if record is None:
            raise ChallengeUnknownError("the registration's challenge was not issued here")
        if record.used_at is not None:
            raise ChallengeReplayedError(
                f"the registration's challenge was used at {record.used_at.isoformat()}"
            )
        if now >= record.expires_at:
            raise ChallengeExpiredError(
                f"the registration's challenge expired at {record.expires_at.isoformat()}"
            )
        raise ChallengeReplayedError("the registration's challenge was spent concurrently")
