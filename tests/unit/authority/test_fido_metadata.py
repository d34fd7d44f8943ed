"""The FIDO metadata store: MDS3 BLOBs (the specification's example, and BLOBs signed here) and
the trust decision after ``verify_attestation``."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from sqlalchemy import Engine
from tests.fido_fixtures import NOW, registration
from tests.vector_loader import vector_path

from fleetid import errors as e
from fleetid.authority.attestation.fido import verify_attestation
from fleetid.authority.fido_metadata import (
    REFUSED_STATUSES,
    FidoMetadataStore,
    FidoPolicy,
    model_key,
)
from fleetid.crypto.jws import verified_jws_payload
from fleetid.sim.demo_fido import (
    MetadataService,
    SoftwareAuthenticator,
    mds_entry,
    new_authenticator,
)
from fleetid.store.fido_repository import FidoRepository
from fleetid.store.migrate import upgrade

TODAY = NOW.date()
CERTIFIED = [("FIDO_CERTIFIED_L1", TODAY - timedelta(days=100))]


def _example() -> tuple[str, x509.Certificate]:
    root = x509.load_der_x509_certificate(
        vector_path("webauthn/mds3-example-root.der").read_bytes()
    )
    return vector_path("webauthn/mds3-example-blob.jwt").read_text().strip(), root


@pytest.fixture
def repository(engine: Engine) -> Iterator[FidoRepository]:
    upgrade(engine)
    yield FidoRepository(engine)


@pytest.fixture(scope="module")
def mds() -> MetadataService:
    return MetadataService.create(NOW)


@pytest.fixture(scope="module")
def key() -> SoftwareAuthenticator:
    return new_authenticator("Acme Key", NOW)


def _store(repository: FidoRepository, mds: MetadataService) -> FidoMetadataStore:
    return FidoMetadataStore(repository, FidoPolicy(metadata_root=mds.root))


def _registered(authenticator: SoftwareAuthenticator) -> object:
    obj = authenticator.make_credential("example.org", b"{}")
    return verify_attestation(obj, hashlib.sha256(b"{}").digest())


# --- the specification's example BLOB ---------------------------------------------------------


def test_example_blob_signature_and_chain_verify() -> None:
    token, root = _example()
    payload, (signer, *_) = verified_jws_payload(token, [root], datetime(2022, 1, 1, tzinfo=UTC))
    parsed = json.loads(payload)
    assert parsed["no"] == 15
    assert {e.get("aaguid") for e in parsed["entries"]} >= {"0132d110-bf4e-4208-a403-ab4f5f12efe5"}
    assert "EXAMPLE MDS3 SIGNING CERTIFICATE" in signer.subject.rfc4514_string()


def test_example_blob_with_a_changed_payload_is_forged() -> None:
    token, root = _example()
    header, payload, signature = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data["no"] = 16
    changed = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    with pytest.raises(e.MetadataBlobError, match="signature"):
        verified_jws_payload(
            f"{header}.{changed}.{signature}", [root], datetime(2022, 1, 1, tzinfo=UTC)
        )


def test_example_blob_is_refused_under_another_root(mds: MetadataService) -> None:
    token, _ = _example()
    with pytest.raises(e.MetadataBlobError, match="chain"):
        verified_jws_payload(token, [mds.root], datetime(2022, 1, 1, tzinfo=UTC))


def test_example_blob_is_stale_whenever_it_verifies(repository: FidoRepository) -> None:
    """Its nextUpdate (2020-03-30) is before its signer was issued (2021-04-19)."""
    token, root = _example()
    store = FidoMetadataStore(repository, FidoPolicy(metadata_root=root))
    with pytest.raises(e.MetadataStaleError, match="2020-03-30"):
        store.load_blob(token, datetime(2022, 1, 1, tzinfo=UTC))
    with pytest.raises(e.MetadataBlobError):  # before the signer's validity: no chain
        store.load_blob(token, datetime(2020, 3, 1, tzinfo=UTC))
    assert repository.newest_blob() is None


# --- loading BLOBs ----------------------------------------------------------------------------


def test_a_blob_loads_its_models(
    repository: FidoRepository, mds: MetadataService, key: SoftwareAuthenticator
) -> None:
    store = _store(repository, mds)
    loaded = store.load_blob(
        mds.blob(3, TODAY + timedelta(days=30), [mds_entry(key, CERTIFIED)]), NOW
    )
    assert (loaded.serial, loaded.models) == (3, 1)
    model = repository.model(str(key.aaguid))
    assert model is not None and model.status == "FIDO_CERTIFIED_L1"
    assert x509.load_pem_x509_certificates(model.roots_pem.encode()) == [key.root]


def test_a_forged_blob_is_refused_and_the_models_stay(
    repository: FidoRepository, mds: MetadataService, key: SoftwareAuthenticator
) -> None:
    store = _store(repository, mds)
    store.load_blob(mds.blob(3, TODAY + timedelta(days=30), [mds_entry(key, CERTIFIED)]), NOW)
    forger = MetadataService.create(NOW, name="forger")
    with pytest.raises(e.MetadataBlobError):
        store.load_blob(forger.blob(4, TODAY + timedelta(days=30), []), NOW)
    newest = repository.newest_blob()
    assert newest is not None and newest.serial == 3
    assert repository.model(str(key.aaguid)) is not None


# --- the BLOB's chain against its issuers' CRLs (MDS3 §3.2, RFC 5280 §6.3) --------------------


@pytest.fixture(scope="module")
def mds_with_crl() -> MetadataService:
    return MetadataService.create(NOW, name="revocable", crl_url="http://mds.example/root.crl")


def _blob(mds: MetadataService, key: SoftwareAuthenticator) -> str:
    return mds.blob(5, TODAY + timedelta(days=30), [mds_entry(key, CERTIFIED)])


def test_a_signer_with_a_crl_point_loads_with_a_current_crl(
    repository: FidoRepository, mds_with_crl: MetadataService, key: SoftwareAuthenticator
) -> None:
    crl = mds_with_crl.crl(NOW - timedelta(hours=1), NOW + timedelta(days=7))
    loaded = _store(repository, mds_with_crl).load_blob(_blob(mds_with_crl, key), NOW, [crl])
    assert loaded.serial == 5


def test_a_signer_with_a_crl_point_and_no_crl_is_refused(
    repository: FidoRepository, mds_with_crl: MetadataService, key: SoftwareAuthenticator
) -> None:
    with pytest.raises(e.MetadataBlobError, match="no current CRL"):
        _store(repository, mds_with_crl).load_blob(_blob(mds_with_crl, key), NOW)
    assert repository.newest_blob() is None


def test_a_revoked_signer_is_refused(
    repository: FidoRepository, mds_with_crl: MetadataService, key: SoftwareAuthenticator
) -> None:
    crl = mds_with_crl.crl(NOW - timedelta(hours=1), NOW + timedelta(days=7), revoke_signer=True)
    with pytest.raises(e.MetadataBlobError, match="revoked"):
        _store(repository, mds_with_crl).load_blob(_blob(mds_with_crl, key), NOW, [crl])
    assert repository.newest_blob() is None


def test_a_stale_a_future_or_a_foreign_crl_does_not_count(
    repository: FidoRepository,
    mds_with_crl: MetadataService,
    mds: MetadataService,
    key: SoftwareAuthenticator,
) -> None:
    stale = mds_with_crl.crl(NOW - timedelta(days=8), NOW - timedelta(days=1))
    future = mds_with_crl.crl(NOW + timedelta(hours=1), NOW + timedelta(days=7))
    foreign = mds.crl(NOW - timedelta(hours=1), NOW + timedelta(days=7))
    store = _store(repository, mds_with_crl)
    for crl in (stale, future, foreign):
        with pytest.raises(e.MetadataBlobError, match="no current CRL"):
            store.load_blob(_blob(mds_with_crl, key), NOW, [crl])
    with pytest.raises(e.MetadataBlobError, match="not DER"):
        store.load_blob(_blob(mds_with_crl, key), NOW, [b"not a CRL"])


def test_a_blob_whose_serial_goes_backwards_is_refused(
    repository: FidoRepository, mds: MetadataService, key: SoftwareAuthenticator
) -> None:
    store = _store(repository, mds)
    store.load_blob(mds.blob(5, TODAY + timedelta(days=30), [mds_entry(key, CERTIFIED)]), NOW)
    for serial in (4, 5):
        with pytest.raises(e.MetadataRollbackError):
            store.load_blob(mds.blob(serial, TODAY + timedelta(days=30), []), NOW)
    assert repository.model(str(key.aaguid)) is not None
    store.load_blob(mds.blob(6, TODAY + timedelta(days=30), []), NOW)
    assert repository.model(str(key.aaguid)) is None  # the newer BLOB no longer lists it


def test_a_blob_past_its_next_update_is_refused(
    repository: FidoRepository, mds: MetadataService
) -> None:
    store = _store(repository, mds)
    with pytest.raises(e.MetadataStaleError):
        store.load_blob(mds.blob(1, TODAY - timedelta(days=1), []), NOW)
    store.load_blob(mds.blob(1, TODAY, []), NOW)  # current through the end of its day


def test_a_payload_that_is_not_mds3_is_refused(
    repository: FidoRepository, mds: MetadataService
) -> None:
    from fleetid.crypto.jws import sign_jws

    token = sign_jws(b'{"no": "x"}', mds.signing_key, [mds.signing_certificate])
    with pytest.raises(e.MetadataBlobError, match="MDS3"):
        _store(repository, mds).load_blob(token, NOW)


def test_garbage_is_not_a_blob(repository: FidoRepository, mds: MetadataService) -> None:
    with pytest.raises(e.MetadataBlobError):
        _store(repository, mds).load_blob("not.a.jws", NOW)


# --- the trust decision -----------------------------------------------------------------------


def _loaded(
    repository: FidoRepository, mds: MetadataService, *entries: dict[str, object]
) -> FidoMetadataStore:
    store = _store(repository, mds)
    store.load_blob(mds.blob(1, TODAY + timedelta(days=30), list(entries)), NOW)
    return store


def test_a_certified_model_is_trusted(
    repository: FidoRepository, mds: MetadataService, key: SoftwareAuthenticator
) -> None:
    store = _loaded(repository, mds, mds_entry(key, CERTIFIED))
    model = store.check(_registered(key), NOW)  # type: ignore[arg-type]
    assert model.model == str(key.aaguid)


def test_an_unknown_aaguid_is_refused(
    repository: FidoRepository, mds: MetadataService, key: SoftwareAuthenticator
) -> None:
    store = _loaded(repository, mds, mds_entry(key, CERTIFIED))
    stranger = new_authenticator("Stranger Key", NOW)
    with pytest.raises(e.AuthenticatorUnknownError) as refused:
        store.check(_registered(stranger), NOW)  # type: ignore[arg-type]
    assert refused.value.reason == "authenticator-unknown"


@pytest.mark.parametrize("status", sorted(REFUSED_STATUSES))
def test_a_refused_status_refuses_the_model(
    repository: FidoRepository, mds: MetadataService, key: SoftwareAuthenticator, status: str
) -> None:
    history = [*CERTIFIED, (status, TODAY - timedelta(days=10))]
    store = _loaded(repository, mds, mds_entry(key, history))
    with pytest.raises(e.AuthenticatorStatusError) as refused:
        store.check(_registered(key), NOW)  # type: ignore[arg-type]
    assert refused.value.status == status
    assert refused.value.reason == "authenticator-status"


def test_a_fix_announced_after_a_bypass_does_not_restore_trust(
    repository: FidoRepository, mds: MetadataService, key: SoftwareAuthenticator
) -> None:
    history = [
        *CERTIFIED,
        ("USER_VERIFICATION_BYPASS", TODAY - timedelta(days=50)),
        ("UPDATE_AVAILABLE", TODAY - timedelta(days=20)),
    ]
    store = _loaded(repository, mds, mds_entry(key, history))
    with pytest.raises(e.AuthenticatorStatusError, match="USER_VERIFICATION_BYPASS"):
        store.check(_registered(key), NOW)  # type: ignore[arg-type]


def test_an_update_available_alone_is_trusted(
    repository: FidoRepository, mds: MetadataService, key: SoftwareAuthenticator
) -> None:
    history = [*CERTIFIED, ("UPDATE_AVAILABLE", TODAY - timedelta(days=20))]
    store = _loaded(repository, mds, mds_entry(key, history))
    assert store.check(_registered(key), NOW).status == "UPDATE_AVAILABLE"  # type: ignore[arg-type]


def test_an_attestation_from_another_maker_under_a_known_aaguid_is_refused(
    repository: FidoRepository, mds: MetadataService, key: SoftwareAuthenticator
) -> None:
    store = _loaded(repository, mds, mds_entry(key, CERTIFIED))
    impostor = new_authenticator("Impostor", NOW, aaguid=key.aaguid)
    with pytest.raises(e.UnknownManufacturerError):
        store.check(_registered(impostor), NOW)  # type: ignore[arg-type]


def test_no_blob_means_no_trust(
    repository: FidoRepository, mds: MetadataService, key: SoftwareAuthenticator
) -> None:
    with pytest.raises(e.MetadataStaleError):
        _store(repository, mds).check(_registered(key), NOW)  # type: ignore[arg-type]


def test_a_blob_gone_stale_means_no_trust(
    repository: FidoRepository, mds: MetadataService, key: SoftwareAuthenticator
) -> None:
    store = _loaded(repository, mds, mds_entry(key, CERTIFIED))
    with pytest.raises(e.MetadataStaleError):
        store.check(_registered(key), NOW + timedelta(days=40))  # type: ignore[arg-type]


def test_a_u2f_model_is_found_by_its_key_identifier(
    repository: FidoRepository, mds: MetadataService
) -> None:
    """The published U2F registration (AAGUID zero), listed by its certificate's key id; its
    maker's root is not among the vectors, so the trust path is then refused, by that rule."""
    vector = registration("fido-u2f")
    attestation = verify_attestation(vector.attestation_object, vector.client_data_hash)
    leaf = attestation.trust_path[0]
    ski = x509.SubjectKeyIdentifier.from_public_key(leaf.public_key()).digest  # type: ignore[arg-type]
    entry = mds_entry(new_authenticator("Some root", NOW), CERTIFIED)
    del entry["aaguid"]
    entry["attestationCertificateKeyIdentifiers"] = [ski.hex()]
    store = _loaded(repository, mds, entry)
    assert repository.model(model_key(None, ski)) is not None
    with pytest.raises(e.UnknownManufacturerError):
        store.check(attestation, datetime(2019, 6, 1, tzinfo=UTC))


