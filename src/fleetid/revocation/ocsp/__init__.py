"""OCSP for always-connected devices, the authority's side (RFC 6960, RFC 5019/9919 profile):

* ``responder`` — the responder: pre-signed responses from the registry, nonces, HTTP caching;
* ``delegation`` — the delegated responder certificates of the issuing CAs and their files, and
  ``responder_for``, which assembles a fleet CA's responder.

The relying party's check is ``fleetid.revocation.check.ocsp``: it shares nothing with this
package but ``fleetid.formats.ocsp_certid``, so a device never imports the responder.
"""

from __future__ import annotations

from fleetid.revocation.ocsp.delegation import issue_responder, responder_for
from fleetid.revocation.ocsp.responder import (
    OCSP_REQUEST_TYPE,
    OCSP_RESPONSE_TYPE,
    DelegatedResponder,
    OcspAnswer,
    OcspPolicy,
    OcspResponder,
    decode_get_path,
)

__all__ = [
    "OCSP_REQUEST_TYPE",
    "OCSP_RESPONSE_TYPE",
    "DelegatedResponder",
    "OcspAnswer",
    "OcspPolicy",
    "OcspResponder",
    "decode_get_path",
    "issue_responder",
    "responder_for",
]
