"""The crypto fence: cryptographic operations happen only inside the boundaries.

Sign, verify, encrypt, decrypt, derive and key agreement are called only in ``fleetid.crypto``,
``fleetid.se``, ``fleetid.hsm``, ``fleetid.tpm`` and the template fence
``fleetid.formats.x509_sign``. Everywhere else ``cryptography`` is used for key types,
serialization, hashes named as algorithms and X.509 parsing and building, and the operations go
through the interfaces (``Signer``, ``fleetid.crypto.pkix`` and friends). import-linter cannot see
below a third-party package's top level, so this walks the syntax trees: what a module imports
from ``cryptography`` and which of the library's operation methods it calls.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[3] / "src" / "fleetid"
INSIDE = ("crypto/", "se/", "hsm/", "tpm/", "formats/x509_sign.py")

# Modules that hold primitives, not types: importing one means doing cryptography here.
OPERATION_MODULES = (
    "cryptography.hazmat.primitives.ciphers",
    "cryptography.hazmat.primitives.cmac",
    "cryptography.hazmat.primitives.hmac",
    "cryptography.hazmat.primitives.kdf",
    "cryptography.hazmat.primitives.keywrap",
    "cryptography.hazmat.primitives.padding",
    "cryptography.hazmat.primitives.asymmetric.utils",
    "cryptography.x509.verification",
)
OPERATION_NAMES = frozenset({"InvalidSignature", "ECDSA", "ECDH", "generate_private_key"})
# Methods of pyca objects that verify, sign or agree: never ours by these names.
OPERATION_METHODS = frozenset(
    {"verify_directly_issued_by", "is_signature_valid", "exchange", "generate_private_key"}
)


def _outside() -> list[Path]:
    return sorted(
        path for path in SRC.rglob("*.py") if not str(path.relative_to(SRC)).startswith(INSIDE)
    )


def _is_operation(node: ast.Attribute, called: set[int]) -> bool:
    if node.attr in OPERATION_METHODS:
        return True
    # ``ec.ECDSA(...)`` / ``ec.ECDH()`` made to sign or agree; as a type annotation it is a name.
    return (
        node.attr in OPERATION_NAMES
        and id(node) in called
        and isinstance(node.value, ast.Name)
        and node.value.id == "ec"
    )


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith(OPERATION_MODULES):
                found.append(f"line {node.lineno}: imports {node.module}")
            elif node.module.startswith("cryptography"):
                names = {alias.name for alias in node.names} & OPERATION_NAMES
                found.extend(f"line {node.lineno}: imports {name}" for name in sorted(names))
        elif isinstance(node, ast.Import):
            found.extend(
                f"line {node.lineno}: imports {alias.name}"
                for alias in node.names
                if alias.name.startswith(OPERATION_MODULES)
            )
        elif isinstance(node, ast.Attribute) and _is_operation(node, called):
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


def test_the_walk_sees_the_tree() -> None:
    assert len(_outside()) > 100  # the scan is not silently empty


@pytest.mark.parametrize("path", _outside(), ids=lambda p: str(p.relative_to(SRC)))
def test_no_cryptographic_operation_outside_the_boundaries(path: Path) -> None:
    assert _violations(path) == []


def test_the_fence_sees_each_kind_of_operation(tmp_path: Path) -> None:
    """The scan finds each kind of forbidden use (so that its silence means something)."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from cryptography.exceptions import InvalidSignature\n"
        "from cryptography.hazmat.primitives.ciphers import Cipher\n"
        "from cryptography.hazmat.primitives.asymmetric import ec\n"
        "key = ec.generate_private_key(ec.SECP256R1())\n"
        "key.exchange(ec.ECDH(), other)\n"
        "child.verify_directly_issued_by(parent)\n"
        "crl.is_signature_valid(public)\n"
        "public.verify(signature, data, ec.ECDSA(hash))\n"
        "def exchange(self, algorithm: ec.ECDH, peer: object) -> bytes: ...\n"
    )
    found = " ".join(_violations(sample))
    assert "line 9" not in found  # a type annotation is not an operation
    for expected in (
        "InvalidSignature",
        "ciphers",
        ".generate_private_key",
        ".exchange",
        ".ECDH",
        ".verify_directly_issued_by",
        ".is_signature_valid",
        ".ECDSA",
    ):
        assert expected in found, expected
