"""The relying party's check of a WebAuthn assertion (WebAuthn L3 §7.2) against its key.

``verify_assertion`` runs the steps that concern the authenticator's output (the client data
JSON, its challenge and origin are the caller's, steps 10-14): step 15 the rpIdHash is SHA-256
of the RP ID; step 16 UP is set; step 17 UV is set where the RP requires it; step 21 the
signature over authenticatorData ‖ SHA-256(clientDataJSON) verifies under the credential public
key (python-fido2's COSE table, ``fleetid.crypto.webauthn_signatures``); step 22 the signature
counter: when either the stored or the new value is not zero, the new one must be greater, or
the assertion is a replay or comes from a cloned authenticator. It returns the counter to store.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Mapping
from typing import Any

from fleetid.crypto.webauthn_signatures import cose_key_signature_valid
from fleetid.errors import AssertionCounterError, FidoAssertionError
from fleetid.formats.webauthn import FLAG_UP, FLAG_UV

__all__ = ["verify_assertion"]

_AUTH_DATA_MIN = 37  # rpIdHash (32) + flags (1) + signCount (4)


def verify_assertion(
    *,
    credential_public_key: Mapping[int, Any],
    rp_id: str,
    auth_data: bytes,
    client_data_hash: bytes,
    signature: bytes,
    stored_sign_count: int,
    require_user_verification: bool = False,
) -> int:
    """Verify one assertion (see the module docstring); return the new signature counter."""
    if len(auth_data) < _AUTH_DATA_MIN or len(client_data_hash) != 32:
        raise FidoAssertionError("authenticator data or client data hash too short")
    if auth_data[:32] != hashlib.sha256(rp_id.encode()).digest():
        raise FidoAssertionError(f"the assertion is not for RP ID {rp_id!r} (§7.2 step 15)")
    flags, count = struct.unpack(">BI", auth_data[32:37])
    if not flags & FLAG_UP:
        raise FidoAssertionError("the user was not present (§7.2 step 16)")
    if require_user_verification and not flags & FLAG_UV:
        raise FidoAssertionError("the user was not verified (§7.2 step 17)")
    if not cose_key_signature_valid(credential_public_key, auth_data + client_data_hash, signature):
        raise FidoAssertionError("the assertion signature does not verify (§7.2 step 21)")
    if (count or stored_sign_count) and count <= stored_sign_count:
        raise AssertionCounterError(
            f"signature counter {count} is not above {stored_sign_count} (§7.2 step 22)"
        )
    return int(count)
