"""Schemathesis hooks for ``test_openapi_conformance.py``: the EST routes take a raw
``application/pkcs10`` body (base64 DER, RFC 7030 §4.2.1) and the admin API's manufacturer
route a PEM root (``application/pem-certificate-chain``, RFC 8555 §9.1), which schemathesis has
no serializer for; the generated string is sent as its octets."""

from __future__ import annotations

from typing import Any

import schemathesis


@schemathesis.serializer("application/pkcs10", "application/pem-certificate-chain")
def raw_text(_context: Any, value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()
