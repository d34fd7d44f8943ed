"""Demo stage: device operators register FIDO authenticators, trusted through FIDO metadata.

A metadata service (in the role of the FIDO Alliance's MDS3) signs a BLOB naming two
authenticator models, one of them REVOKED; the authority loads it (a forged BLOB and an older one
are refused) and then, over its HTTP routes, registers an operator's authenticator and refuses a
replayed registration, the revoked model and a model the metadata does not know.

``SoftwareAuthenticator`` is a packed-attestation authenticator in software (an attestation key
per model, a credential key per registration), and ``MetadataService`` a BLOB signer; the tests
use both.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fido2.cose import ES256, CoseKey

from fleetid.api import create_app
from fleetid.authority.attestation.fido import FIDO_AAGUID_OID
from fleetid.authority.fido_metadata import FidoMetadataStore, FidoPolicy
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.operator_keys import save_relying_party
from fleetid.clock import ManualClock, SystemClock
from fleetid.config import Settings
from fleetid.crypto.jws import sign_jws
from fleetid.crypto.keys import new_private_key
from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import VerificationError
from fleetid.formats.webauthn import (
    FLAG_UP,
    FLAG_UV,
    b64url_decode,
    b64url_encode,
    encode_attestation_object,
    encode_authenticator_data,
)
from fleetid.formats.x509_sign import sign_certificate, sign_crl
from fleetid.sim.demo import DemoContext, drill, stage_directory
from fleetid.store.fido_repository import FidoRepository

__all__ = [
    "MetadataService",
    "SoftwareAuthenticator",
    "mds_entry",
    "new_authenticator",
    "new_maker",
    "stage_fido",
]

_RP_ID: Final = "operators.fleetid.invalid"
_ORIGIN: Final = f"https://{_RP_ID}"
_BASE_URL: Final = "http://authority.fleetid.invalid"
_YEARS: Final = timedelta(days=3650)


def _name(common_name: str, *, attestation: bool = False) -> x509.Name:
    attributes = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, "SE"),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "fleetid demo makers"),
    ]
    if attestation:  # WebAuthn §8.2.1: OU "Authenticator Attestation"
        attributes.append(
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Authenticator Attestation")
        )
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _certificate(
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    issuer: x509.Name,
    signer: SoftwareSigner,
    now: datetime,
    *,
    ca: bool,
    extensions: Sequence[x509.ExtensionType] = (),
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + _YEARS)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    return sign_certificate(builder, signer)


def _root(common_name: str, now: datetime) -> tuple[x509.Certificate, SoftwareSigner]:
    signer = SoftwareSigner(new_private_key())
    name = _name(common_name)
    return _certificate(name, signer.public_key(), name, signer, now, ca=True), signer


def aaguid_extension_value(aaguid: uuid.UUID) -> bytes:
    """id-fido-gen-ce-aaguid's value: the DER OCTET STRING of the AAGUID (WebAuthn §8.2.1)."""
    return b"\x04\x10" + aaguid.bytes


@dataclass(frozen=True, kw_only=True)
class SoftwareAuthenticator:
    """One authenticator model's packed attestation, in software: the maker's root, the batch
    attestation certificate and its key."""

    aaguid: uuid.UUID
    description: str
    root: x509.Certificate
    attestation_certificate: x509.Certificate
    attestation_signer: SoftwareSigner

    def make_credential(
        self,
        rp_id: str,
        client_data_json: bytes,
        *,
        flags: int = FLAG_UP | FLAG_UV,
        statement: Mapping[str, Any] | None = None,
    ) -> bytes:
        """A registration's attestation object (WebAuthn §6.5.4): a new credential key, packed
        attestation over ``authenticatorData || clientDataHash`` (§8.2); ``statement`` replaces
        members of the statement (the tests' forgeries)."""
        credential_key = new_private_key().public_key()
        auth_data = encode_authenticator_data(
            rp_id_hash=hashlib.sha256(rp_id.encode()).digest(),
            flags=flags,
            sign_count=0,
            aaguid=self.aaguid,
            credential_id=hashlib.sha256(_spki(credential_key)).digest(),
            credential_public_key=CoseKey.for_alg(ES256.ALGORITHM).from_cryptography_key(
                credential_key
            ),
        )
        client_data_hash = hashlib.sha256(client_data_json).digest()
        members: dict[str, Any] = {
            "alg": ES256.ALGORITHM,
            "sig": self.attestation_signer.sign(auth_data + client_data_hash),
            "x5c": [self.attestation_certificate.public_bytes(serialization.Encoding.DER)],
        }
        members.update(statement or {})
        return encode_attestation_object("packed", members, auth_data)


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def new_authenticator(
    description: str,
    now: datetime,
    *,
    aaguid: uuid.UUID | None = None,
    aaguid_extension: bytes | None = None,
    named: bool = True,
    maker: tuple[x509.Certificate, SoftwareSigner] | None = None,
) -> SoftwareAuthenticator:
    """A new model: its root (or ``maker``'s, a root and its signer, shared with other models)
    and batch attestation certificate, with id-fido-gen-ce-aaguid unless not ``named`` (its
    value replaced by ``aaguid_extension``)."""
    aaguid = aaguid or uuid.uuid4()
    root, root_signer = maker or _root(f"{description} Root CA", now)
    signer = SoftwareSigner(new_private_key())
    value = aaguid_extension if aaguid_extension is not None else aaguid_extension_value(aaguid)
    certificate = _certificate(
        _name(f"{description} Batch", attestation=True),
        signer.public_key(),
        root.subject,
        root_signer,
        now,
        ca=False,
        extensions=[x509.UnrecognizedExtension(FIDO_AAGUID_OID, value)] if named else [],
    )
    return SoftwareAuthenticator(
        aaguid=aaguid,
        description=description,
        root=root,
        attestation_certificate=certificate,
        attestation_signer=signer,
    )


