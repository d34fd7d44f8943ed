"""Per-message-type profile checks (``fleetid.formats.ieee1609.profile``): every TS 102 941
message the authorities accept or emit, one refusal each, at ``open_pki_data`` (what every
receiver calls) so that a breach is refused before any signature is checked.

Messages are signed for real; each breach is built into the value before signing, so only the
profile check can refuse it.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest
from tests.v2x_fixtures import FAMILY_NAMES, Pki, new_pki

from fleetid.authority.v2x import RootCa
from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import generate_key
from fleetid.errors import ProfileError
from fleetid.formats.etsi102941 import (
    decrypt_with_key,
    encrypt_with_key,
    open_pki_data,
    sign_pki_data,
)
from fleetid.formats.ieee1609 import decode, encode, sign_data, time64
from fleetid.formats.ieee1609.profile import (
    PKI_PROFILES,
    check_encrypted,
    check_pki_content,
)

pytestmark = pytest.mark.parametrize("family", FAMILY_NAMES)

ANY_SIGNER = frozenset({"self", "digest", "certificate"})
HASH16 = bytes(range(16))


def _pki_and_station(family: str) -> tuple[Pki, Any]:
    pki = new_pki(family)
    station = pki.enrolled(b"VIN-PROFILE")
    station.request_tickets(1, pki.aa.handle_authorization)
    return pki, station


def _sign(pki: Pki, content: tuple[str, Any]) -> bytes:
    """Signed as an authority signs (digest signer, the psid of the content type)."""
    root = pki.hierarchy.root
    return sign_pki_data(
        content,
        root.signer,
        generation_time=time64(pki.clock.now()),
        signer_certificate=root.certificate.encoded,
    )


def _sign_with(pki: Pki, content: tuple[str, Any], *, psid: int, signer: str = "digest") -> bytes:
    """Signed with an explicit psid and signer kind (to break the outer profile)."""
    from fleetid.formats.etsi102941 import encode_etsi102941_data
    from fleetid.formats.ieee1609 import hashed_id8

    root = pki.hierarchy.root
    payload = {
        "data": {
            "protocolVersion": 3,
            "content": ("unsecuredData", encode_etsi102941_data(content)),
        }
    }
    header = {"psid": psid, "generationTime": time64(pki.clock.now())}
    if signer == "self":
        return sign_data(payload, header, root.signer)
    identifier: tuple[str, Any] = (
        ("digest", hashed_id8(root.certificate.encoded))
        if signer == "digest"
        else ("certificate", [root.certificate.value])
    )
    return sign_data(
        payload,
        header,
        root.signer,
        signer_identifier=identifier,
        signer_certificate=root.certificate.encoded,
    )


def _refused(message: bytes, match: str) -> None:
    with pytest.raises(ProfileError, match=match):
        open_pki_data(message, signer_kinds=ANY_SIGNER)


def _ctl_body(pki: Pki) -> dict[str, Any]:
    data = open_pki_data(pki.hierarchy.ctl, signer_kinds=frozenset({"digest"}))
    return copy.deepcopy(data.content[1])


def _crl_body(pki: Pki) -> dict[str, Any]:
    data = open_pki_data(pki.hierarchy.crl, signer_kinds=frozenset({"digest"}))
    return copy.deepcopy(data.content[1])


# ------------------------------------------------------------------ the authorities' output


def test_real_messages_pass_with_their_psids(family: str) -> None:
    pki, _ = _pki_and_station(family)
    ctl = open_pki_data(pki.hierarchy.ctl, signer_kinds=frozenset({"digest"}))
    crl = open_pki_data(pki.hierarchy.crl, signer_kinds=frozenset({"digest"}))
    assert ctl.message.header_info["psid"] == 624 == PKI_PROFILES[ctl.kind].psid
    assert crl.message.header_info["psid"] == 622 == PKI_PROFILES[crl.kind].psid
    family_ = pki.hierarchy.family
    successor = RootCa.create(
        signer=SoftwareSigner(generate_key(family_.ca)),
        name="successor",
        family=family_,
        clock=pki.clock,
    )
    link = open_pki_data(pki.hierarchy.root.link_to(successor), signer_kinds=ANY_SIGNER)
    assert link.message.header_info["psid"] == 624


# ------------------------------------------------------------------ InnerEcResponse


def test_ec_response_ok_without_certificate_is_refused(family: str) -> None:
    pki, _ = _pki_and_station(family)
    body = {"requestHash": HASH16, "responseCode": "ok"}
    _refused(_sign(pki, ("enrolmentResponse", body)), "ok and only with ok")


def test_ec_response_refusal_with_a_certificate_is_refused(family: str) -> None:
    pki, station = _pki_and_station(family)
    body = {
        "requestHash": HASH16,
        "responseCode": "deniedrequest",
        "certificate": station.enrolment_credential.value,
    }
    _refused(_sign(pki, ("enrolmentResponse", body)), "ok and only with ok")


def test_ec_response_with_a_ca_certificate_is_refused(family: str) -> None:
    pki, _ = _pki_and_station(family)
    for certificate, why in (
        (pki.hierarchy.root.certificate, "not self-signed"),
        (pki.ea.certificate, "no certIssuePermissions"),
    ):
        body = {"requestHash": HASH16, "responseCode": "ok", "certificate": certificate.value}
        _refused(_sign(pki, ("enrolmentResponse", body)), why)


def test_ec_response_signed_as_self_is_refused(family: str) -> None:
    pki, station = _pki_and_station(family)
    body = {
        "requestHash": HASH16,
        "responseCode": "ok",
        "certificate": station.enrolment_credential.value,
    }
    _refused(_sign_with(pki, ("enrolmentResponse", body), psid=623, signer="self"), "signer self")


def test_a_request_hash_of_another_size_is_refused(family: str) -> None:
    with pytest.raises(ProfileError, match="16 bytes"):
        check_pki_content(("enrolmentResponse", {"requestHash": HASH16[:15], "responseCode": "ok"}))


# ------------------------------------------------------------------ InnerAtResponse


def test_at_response_with_an_identified_certificate_is_refused(family: str) -> None:
    pki, station = _pki_and_station(family)
    ticket, _ = station.tickets[0]
    named = copy.deepcopy(ticket.value)
    named["toBeSigned"]["id"] = ("name", "VIN-PROFILE")  # an AT never names its vehicle
    body = {"requestHash": HASH16, "responseCode": "ok", "certificate": named}
    _refused(_sign(pki, ("authorizationResponse", body)), "id none")


def test_at_response_ok_without_certificate_is_refused(family: str) -> None:
    pki, station = _pki_and_station(family)
    ticket, _ = station.tickets[0]
    ok = {"requestHash": HASH16, "responseCode": "ok", "certificate": ticket.value}
    open_pki_data(_sign(pki, ("authorizationResponse", ok)), signer_kinds=ANY_SIGNER)  # passes
    del ok["certificate"]
    _refused(_sign(pki, ("authorizationResponse", ok)), "ok and only with ok")


def test_at_response_with_psid_other_than_623_is_refused(family: str) -> None:
    pki, station = _pki_and_station(family)
    ticket, _ = station.tickets[0]
    body = {"requestHash": HASH16, "responseCode": "ok", "certificate": ticket.value}
    _refused(_sign_with(pki, ("authorizationResponse", body), psid=36), "psid must be 623")


# ------------------------------------------------------------------ AuthorizationValidationResponse


def test_validation_ok_without_confirmed_attributes_is_refused(family: str) -> None:
    pki, _ = _pki_and_station(family)
    body = {"requestHash": HASH16, "responseCode": "ok"}
    _refused(_sign(pki, ("authorizationValidationResponse", body)), "only with ok")


def test_validation_refusal_with_confirmed_attributes_is_refused(family: str) -> None:
    pki, _ = _pki_and_station(family)
    body = {
        "requestHash": HASH16,
        "responseCode": "deniedpermissions",
        "confirmedSubjectAttributes": {"appPermissions": [{"psid": 36}]},
    }
    _refused(_sign(pki, ("authorizationValidationResponse", body)), "only with ok")


def test_validation_confirming_issue_permissions_is_refused(family: str) -> None:
    pki, _ = _pki_and_station(family)
    confirmed = {
        "appPermissions": [{"psid": 36}],
        "certIssuePermissions": copy.deepcopy(pki.aa.certificate.tbs["certIssuePermissions"]),
    }
    body = {"requestHash": HASH16, "responseCode": "ok", "confirmedSubjectAttributes": confirmed}
    _refused(_sign(pki, ("authorizationValidationResponse", body)), "certIssuePermissions")


# ------------------------------------------------------------------ CTL


def test_ctl_with_psid_623_is_refused(family: str) -> None:
    pki, _ = _pki_and_station(family)
    content = ("certificateTrustListRca", _ctl_body(pki))
    _refused(_sign_with(pki, content, psid=623), "psid must be 624")


def test_full_ctl_with_a_delete_is_refused(family: str) -> None:
    pki, _ = _pki_and_station(family)
    body = _ctl_body(pki)
    body["ctlCommands"].append(("delete", ("cert", bytes(8))))
    _refused(_sign(pki, ("certificateTrustListRca", body)), "no delete")


def test_rca_ctl_adding_a_root_is_refused(family: str) -> None:
    pki, _ = _pki_and_station(family)
    body = _ctl_body(pki)
    body["ctlCommands"].append(
        ("add", ("rca", {"selfsignedRootCa": pki.hierarchy.root.certificate.value}))
    )
    _refused(_sign(pki, ("certificateTrustListRca", body)), "does not add rca")


def test_ctl_signed_with_a_full_certificate_is_refused(family: str) -> None:
    pki, _ = _pki_and_station(family)
    content = ("certificateTrustListRca", _ctl_body(pki))
    _refused(_sign_with(pki, content, psid=624, signer="certificate"), "signer certificate")


# ------------------------------------------------------------------ CRL


def test_crl_with_psid_623_is_refused(family: str) -> None:
    pki, _ = _pki_and_station(family)
    content = ("certificateRevocationList", _crl_body(pki))
    _refused(_sign_with(pki, content, psid=623), "psid must be 622")


def test_crl_listing_a_certificate_twice_is_refused(family: str) -> None:
    pki, _ = _pki_and_station(family)
    body = _crl_body(pki)
    body["entries"] = [pki.aa.certificate.hashed_id8] * 2
    _refused(_sign(pki, ("certificateRevocationList", body)), "once")


def test_crl_whose_next_update_is_not_after_this_update_is_refused(family: str) -> None:
    pki, _ = _pki_and_station(family)
    body = _crl_body(pki)
    body["nextUpdate"] = body["thisUpdate"]
    _refused(_sign(pki, ("certificateRevocationList", body)), "nextUpdate follows")


# ------------------------------------------------------------------ link certificates


def test_link_certificate_with_psid_623_is_refused(family: str) -> None:
    pki, _ = _pki_and_station(family)
    link = {"expiryTime": 1, "certificateHash": ("sha384HashedData", bytes(48))}
    _refused(_sign_with(pki, ("singleSignedLinkCertificateRca", link), psid=623), "psid")


def test_link_certificate_with_a_reserved_hash_is_refused(family: str) -> None:
    pki, _ = _pki_and_station(family)
    link = {"expiryTime": 1, "certificateHash": ("reserved", bytes(32))}
    _refused(_sign(pki, ("singleSignedLinkCertificateRca", link)), "SHA-256 or SHA-384")


def test_double_signed_link_around_unsigned_data_is_refused(family: str) -> None:
    pki, _ = _pki_and_station(family)
    inner = {"protocolVersion": 3, "content": ("unsecuredData", b"not a link certificate")}
    _refused(_sign(pki, ("doubleSignedlinkCertificateRca", inner)), "wraps a signed link")


# ------------------------------------------------------------------ other types, recipients


def test_a_content_type_outside_the_pki_profile_is_refused(family: str) -> None:
    pki, _ = _pki_and_station(family)
    request = {"publicKeys": {"verificationKey": pki.ea.certificate.tbs["verifyKeyIndicator"][1]}}
    content = ("caCertificateRequest", {**request, "requestedSubjectAttributes": {}})
    _refused(_sign_with(pki, content, psid=623), "not a message")


def test_a_unicast_message_has_exactly_one_recipient(family: str) -> None:
    del family
    key = bytes(range(16))
    message = encrypt_with_key(b"secret", key)
    assert decrypt_with_key(message, key) == b"secret"
    value = decode("Ieee1609Dot2Data", message)
    value["content"][1]["recipients"] = value["content"][1]["recipients"] * 2
    doubled = encode("Ieee1609Dot2Data", value)
    with pytest.raises(ProfileError, match="exactly one recipient"):
        decrypt_with_key(doubled, key)
    with pytest.raises(ProfileError, match="exactly one recipient"):
        check_encrypted(value, unicast=True)
    check_encrypted(value, unicast=False)  # a broadcast may name several
    assert hashlib.sha256(doubled).digest() != hashlib.sha256(message).digest()
