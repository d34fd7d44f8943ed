"""The public surface: each package's ``__all__`` is pinned here, so a change to what users may
import is a visible change to this file; every exported name resolves, lazily, to a documented
object, and importing a package loads none of its modules until a name is used."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PUBLIC = {
    "fleetid.device": [
        "AgentState",
        "AuthorityTransport",
        "BootedImage",
        "CamReceiver",
        "Credential",
        "CrlClient",
        "DeviceAgent",
        "HttpTransport",
        "ItsStation",
        "PeerStatus",
        "PeerVerdict",
        "PeerVerifier",
        "TrustStore",
        "boot",
    ],
    "fleetid.se": [
        "HostSession",
        "KeyInfo",
        "KeyUsage",
        "SecureElement",
        "SecureElementClient",
        "SecureElementSigner",
        "StaticKeys",
        "TamperEvent",
        "Transport",
        "VpcdBridge",
    ],
    "fleetid.sim": [
        "ManufacturedCard",
        "SoftwareLine",
        "Wafer",
        "manufacture_test_card",
        "run_demo",
    ],
    "fleetid.authority": [
        "EnrolmentService",
        "FleetCa",
        "LifecycleService",
        "escalate_serial",
        "lifecycle_service",
        "release_serial",
        "revoke_device",
        "revoke_serial",
        "roll_issuing_ca",
        "roll_root",
    ],
    "fleetid.factory": [
        "AuditLog",
        "AuditLogReader",
        "CeremonyConfig",
        "EventKind",
        "ProvisioningLine",
        "activate",
        "deactivate",
        "init_ceremony",
        "open_line",
        "personalise",
        "run_pool",
    ],
    "fleetid.revocation": [
        "CrlPublisher",
        "FilterPublisher",
        "FilterVerifier",
        "OcspResponder",
        "RevocationRegistry",
        "publisher_for",
        "verify_crl",
        "verify_ocsp_response",
    ],
    "fleetid.tpm": ["Swtpm", "TpmDevice", "TpmSigner", "read_certify"],
}


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_all_is_pinned(package: str) -> None:
    assert importlib.import_module(package).__all__ == PUBLIC[package]


@pytest.mark.parametrize(
    ("package", "name"), [(p, n) for p, names in sorted(PUBLIC.items()) for n in names]
)
def test_each_export_resolves_to_a_documented_object(package: str, name: str) -> None:
    value = getattr(importlib.import_module(package), name)
    assert (value.__doc__ or "").strip(), f"{package}.{name} has no docstring"


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_an_unknown_name_is_an_attribute_error(package: str) -> None:
    with pytest.raises(AttributeError, match="no attribute 'NotAThing'"):
        _ = importlib.import_module(package).NotAThing


def test_importing_a_package_loads_none_of_its_modules() -> None:
    """The exports load on first use: importing the packages pulls in no submodule, so that
    (for example) the relying party's checkers never drag in the publishers' SQLAlchemy."""
    script = (
        "import sys\n"
        f"packages = {sorted(PUBLIC)!r}\n"
        "for p in packages: __import__(p)\n"
        "loaded = [m for m in sys.modules if any(m.startswith(p + '.') for p in packages)]\n"
        "print(sorted(loaded))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip() == "[]", out
