"""Registration of operators' authenticators: WebAuthn §7.1 around ``verify_attestation`` and the
metadata store, with a single-use challenge."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from sqlalchemy import Engine
from tests.fido_fixtures import NOW, makers

from fleetid import errors as e
from fleetid.authority.fido_metadata import FidoPolicy
from fleetid.authority.operator_keys import (
    CHALLENGE_TTL,
    OperatorRegistration,
    RelyingParty,
    load_relying_party,
    save_relying_party,
)
from fleetid.clock import ManualClock
from fleetid.formats.webauthn import FLAG_UP, b64url_encode
from fleetid.sim.demo_fido import (
    MetadataService,
    SoftwareAuthenticator,
    client_data,
    new_authenticator,
)
from fleetid.store.fido_repository import FidoRepository
from fleetid.store.migrate import upgrade

RP_ID = "operators.example.org"
ORIGIN = f"https://{RP_ID}"
TODAY = NOW.date()


@dataclass
class World:
    service: OperatorRegistration
    repository: FidoRepository
    clock: ManualClock
    certified: SoftwareAuthenticator
    revoked: SoftwareAuthenticator


@pytest.fixture
def world(engine: Engine) -> Iterator[World]:
    upgrade(engine)
    clock = ManualClock(NOW)
    made = makers()
    repository = FidoRepository(engine)
    party = RelyingParty(
        rp_id=RP_ID, origins=frozenset({ORIGIN}), policy=FidoPolicy(metadata_root=made.mds.root)
    )
    service = OperatorRegistration(repository, party, clock)
    service.metadata.load_blob(made.blob(), NOW)
    yield World(service, repository, clock, made.certified, made.revoked)


def _registration(
    world: World,
    authenticator: SoftwareAuthenticator | None = None,
    *,
    operator: str = "alice",
    origin: str = ORIGIN,
    rp_id: str = RP_ID,
    flags: int | None = None,
) -> tuple[bytes, bytes]:
    issued = world.service.begin(operator)
    data = client_data(issued.challenge, origin)
    authenticator = authenticator or world.certified
    kwargs = {} if flags is None else {"flags": flags}
    return authenticator.make_credential(rp_id, data, **kwargs), data


def test_a_registration_is_recorded(world: World) -> None:
    obj, data = _registration(world)
    recorded = world.service.finish(obj, data)
    assert recorded.operator == "alice"
    assert recorded.aaguid == str(world.certified.aaguid)
    assert recorded.fmt == "packed"
    assert world.repository.credentials_of("alice") == [recorded]


def test_a_replayed_challenge_is_refused(world: World) -> None:
    obj, data = _registration(world)
    world.service.finish(obj, data)
    again = world.certified.make_credential(RP_ID, data)  # a new credential, same challenge
    with pytest.raises(e.ChallengeReplayedError) as refused:
        world.service.finish(again, data)
    assert refused.value.reason == "challenge-replayed"
    assert len(world.repository.credentials_of("alice")) == 1


def test_a_challenge_not_issued_here_is_refused(world: World) -> None:
    data = client_data(b"\x07" * 32, ORIGIN)
    obj = world.certified.make_credential(RP_ID, data)
    with pytest.raises(e.ChallengeUnknownError):
        world.service.finish(obj, data)


def test_an_expired_challenge_is_refused(world: World) -> None:
    obj, data = _registration(world)
    world.clock.advance(CHALLENGE_TTL + timedelta(seconds=1))
    with pytest.raises(e.ChallengeExpiredError):
        world.service.finish(obj, data)
    assert world.repository.credentials_of("alice") == []


def test_a_refused_registration_leaves_its_challenge_unspent(world: World) -> None:
    issued = world.service.begin("bob")
    data = client_data(issued.challenge, ORIGIN)
    with pytest.raises(e.AuthenticatorStatusError):
        world.service.finish(world.revoked.make_credential(RP_ID, data), data)
    record = world.repository.challenge(issued.challenge)
    assert record is not None and record.used_at is None
    assert world.service.finish(world.certified.make_credential(RP_ID, data), data).operator == (
        "bob"
    )


def test_a_revoked_model_is_refused(world: World) -> None:
    obj, data = _registration(world, world.revoked)
    with pytest.raises(e.AuthenticatorStatusError, match="REVOKED"):
        world.service.finish(obj, data)


def test_an_unknown_model_is_refused(world: World) -> None:
    obj, data = _registration(world, new_authenticator("Cobalt Key", NOW))
    with pytest.raises(e.AuthenticatorUnknownError):
        world.service.finish(obj, data)


def test_another_origin_is_refused(world: World) -> None:
    obj, data = _registration(world, origin="https://phish.example.net")
    with pytest.raises(e.EvidenceMalformedError, match="origin"):
        world.service.finish(obj, data)


def test_another_rp_id_is_refused(world: World) -> None:
    obj, data = _registration(world, rp_id="example.net")
    with pytest.raises(e.EvidenceMalformedError, match="RP ID"):
        world.service.finish(obj, data)


def test_a_credential_without_user_verification_is_refused(world: World) -> None:
    obj, data = _registration(world, flags=FLAG_UP)
    with pytest.raises(e.EvidenceMalformedError, match="UV"):
        world.service.finish(obj, data)


def test_client_data_of_an_assertion_is_refused(world: World) -> None:
    issued = world.service.begin("alice")
    challenge = b64url_encode(issued.challenge)
    data = json.dumps({"type": "webauthn.get", "challenge": challenge, "origin": ORIGIN}).encode()
    obj = world.certified.make_credential(RP_ID, data)
    with pytest.raises(e.EvidenceMalformedError, match=r"webauthn\.create"):
        world.service.finish(obj, data)


@pytest.mark.parametrize("data", [b"\xff", b"[]", b'{"type": "webauthn.create"}'])
def test_client_data_that_is_not_a_registration_is_refused(world: World, data: bytes) -> None:
    obj = world.certified.make_credential(RP_ID, b"{}")
    with pytest.raises(e.EvidenceMalformedError):
        world.service.finish(obj, data)


def test_an_operator_needs_a_name(world: World) -> None:
    with pytest.raises(e.PolicyError):
        world.service.begin("")


def test_relying_party_configuration_round_trips(tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    mds = MetadataService.create(NOW)
    save_relying_party(tmp_path, RP_ID, [ORIGIN], mds.root)
    party = load_relying_party(tmp_path)
    assert (party.rp_id, party.origins, party.policy.metadata_root) == (
        RP_ID,
        frozenset({ORIGIN}),
        mds.root,
    )
    (tmp_path / "fido" / "metadata-root.pem").write_text("not a certificate")
    with pytest.raises(e.ConfigError):
        load_relying_party(tmp_path)


def _u2f_registration(client_data_json: bytes, flags: int) -> bytes:
    """A U2F authenticator's registration as a WebAuthn client presents it (§8.6): the U2F
    signature over 0x00 || rpIdHash || clientDataHash || keyHandle || publicKey."""
    import hashlib
    import uuid

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    from fido2.cose import CoseKey

    from fleetid.formats.webauthn import encode_attestation_object, encode_authenticator_data

    attestation_key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "U2F test")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(attestation_key.public_key())
        .serial_number(7)
        .not_valid_before(NOW - timedelta(days=1))
        .not_valid_after(NOW + timedelta(days=9))
        .sign(attestation_key, hashes.SHA256())
    )
    credential = ec.generate_private_key(ec.SECP256R1()).public_key()
    point = credential.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    rp_id_hash = hashlib.sha256(RP_ID.encode()).digest()
    key_handle = b"\x09" * 32
    signed = b"\x00" + rp_id_hash + hashlib.sha256(client_data_json).digest() + key_handle + point
    auth_data = encode_authenticator_data(
        rp_id_hash=rp_id_hash,
        flags=flags,
        sign_count=0,
        aaguid=uuid.UUID(int=0),
        credential_id=key_handle,
        credential_public_key=CoseKey.for_alg(-7).from_cryptography_key(credential),
    )
    statement = {
        "sig": attestation_key.sign(signed, ec.ECDSA(hashes.SHA256())),
        "x5c": [certificate.public_bytes(serialization.Encoding.DER)],
    }
    return encode_attestation_object("fido-u2f", statement, auth_data)


def test_fido_u2f_is_refused_where_user_verification_is_required(world: World) -> None:
    issued = world.service.begin("dave")
    data = client_data(issued.challenge, ORIGIN)
    with pytest.raises(e.AttestationTypeRefusedError, match="user verification"):
        world.service.finish(_u2f_registration(data, flags=0x45), data)  # UV claimed
    with pytest.raises(e.EvidenceMalformedError, match="UV"):
        world.service.finish(_u2f_registration(data, flags=0x41), data)


def test_a_cross_origin_registration_is_refused(world: World) -> None:
    issued = world.service.begin("alice")
    data = json.dumps(
        {
            "type": "webauthn.create",
            "challenge": b64url_encode(issued.challenge),
            "origin": ORIGIN,
            "crossOrigin": True,
        }
    ).encode()
    with pytest.raises(e.EvidenceMalformedError, match="cross-origin"):
        world.service.finish(world.certified.make_credential(RP_ID, data), data)


def test_backup_state_without_eligibility_is_refused(world: World) -> None:
    obj, data = _registration(world, flags=0x15)  # UP, UV, BS; BE clear
    with pytest.raises(e.EvidenceMalformedError, match="BS"):
        world.service.finish(obj, data)
