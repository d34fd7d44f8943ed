"""FIDO test material: the published registrations, forged variants of them, an android-key
authenticator in software, and a metadata store over a fresh database."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from asn1crypto import core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fido2 import cbor
from fido2.cose import CoseKey

from fleetid.formats.android_key import ANDROID_KEY_DESCRIPTION_OID
from fleetid.formats.webauthn import (
    FLAG_UP,
    FLAG_UV,
    encode_attestation_object,
    encode_authenticator_data,
)
from tests.vector_loader import load_json

__all__ = [
    "NOW",
    "AndroidKey",
    "Registration",
    "edit_statement",
    "rebuild_auth_data",
    "registration",
    "registrations",
]

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TODAY = NOW.date()


@dataclass(frozen=True)
class Registration:
    """One published registration (tests/vectors/data/webauthn/attestation-objects.json)."""

    name: str
    attestation_object: bytes
    client_data_json: bytes
    client_data_hash: bytes

    @property
    def decoded(self) -> dict[str, Any]:
        value = cbor.decode(self.attestation_object)
        assert isinstance(value, dict)
        return value


def registrations() -> list[Registration]:
    return [
        Registration(
            name=v["name"],
            attestation_object=bytes.fromhex(v["attestation_object"]),
            client_data_json=bytes.fromhex(v["client_data_json"]),
            client_data_hash=bytes.fromhex(v["client_data_hash"]),
        )
        for v in load_json("webauthn/attestation-objects.json")["vectors"]
    ]


def registration(fmt: str) -> Registration:
    """The published registration of format ``fmt``."""
    prefix = {"packed": "packed-", "tpm": "tpm-", "android-key": "android-", "fido-u2f": "fido-u2f"}
    return next(r for r in registrations() if r.name.startswith(prefix[fmt]))


def edit_statement(attestation_object: bytes, **members: Any) -> bytes:
    """The attestation object with ``members`` of attStmt replaced (None: removed), re-encoded
    canonically: attStmt is outside every signature, so the signatures still verify."""
    top = cbor.decode(attestation_object)
    assert isinstance(top, dict)
    statement = dict(top["attStmt"])
    for name, value in members.items():
        if value is None:
            statement.pop(name, None)
        else:
            statement[name] = value
    return encode_attestation_object(top["fmt"], statement, top["authData"])


def rebuild_auth_data(attestation_object: bytes, **changes: Any) -> bytes:
    """The attestation object with its authenticator data rebuilt, with ``changes`` (the
    ``encode_authenticator_data`` arguments) applied."""
    top = cbor.decode(attestation_object)
    assert isinstance(top, dict)
    from fido2.webauthn import AuthenticatorData

    parsed = AuthenticatorData(top["authData"])
    credential = parsed.credential_data
    assert credential is not None
    fields: dict[str, Any] = {
        "rp_id_hash": parsed.rp_id_hash,
        "flags": int(parsed.flags),
        "sign_count": parsed.counter,
        "aaguid": uuid.UUID(bytes=bytes(credential.aaguid)),
        "credential_id": credential.credential_id,
        "credential_public_key": dict(credential.public_key),
    }
    fields.update(changes)
    auth_data = encode_authenticator_data(**fields)
    return encode_attestation_object(top["fmt"], top["attStmt"], auth_data)


class _IntegerSet(core.SetOf):  # type: ignore[misc]
    _child_spec = core.Integer


def authorization_list(
    *, purposes: tuple[int, ...] = (2,), origin: int | None = 0, all_applications: bool = False
) -> bytes:
    """The contents of an AuthorizationList SEQUENCE (purpose [1], allApplications [600],
    origin [702]), tags in ascending order as DER requires."""
    parts = [_IntegerSet(list(purposes), explicit=1).dump()] if purposes else []
    if all_applications:
        parts.append(core.Null(explicit=600).dump())
    if origin is not None:
        parts.append(core.Integer(origin, explicit=702).dump())
    return b"".join(parts)


def key_description(
    challenge: bytes, software: bytes = b"", hardware: bytes | None = None
) -> bytes:
    """A KeyDescription (schema version 3) with the given lists' contents."""
    hardware = authorization_list() if hardware is None else hardware
    tee = b"\x0a\x01\x01"  # ENUMERATED SecurityLevel trustedEnvironment (1)
    fields = [
        core.Integer(3).dump(),
        tee,
        core.Integer(4).dump(),
        tee,
        core.OctetString(challenge).dump(),
        core.OctetString(b"").dump(),
        core.Sequence(contents=software).dump(),
        core.Sequence(contents=hardware).dump(),
    ]
    inner = b"".join(fields)
    return core.Sequence(contents=inner).dump()


