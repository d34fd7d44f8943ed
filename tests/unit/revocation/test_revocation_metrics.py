"""What the revocation channels count: OCSP answers by cache outcome, and per channel the lag from
a revocation to the first artefact that carries it (exact, on a manual clock)."""

from __future__ import annotations

from datetime import timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from prometheus_client import REGISTRY
from tests.revocation_fixtures import issue, revoke

from fleetid.authority.fleet_ca import FleetCa
from fleetid.clock import ManualClock
from fleetid.revocation.crl import publisher_for
from fleetid.revocation.ocsp import responder_for
from fleetid.revocation.publish import FilterPublisher

DELAY = timedelta(seconds=90)


def _answers(cache: str) -> float:
    return REGISTRY.get_sample_value("fleetid_ocsp_responses_total", {"cache": cache}) or 0.0


def _lag(channel: str) -> tuple[float, float]:
    labels = {"channel": channel}
    name = "fleetid_revocation_publication_lag_seconds"
    count = REGISTRY.get_sample_value(f"{name}_count", labels) or 0.0
    return count, REGISTRY.get_sample_value(f"{name}_sum", labels) or 0.0


def _request(certificate: x509.Certificate, issuer: x509.Certificate, nonce: bool = False) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(
        certificate,
        issuer,
        hashes.SHA1(),  # noqa: S303 - the RFC 5019 CertID hash
    )
    if nonce:
        builder = builder.add_extension(x509.OCSPNonce(b"\x01" * 16), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def test_ocsp_answers_count_as_miss_hit_nonce_and_error(ca: FleetCa) -> None:
    responder = responder_for(ca)
    (certificate,) = issue(ca, 1)
    issuer = ca.issuing.certificate
    before = {k: _answers(k) for k in ("hit", "miss", "nonce", "error")}
    responder.respond(_request(certificate, issuer))  # signed now, cached
    responder.respond(_request(certificate, issuer))  # from the cache
    responder.respond(_request(certificate, issuer))
    responder.respond(_request(certificate, issuer, nonce=True))
    responder.respond(b"\x30\x03garbage")
    moved = {k: _answers(k) - before[k] for k in before}
    assert moved == {"miss": 1, "hit": 2, "nonce": 1, "error": 1}


def test_ocsp_sync_observes_each_revocation_lag(ca: FleetCa, clock: ManualClock) -> None:
    responder = responder_for(ca)
    first, second = issue(ca, 2)
    count, total = _lag("ocsp")
    revoke(ca, first)
    revoke(ca, second)
    clock.advance(DELAY)
    responder.sync()
    assert _lag("ocsp") == (count + 2, total + 2 * DELAY.total_seconds())
    responder.sync()  # nothing new: nothing observed again
    assert _lag("ocsp") == (count + 2, total + 2 * DELAY.total_seconds())


def test_a_delta_crl_observes_only_what_it_lists_first(ca: FleetCa, clock: ManualClock) -> None:
    publisher = publisher_for(ca)
    first, second = issue(ca, 2)
    publisher.publish(force=True)
    count, total = _lag("crl")
    revoke(ca, first)
    clock.advance(DELAY)
    publisher.publish()
    assert _lag("crl") == (count + 1, total + DELAY.total_seconds())
    revoke(ca, second)
    clock.advance(DELAY)
    publisher.publish()  # the first is listed again (cumulative delta), but not observed again
    assert _lag("crl") == (count + 2, total + 2 * DELAY.total_seconds())


def test_a_filter_observes_the_revocations_since_the_last_one(
    ca: FleetCa, clock: ManualClock
) -> None:
    publisher = FilterPublisher.for_ca(ca)
    first, second = issue(ca, 2)
    publisher.publish_full()
    count, total = _lag("filter")
    revoke(ca, first)
    revoke(ca, second)
    clock.advance(DELAY)
    publisher.publish()
    assert _lag("filter") == (count + 2, total + 2 * DELAY.total_seconds())
    clock.advance(DELAY)
    publisher.publish()  # nothing revoked since
    assert _lag("filter") == (count + 2, total + 2 * DELAY.total_seconds())