def new_maker(name: str, now: datetime) -> tuple[x509.Certificate, SoftwareSigner]:
    """An authenticator maker's attestation root, to issue several models under."""
    return _root(f"{name} Root CA", now)


def mds_entry(
    authenticator: SoftwareAuthenticator, statuses: Sequence[tuple[str, date]]
) -> dict[str, Any]:
    """An MDS3 ``MetadataBLOBPayloadEntry`` (MDS3 §3.1.1) for ``authenticator``."""
    root_der = authenticator.root.public_bytes(serialization.Encoding.DER)
    return {
        "aaguid": str(authenticator.aaguid),
        "metadataStatement": {
            "description": authenticator.description,
            "aaguid": str(authenticator.aaguid),
            "authenticatorVersion": 1,
            "schema": 3,
            "upv": [{"major": 1, "minor": 1}],
            "protocolFamily": "fido2",
            "attestationTypes": ["basic_full"],
            "userVerificationDetails": [[{"userVerificationMethod": "presence_internal"}]],
            "keyProtection": ["hardware", "secure_element"],
            "matcherProtection": ["on_chip"],
            "attachmentHint": ["external"],
            "tcDisplay": [],
            "attestationRootCertificates": [base64.b64encode(root_der).decode()],
        },
        "statusReports": [
            {"status": status, "effectiveDate": day.isoformat()} for status, day in statuses
        ],
        "timeOfLastStatusChange": max(day for _, day in statuses).isoformat(),
    }


@dataclass(frozen=True, kw_only=True)
class MetadataService:
    """A BLOB signer: a root and its signing certificate (MDS3 §3.1.7); with ``crl_url`` the
    signing certificate names a CRL distribution point and ``crl`` issues the root's CRLs."""

    root: x509.Certificate
    signing_certificate: x509.Certificate
    signing_key: ec.EllipticCurvePrivateKey
    root_signer: SoftwareSigner

    @classmethod
    def create(
        cls, now: datetime, name: str = "fleetid demo metadata", *, crl_url: str | None = None
    ) -> MetadataService:
        root, root_signer = _root(f"{name} root", now)
        key = new_private_key()
        extensions = (
            ()
            if crl_url is None
            else (
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            [x509.UniformResourceIdentifier(crl_url)], None, None, None
                        )
                    ]
                ),
            )
        )
        leaf = _certificate(
            _name(f"{name} BLOB signer"),
            key.public_key(),
            root.subject,
            root_signer,
            now,
            ca=False,
            extensions=extensions,
        )
        return cls(root=root, signing_certificate=leaf, signing_key=key, root_signer=root_signer)

    def crl(
        self, this_update: datetime, next_update: datetime, *, revoke_signer: bool = False
    ) -> bytes:
        """A DER CRL of the root, listing the BLOB signer when ``revoke_signer``."""
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.root.subject)
            .last_update(this_update)
            .next_update(next_update)
        )
        if revoke_signer:
            builder = builder.add_revoked_certificate(
                x509.RevokedCertificateBuilder()
                .serial_number(self.signing_certificate.serial_number)
                .revocation_date(this_update)
                .build()
            )
        return sign_crl(builder, self.root_signer).public_bytes(serialization.Encoding.DER)

    def blob(self, serial: int, next_update: date, entries: Sequence[Mapping[str, Any]]) -> str:
        payload = {
            "legalHeader": "fleetid demo metadata: not the FIDO Alliance's",
            "no": serial,
            "nextUpdate": next_update.isoformat(),
            "entries": list(entries),
        }
        return sign_jws(json.dumps(payload).encode(), self.signing_key, [self.signing_certificate])


