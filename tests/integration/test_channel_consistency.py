"""THE consistency test: at any watermark, OCSP, CRLs (full + delta) and the offline filter
(full + delta) never disagree about any certificate.

One fleet CA (software HSM, SQLite) issues certificates; a seeded random history revokes some at
each step (various reasons, sometimes issuing more certificates, sometimes a new issuing-CA
generation). After each step every channel publishes from the registry:

* OCSP: the responder (``fleetid.revocation.ocsp``) answers a request per certificate, checked
  by the device's always-on step;
* CRL: every shard's full and delta CRL (``fleetid.revocation.crl``), loaded by an intermittent
  device that holds the CRLs of earlier steps too (full CRLs sometimes, deltas always);
* filter: a full filter or a cumulative delta (``fleetid.revocation.publish``), loaded by an
  offline device.

All three carry the same watermark; for every certificate the three verdicts equal the
registry's answer at that watermark, and the filter never answers NOT_COVERED for a certificate
issued before its coverage.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fleetid.authority.fleet_ca import FleetCa, crl_path, delta_crl_path
from fleetid.authority.lifecycle import roll_issuing_ca
from fleetid.authority.revoke import revoke_serial
from fleetid.clock import ManualClock
from fleetid.config import Settings
from fleetid.device.crl_client import CrlClient
from fleetid.device.truststore import TrustStore
from fleetid.device.verifier import PeerStatus, PeerVerifier
from fleetid.errors import CertificateRevokedError, VerificationError
from fleetid.policy import CredentialType
from fleetid.policy.connectivity import policy_for
from fleetid.revocation.check.ocsp import ocsp_request
from fleetid.revocation.crl import CrlKind, crl_watermark, publisher_for
from fleetid.revocation.ocsp import responder_for
from fleetid.revocation.publish import FilterPublisher
from fleetid.revocation.registry import CertificateState, RevocationRegistry, issuer_certificate

_REASONS = ("keyCompromise", "superseded", "cessationOfOperation", "affiliationChanged")
_STEPS = 6


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[FleetCa]:
    settings = Settings.load(tmp_path / "ca", environ={"FLEETID_PUBLIC_URL": "http://fleet.test"})
    authority = FleetCa.init(settings, clock=ManualClock(), name="Consistency Fleet")
    yield authority
    authority.close()


def _issue(ca: FleetCa, count: int) -> list[x509.Certificate]:
    out = []
    with ca.store.transaction() as tx:
        for index in range(count):
            certificate, _ = ca.issue(
                tx,
                public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
                credential_type=CredentialType.OPERATIONAL,
                common_name=f"device-{index}",
                device_id=None,
            )
            out.append(certificate)
    return out


def _verdict(device: PeerVerifier, certificate: x509.Certificate, **kw: bytes) -> str:
    try:
        verdict = device.assess(certificate, **kw)
    except CertificateRevokedError:
        return "revoked"
    assert verdict.acceptable, verdict.reason
    assert verdict.status is PeerStatus.VALID
    return "good"


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_three_channels_agree_at_every_watermark(ca: FleetCa, seed: int) -> None:
    rng = random.Random(seed)
    clock = ca.clock
    assert isinstance(clock, ManualClock)
    registry = RevocationRegistry(ca.store)
    certificates = _issue(ca, 24)
    issuers = [ca.issuing.certificate]
    filters = FilterPublisher.for_ca(ca, rebase_after=1000 if seed % 2 else 4)
    devices = {
        profile: PeerVerifier(
            trust=TrustStore([ca.root]), policy=policy_for(profile), clock=clock, issuers=issuers
        )
        for profile in ("always-on", "intermittent", "offline")
    }
    # A second intermittent device fetches on contact through the agent's CRL client.
    on_contact = PeerVerifier(
        trust=TrustStore([ca.root]), policy=policy_for("intermittent"), clock=clock
    )
    crl_fetches: dict[str, bytes] = {}
    clients: dict[x509.Name, CrlClient] = {}

    def contact_issuer(issuer: x509.Certificate) -> None:
        clients[issuer.subject] = CrlClient(
            issuer, fetch=crl_fetches.__getitem__, max_age=timedelta(days=7)
        )
        on_contact.use_crl_client(issuer, clients[issuer.subject])

    for issuer in issuers:
        contact_issuer(issuer)

    for step in range(_STEPS):
        if step == 3 and seed == 3:  # a rollover in one history: both generations in play
            ca = roll_issuing_ca(ca)
            filters.use_signer(ca.issuing.signer)
            for device in devices.values():
                device.add_issuer(ca.issuing.certificate)
            contact_issuer(ca.issuing.certificate)
        if rng.random() < 0.5:
            certificates += _issue(ca, rng.randint(1, 4))
        valid = [
            c
            for c in certificates
            if registry.status(_issuer_id(registry, c), c.serial_number).state
            is CertificateState.GOOD
        ]
        for victim in rng.sample(valid, k=min(len(valid), rng.randint(0, 4))):
            revoke_serial(ca.store, f"{victim.serial_number:x}", rng.choice(_REASONS), clock=clock)
        clock.advance(timedelta(minutes=rng.randint(6, 60)))  # past the filter's coverage margin

        watermark = registry.watermark()
        # OCSP: the responder re-signs what was revoked since it last looked.
        responder = responder_for(ca, registry=registry)
        assert responder.sync() == watermark
        # CRL: every shard, full when forced (or due), delta always after a revocation.
        crls = publisher_for(ca, registry=registry)
        publications = crls.publish(force=step == 0 or rng.random() < 0.4)
        issuing = {issuer.id for issuer in registry.issuers()}
        for publication in publications:
            assert publication.watermark == watermark
            if publication.issuer_id in issuing:  # the root CRL is for whole-chain checkers
                devices["intermittent"].load_crl(publication.der)
        for issuer in registry.issuers():
            for shard in range(crls.policy.shards):
                for kind in (CrlKind.FULL, CrlKind.DELTA):
                    latest = crls.latest(issuer.id, shard, kind)
                    assert latest is not None
                    assert crl_watermark(x509.load_der_x509_crl(latest.der)) == latest.watermark
                    path = (crl_path if kind is CrlKind.FULL else delta_crl_path)(
                        issuer.generation, shard
                    )
                    crl_fetches[ca.settings.base_url + path] = latest.der
        # Filter: a cumulative delta when one can follow the full filter (and the history does
        # not rebase here), else a new full filter.
        published = filters.publish_full() if rng.random() < 0.2 else filters.publish()
        assert published.watermark == watermark
        devices["offline"].load_filter(published.data)
        assert devices["offline"].filter_watermark == watermark

        for certificate in certificates:
            truth = registry.status(
                _issuer_id(registry, certificate), certificate.serial_number, watermark=watermark
            ).state.value
            issuer = _issuer_of(registry, certificate)
            answer = responder.respond(ocsp_request(certificate, issuer))
            by_ocsp = _verdict(devices["always-on"], certificate, ocsp_response=answer.der)
            by_crl = _verdict(devices["intermittent"], certificate)
            clients[issuer.subject].refresh(certificate, clock.now())
            by_crl_client = _verdict(on_contact, certificate)
            by_filter = _verdict(devices["offline"], certificate)
            assert (by_ocsp, by_crl, by_crl_client, by_filter) == (truth,) * 4, (
                f"step {step}, watermark {watermark}, serial {certificate.serial_number:x}"
            )


def _issuer_id(registry: RevocationRegistry, certificate: x509.Certificate) -> int:
    aki = certificate.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    for issuer in registry.issuers():
        if issuer.subject_key_id == aki.key_identifier:
            return issuer.id
    raise VerificationError("no issuer")


def _issuer_of(registry: RevocationRegistry, certificate: x509.Certificate) -> x509.Certificate:
    wanted = _issuer_id(registry, certificate)
    return next(issuer_certificate(i) for i in registry.issuers() if i.id == wanted)
