"""Root CA publications and the relying party's trust store: CTL, CA CRL, link certificates."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from tests.v2x_fixtures import FAMILY_NAMES, Pki, new_pki

from fleetid.authority.v2x import FAMILIES, RootCa, V2xTrustStore
from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import generate_key
from fleetid.errors import PolicyError, ProfileError, VerificationError
from fleetid.formats.etsi102941 import open_pki_data, sign_pki_data
from fleetid.formats.ieee1609 import time32, time64

pytestmark = pytest.mark.parametrize("family", FAMILY_NAMES)


def fresh_store(pki: Pki) -> V2xTrustStore:
    return V2xTrustStore(pki.hierarchy.root.certificate.encoded, clock=pki.clock)


def other_root(pki: Pki) -> RootCa:
    family = pki.hierarchy.family
    return RootCa.create(
        signer=SoftwareSigner(generate_key(family.ca)),
        name="another-root",
        family=family,
        clock=pki.clock,
    )


def _ctl(pki: Pki, commands: list[Any], *, full: bool = True, sequence: int = 5) -> bytes:
    root = pki.hierarchy.root
    body = {
        "version": 1,
        "nextUpdate": time32(pki.clock.now() + timedelta(days=1)),
        "isFullCtl": full,
        "ctlSequence": sequence,
        "ctlCommands": commands,
    }
    return sign_pki_data(
        ("certificateTrustListRca", body),
        root.signer,
        generation_time=time64(pki.clock.now()),
        signer_certificate=root.certificate.encoded,
    )


# ------------------------------------------------------------------ the CTL


def test_ctl_lists_the_ea_and_aa(family: str) -> None:
    pki = new_pki(family)
    store = fresh_store(pki)
    assert store.apply_ctl(pki.hierarchy.ctl) == 2
    assert store.ca(pki.ea.certificate.hashed_id8, "ea").certificate == pki.ea.certificate
    assert store.ca(pki.aa.certificate.hashed_id8, "aa").access_point.endswith("/aa")
    data = open_pki_data(pki.hierarchy.ctl, signer_kinds=frozenset({"digest"}))
    assert data.signer_digest == pki.hierarchy.root.certificate.hashed_id8
    assert pki.hierarchy.root.certificate.value["toBeSigned"]["verifyKeyIndicator"][1][0] == (
        "ecdsaNistP384" if family == "nist" else "ecdsaBrainpoolP384r1"
    )


def test_role_mismatch_is_refused(family: str) -> None:
    pki = new_pki(family)
    store = pki.hierarchy.trust_store()
    with pytest.raises(VerificationError):
        store.ca(pki.ea.certificate.hashed_id8, "aa")


def test_ctl_from_an_untrusted_root_is_refused(family: str) -> None:
    pki = new_pki(family)
    stranger = other_root(pki)
    ctl = stranger.sign_ctl(sequence=0, entries=[])
    with pytest.raises(VerificationError, match="does not trust"):
        fresh_store(pki).apply_ctl(ctl)


def test_tampered_ctl_is_refused(family: str) -> None:
    pki = new_pki(family)
    ctl = bytearray(pki.hierarchy.ctl)
    ctl[-5] ^= 0x01  # inside the signature's s
    with pytest.raises(VerificationError):
        fresh_store(pki).apply_ctl(bytes(ctl))


def test_stale_ctl_is_refused(family: str) -> None:
    pki = new_pki(family)
    pki.clock.advance(timedelta(days=8))
    with pytest.raises(VerificationError, match="nextUpdate"):
        fresh_store(pki).apply_ctl(pki.hierarchy.ctl)


def test_ctl_must_be_newer(family: str) -> None:
    pki = new_pki(family)
    store = pki.hierarchy.trust_store()
    with pytest.raises(VerificationError, match="newer"):
        store.apply_ctl(pki.hierarchy.ctl)
    store.apply_ctl(pki.hierarchy.republish_ctl())


def test_rca_ctl_cannot_add_a_root(family: str) -> None:
    pki = new_pki(family)
    entry = ("rca", {"selfsignedRootCa": pki.hierarchy.root.certificate.value})
    with pytest.raises(ProfileError, match="rca"):
        fresh_store(pki).apply_ctl(_ctl(pki, [("add", entry)]))


def test_full_ctl_has_no_delete(family: str) -> None:
    pki = new_pki(family)
    with pytest.raises(ProfileError, match="delete"):
        fresh_store(pki).apply_ctl(_ctl(pki, [("delete", ("cert", bytes(8)))]))


def test_delta_ctl_deletes_an_aa(family: str) -> None:
    pki = new_pki(family)
    store = pki.hierarchy.trust_store()
    aa_id = pki.aa.certificate.hashed_id8
    store.apply_ctl(_ctl(pki, [("delete", ("cert", aa_id))], full=False, sequence=1))
    with pytest.raises(VerificationError):
        store.ca(aa_id, "aa")
    store.ca(pki.ea.certificate.hashed_id8, "ea")


# ------------------------------------------------------------------ the CA CRL


def test_crl_revokes_the_aa(family: str) -> None:
    pki = new_pki(family)
    store = pki.hierarchy.trust_store()
    aa_id = pki.aa.certificate.hashed_id8
    store.ca(aa_id, "aa")
    pki.clock.advance(timedelta(seconds=1))
    assert store.apply_crl(pki.hierarchy.revoke_ca(aa_id)) == 1
    with pytest.raises(VerificationError, match="revoked"):
        store.ca(aa_id, "aa")
    store.ca(pki.ea.certificate.hashed_id8, "ea")


def test_stale_crl_is_refused(family: str) -> None:
    pki = new_pki(family)
    pki.clock.advance(timedelta(days=8))
    store = V2xTrustStore(pki.hierarchy.root.certificate.encoded, clock=pki.clock)
    with pytest.raises(VerificationError, match="not current"):
        store.apply_crl(pki.hierarchy.crl)


def test_older_crl_is_refused(family: str) -> None:
    pki = new_pki(family)
    old = pki.hierarchy.crl
    pki.clock.advance(timedelta(hours=1))
    store = fresh_store(pki)
    store.apply_crl(pki.hierarchy.revoke_ca(pki.aa.certificate.hashed_id8))
    with pytest.raises(VerificationError, match="older"):
        store.apply_crl(old)


def test_crl_from_an_untrusted_root_is_refused(family: str) -> None:
    pki = new_pki(family)
    with pytest.raises(VerificationError):
        fresh_store(pki).apply_crl(other_root(pki).sign_crl(revoked=[]))


# ------------------------------------------------------------------ root rollover


def test_link_certificate_carries_trust_to_the_new_root(family: str) -> None:
    pki = new_pki(family)
    store = pki.hierarchy.trust_store()
    successor = other_root(pki)
    link = pki.hierarchy.root.link_to(successor)
    with pytest.raises(VerificationError):
        store.apply_ctl(successor.sign_ctl(sequence=0, entries=[]))
    store.apply_link_certificate(link, successor.certificate.encoded)
    assert successor.certificate.hashed_id8 in {r.hashed_id8 for r in store.roots}
    store.apply_ctl(successor.sign_ctl(sequence=0, entries=[]))


def test_link_certificate_for_another_root_is_refused(family: str) -> None:
    pki = new_pki(family)
    successor, impostor = other_root(pki), other_root(pki)
    link = pki.hierarchy.root.link_to(successor)
    with pytest.raises(VerificationError):
        fresh_store(pki).apply_link_certificate(link, impostor.certificate.encoded)


def test_link_certificate_from_an_untrusted_old_root_is_refused(family: str) -> None:
    pki = new_pki(family)
    stranger, successor = other_root(pki), other_root(pki)
    link = stranger.link_to(successor)
    with pytest.raises(VerificationError, match="does not trust"):
        fresh_store(pki).apply_link_certificate(link, successor.certificate.encoded)


def test_expired_link_certificate_is_refused(family: str) -> None:
    pki = new_pki(family)
    successor = other_root(pki)
    link = pki.hierarchy.root.link_to(successor, lifetime=timedelta(days=1))
    pki.clock.advance(timedelta(days=2))
    with pytest.raises(VerificationError, match="expired"):
        fresh_store(pki).apply_link_certificate(link, successor.certificate.encoded)


# ------------------------------------------------------------------ curve policy


def test_root_and_ca_keys_are_384_bit(family: str) -> None:
    pki = new_pki(family)
    fam = FAMILIES[family]
    with pytest.raises(PolicyError):
        RootCa.create(
            signer=SoftwareSigner(generate_key(fam.end_entity)),
            name="weak",
            family=fam,
            clock=pki.clock,
        )
    with pytest.raises(PolicyError):
        pki.hierarchy.root.issue_ca(
            role="aa",
            name="weak-aa",
            verification_key=generate_key(fam.end_entity).public_key(),
            encryption_key=generate_key(fam.end_entity).public_key(),
        )
    with pytest.raises(PolicyError):
        pki.hierarchy.root.issue_ca(
            role="aa",
            name="bad-ecies",
            verification_key=generate_key(fam.ca).public_key(),
            encryption_key=generate_key(fam.ca).public_key(),
        )