def client_data(challenge: bytes, origin: str = _ORIGIN) -> bytes:
    """A browser's clientDataJSON for a registration (WebAuthn §5.8.1)."""
    encoded = b64url_encode(challenge)
    return json.dumps(
        {"type": "webauthn.create", "challenge": encoded, "origin": origin, "crossOrigin": False}
    ).encode()


async def _register(
    http: httpx.AsyncClient, authenticator: SoftwareAuthenticator, operator: str
) -> tuple[httpx.Response, dict[str, str]]:
    issued = (await http.post("/operators/fido/challenge", json={"operator": operator})).json()
    challenge = b64url_decode(issued["challenge"])
    data = client_data(challenge)
    body = {
        "attestation_object": b64url_encode(authenticator.make_credential(issued["rp_id"], data)),
        "client_data_json": b64url_encode(data),
    }
    return await http.post("/operators/fido/register", json=body), body


def stage_fido(ctx: DemoContext) -> None:
    clock = ManualClock(SystemClock().now())
    with stage_directory("fido") as root_dir:
        _run(ctx, clock, root_dir)
    ctx.console.print()


def _run(ctx: DemoContext, clock: ManualClock, root_dir: Path) -> None:
    now = clock.now()
    today = now.astimezone(UTC).date()
    settings = Settings.load(root_dir, environ={"FLEETID_PUBLIC_URL": _BASE_URL})
    ca = FleetCa.init(settings, clock=clock, name="Fleet F")
    mds = MetadataService.create(now)
    save_relying_party(root_dir, _RP_ID, [_ORIGIN], mds.root)
    certified = new_authenticator("Acme Key 5", now)
    revoked = new_authenticator("Bolt Key 2", now)
    unlisted = new_authenticator("Cobalt Key 1", now)
    entries = [
        mds_entry(certified, [("FIDO_CERTIFIED_L1", today - timedelta(days=400))]),
        mds_entry(
            revoked,
            [
                ("FIDO_CERTIFIED_L1", today - timedelta(days=700)),
                ("REVOKED", today - timedelta(days=30)),
            ],
        ),
    ]
    store = FidoMetadataStore(FidoRepository(ca.store.engine), FidoPolicy(metadata_root=mds.root))
    loaded = store.load_blob(mds.blob(7, today + timedelta(days=30), entries), now)
    ctx.console.print(f"metadata BLOB {loaded.serial} loaded: {loaded.models} authenticator models")
    ctx.record("FIDO metadata BLOB", f"serial {loaded.serial}, {loaded.models} models")
    forger = MetadataService.create(now, name="not the metadata service")
    for what, token in (
        ("forged BLOB", forger.blob(8, today + timedelta(days=30), entries)),
        ("older BLOB", mds.blob(6, today + timedelta(days=30), entries)),
    ):
        try:
            store.load_blob(token, now)
        except VerificationError as exc:
            ctx.console.print(f"{drill(what)}: refused ({type(exc).__name__})")
    app = create_app(settings, clock=clock, ca=ca)
    outcomes = asyncio.run(_registrations(app, certified, revoked, unlisted))
    for what, response in outcomes:
        body = response.json()
        said = body.get("reason", body.get("aaguid", ""))
        ctx.console.print(f"{what}: HTTP {response.status_code} {said}")
    accepted = sum(1 for _, r in outcomes if r.status_code == 200)
    ctx.record(
        "FIDO operator registrations", f"{accepted} accepted, {len(outcomes) - accepted} refused"
    )


async def _registrations(
    app: Any,
    certified: SoftwareAuthenticator,
    revoked: SoftwareAuthenticator,
    unlisted: SoftwareAuthenticator,
) -> list[tuple[str, httpx.Response]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=_BASE_URL) as http:
        first, body = await _register(http, certified, "alice")
        replay = await http.post("/operators/fido/register", json=body)
        bolt, _ = await _register(http, revoked, "bob")
        cobalt, _ = await _register(http, unlisted, "carol")
    return [
        (f"alice registers a {certified.description}", first),
        (drill("the same registration replayed"), replay),
        (drill(f"bob registers a {revoked.description} (REVOKED)"), bolt),
        (drill(f"carol registers a {unlisted.description} (not in the metadata)"), cobalt),
    ]
