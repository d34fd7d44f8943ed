"""IEEE 1609.2 / ETSI TS 103 097 encodings: our own ASN.1 text, compiled to canonical OER.

The public entry points other packages (and external checks) call are re-exported here.
"""

from __future__ import annotations

from fleetid.formats.ieee1609.certificate import (
    Certificate,
    certificate_hash_name,
    decode_certificate,
    encode_certificate,
    hashed_id8,
    hashed_id8_of,
    sign_certificate,
    verify_certificate_signature,
)
from fleetid.formats.ieee1609.codec import decode, encode
from fleetid.formats.ieee1609.signed_data import (
    SignedMessage,
    open_signed_data,
    sign_data,
    unsecured,
    verify_signed_data,
)
from fleetid.formats.ieee1609.tai_time import (
    datetime_from_time32,
    datetime_from_time64,
    time32,
    time64,
)

__all__ = [
    "Certificate",
    "SignedMessage",
    "certificate_hash_name",
    "datetime_from_time32",
    "datetime_from_time64",
    "decode",
    "decode_certificate",
    "encode",
    "encode_certificate",
    "hashed_id8",
    "hashed_id8_of",
    "open_signed_data",
    "sign_certificate",
    "sign_data",
    "time32",
    "time64",
    "unsecured",
    "verify_certificate_signature",
    "verify_signed_data",
]