def test_model_key_names() -> None:
    aaguid = uuid.uuid4()
    assert model_key(aaguid) == str(aaguid)
    assert model_key(uuid.UUID(int=0), b"\xab\xcd") == "ski:abcd"
    with pytest.raises(e.AuthenticatorUnknownError):
        model_key(uuid.UUID(int=0))


def test_policy_refuses_formats_it_does_not_know(mds: MetadataService) -> None:
    with pytest.raises(e.ConfigError):
        FidoPolicy(metadata_root=mds.root, formats=frozenset({"apple"}))


@pytest.mark.parametrize(
    "payload",
    [
        b"null",
        b'{"legalHeader": "x", "no": "1", "nextUpdate": "2030-01-01", "entries": []}',
        b'{"legalHeader": "x", "no": 1, "nextUpdate": "2030-01-01", "entries": [{"aaguid": 1}]}',
        b'{"legalHeader": "x", "no": 1, "nextUpdate": "someday", "entries": []}',
    ],
)
def test_a_signed_payload_of_the_wrong_shape_is_refused(
    repository: FidoRepository, mds: MetadataService, payload: bytes
) -> None:
    from fleetid.crypto.jws import sign_jws

    token = sign_jws(payload, mds.signing_key, [mds.signing_certificate])
    with pytest.raises(e.MetadataBlobError, match="MDS3"):
        _store(repository, mds).load_blob(token, NOW)
    assert repository.newest_blob() is None