@dataclass
class AndroidKey:
    """An android-key authenticator in software: the keystore key is the credential key, and
    its certificate carries the key description (WebAuthn §8.4)."""

    aaguid: uuid.UUID

    def __post_init__(self) -> None:
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Keystore test root")])
        self.root = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.root_key.public_key())
            .serial_number(1)
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.root_key, hashes.SHA256())
        )

    def register(
        self,
        client_data_hash: bytes,
        *,
        description: bytes | None = None,
        signing_key: ec.EllipticCurvePrivateKey | None = None,
        certified_key: ec.EllipticCurvePrivateKey | None = None,
        rp_id: str = "example.org",
    ) -> bytes:
        """An android-key attestation object; ``description`` replaces the key description,
        ``signing_key`` the key that signs, ``certified_key`` the key the certificate holds."""
        credential = ec.generate_private_key(ec.SECP256R1())
        certified = certified_key or credential
        leaf = (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Android Keystore Key")])
            )
            .issuer_name(self.root.subject)
            .public_key(certified.public_key())
            .serial_number(2)
            .not_valid_before(NOW - timedelta(days=1))
            .not_valid_after(NOW + timedelta(days=365))
            .add_extension(
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier(ANDROID_KEY_DESCRIPTION_OID),
                    description if description is not None else key_description(client_data_hash),
                ),
                critical=False,
            )
            .sign(self.root_key, hashes.SHA256())
        )
        auth_data = encode_authenticator_data(
            rp_id_hash=hashlib.sha256(rp_id.encode()).digest(),
            flags=FLAG_UP | FLAG_UV,
            sign_count=0,
            aaguid=self.aaguid,
            credential_id=b"\x01" * 16,
            credential_public_key=CoseKey.for_alg(-7).from_cryptography_key(
                credential.public_key()
            ),
        )
        signature = (signing_key or credential).sign(
            auth_data + client_data_hash, ec.ECDSA(hashes.SHA256())
        )
        statement: Mapping[str, Any] = {
            "alg": -7,
            "sig": signature,
            "x5c": [leaf.public_bytes(serialization.Encoding.DER)],
        }
        return encode_attestation_object("android-key", statement, auth_data)


def days(n: int) -> date:
    return TODAY + timedelta(days=n)


@dataclass(frozen=True)
class Makers:
    """A metadata service and its BLOB: one certified model, one REVOKED."""

    mds: Any
    certified: Any
    revoked: Any

    def blob(self, serial: int = 1) -> str:
        from fleetid.sim.demo_fido import mds_entry

        entries = [
            mds_entry(self.certified, [("FIDO_CERTIFIED", TODAY - timedelta(days=9))]),
            mds_entry(self.revoked, [("REVOKED", TODAY - timedelta(days=9))]),
        ]
        return str(self.mds.blob(serial, TODAY + timedelta(days=30), entries))


def makers() -> Makers:
    from fleetid.sim.demo_fido import MetadataService, new_authenticator

    return Makers(
        mds=MetadataService.create(NOW),
        certified=new_authenticator("Acme Key", NOW),
        revoked=new_authenticator("Bolt Key", NOW),
    )