def test_a_shared_root_needs_the_aaguid_extension(
    repository: FidoRepository, mds: MetadataService
) -> None:
    """A revoked model and a certified one under one root: the revoked model's certificate,
    which names no model, cannot pass as the certified one by writing its AAGUID in authData."""
    from fleetid.sim.demo_fido import new_maker

    maker = new_maker("Shared", NOW)
    certified = new_authenticator("Good", NOW, maker=maker)
    revoked = new_authenticator("Bad", NOW, maker=maker, named=False)
    impostor = new_authenticator("Bad", NOW, aaguid=certified.aaguid, named=False, maker=maker)
    store = _loaded(
        repository,
        mds,
        mds_entry(certified, CERTIFIED),
        mds_entry(revoked, [("REVOKED", TODAY - timedelta(days=1))]),
    )
    assert store.check(_registered(certified), NOW).model == str(certified.aaguid)  # type: ignore[arg-type]
    with pytest.raises(e.AuthenticatorUnknownError, match="cannot be told"):
        store.check(_registered(impostor), NOW)  # type: ignore[arg-type]


def test_an_unnamed_certificate_under_its_own_root_is_trusted(
    repository: FidoRepository, mds: MetadataService
) -> None:
    alone = new_authenticator("Alone", NOW, named=False)
    store = _loaded(repository, mds, mds_entry(alone, CERTIFIED))
    assert store.check(_registered(alone), NOW).model == str(alone.aaguid)  # type: ignore[arg-type]
