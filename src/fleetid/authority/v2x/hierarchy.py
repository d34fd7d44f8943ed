"""A complete V2X PKI in one process: a Root CA, one EA and one AA, their CTL and CRL.

The CLI (``fleetid v2x init``), the demo, the benchmark and the tests build the same hierarchy
here. The authority keys are software keys unless a ``KeyFactory`` says otherwise (an HSM's
signers); each authority gets its own database engine, as separate operators would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from fleetid.authority.v2x.aa import AuthorizationAuthority
from fleetid.authority.v2x.common import AuthorityKeys
from fleetid.authority.v2x.ea import EnrolmentAuthority
from fleetid.authority.v2x.root_ca import RootCa
from fleetid.clock import Clock
from fleetid.crypto.signer import Signer, SoftwareSigner
from fleetid.crypto.v2xkeys import PrivateKey, generate_key
from fleetid.policy.v2x import CurveFamily
from fleetid.store.engine import Engine
from fleetid.trust.v2x import V2xTrustStore

__all__ = ["AA_URL", "EA_URL", "KeyFactory", "V2xHierarchy", "assemble", "build_hierarchy"]

EA_URL = "http://ea.fleetid.invalid/ea"
AA_URL = "http://aa.fleetid.invalid/aa"

#: (role, curve) -> a Signer holding a new key of that curve.
KeyFactory = Callable[[str, str], Signer]


def _software_signer(_role: str, curve: str) -> Signer:
    return SoftwareSigner(generate_key(curve))


@dataclass(kw_only=True)
class V2xHierarchy:
    """The authorities and what they publish."""

    family: CurveFamily
    clock: Clock
    root: RootCa
    ea: EnrolmentAuthority
    aa: AuthorizationAuthority
    ctl: bytes = field(repr=False)
    crl: bytes = field(repr=False)
    ctl_sequence: int = 0
    revoked: list[bytes] = field(default_factory=list)

    def trust_store(self) -> V2xTrustStore:
        """A relying party's view: the root, then the current CTL and CRL applied."""
        store = V2xTrustStore(self.root.certificate.encoded, clock=self.clock)
        store.apply_ctl(self.ctl)
        store.apply_crl(self.crl)
        return store

    def revoke_ca(self, cert_id: bytes) -> bytes:
        """Add a CA certificate to the CRL and re-publish it; returns the new CRL."""
        self.revoked.append(cert_id)
        self.crl = self.root.sign_crl(revoked=self.revoked)
        return self.crl

    def republish_ctl(self) -> bytes:
        self.ctl_sequence += 1
        self.ctl = self.root.sign_ctl(
            sequence=self.ctl_sequence,
            entries=[
                ("ea", self.ea.certificate, EA_URL),
                ("aa", self.aa.certificate, AA_URL),
            ],
        )
        return self.ctl


def build_hierarchy(
    *,
    family: CurveFamily,
    clock: Clock,
    ea_engine: Engine,
    aa_engine: Engine,
    key_factory: KeyFactory = _software_signer,
    decryption_key_factory: Callable[[str, str], PrivateKey] = lambda _role, curve: generate_key(
        curve
    ),
    ea_validity: timedelta = timedelta(days=4 * 365),
) -> V2xHierarchy:
    """Root CA, EA and AA on ``family``; the AA reaches the EA in-process."""
    root = RootCa.create(
        signer=key_factory("root", family.ca), name="fleetid-v2x-root", family=family, clock=clock
    )
    ea_keys, aa_keys = (
        root.issue_authority(
            role=role,
            name=f"fleetid-v2x-{role}",
            signer=key_factory(role, family.ca),
            decryption_key=decryption_key_factory(role, family.end_entity),
            lifetime=ea_validity,
        )
        for role in ("ea", "aa")
    )
    ctl = root.sign_ctl(
        sequence=0,
        entries=[("ea", ea_keys.certificate, EA_URL), ("aa", aa_keys.certificate, AA_URL)],
    )
    crl = root.sign_crl(revoked=[])
    return assemble(
        family=family,
        clock=clock,
        root=root,
        ea_keys=ea_keys,
        aa_keys=aa_keys,
        ctl=ctl,
        crl=crl,
        ea_engine=ea_engine,
        aa_engine=aa_engine,
    )


def assemble(
    *,
    family: CurveFamily,
    clock: Clock,
    root: RootCa,
    ea_keys: AuthorityKeys,
    aa_keys: AuthorityKeys,
    ctl: bytes,
    crl: bytes,
    ea_engine: Engine,
    aa_engine: Engine,
    ctl_sequence: int = 0,
    revoked: list[bytes] | None = None,
) -> V2xHierarchy:
    """The EA and AA over their keys and databases, each trusting the published CTL and CRL."""

    def trust() -> V2xTrustStore:
        store = V2xTrustStore(root.certificate.encoded, clock=clock)
        store.apply_ctl(ctl)
        store.apply_crl(crl)
        return store

    ea = EnrolmentAuthority(engine=ea_engine, keys=ea_keys, trust=trust(), clock=clock)
    aa = AuthorizationAuthority(
        engine=aa_engine,
        keys=aa_keys,
        trust=trust(),
        clock=clock,
        ea_transport=lambda _url, message: ea.handle_authorization_validation(message),
    )
    return V2xHierarchy(
        family=family,
        clock=clock,
        root=root,
        ea=ea,
        aa=aa,
        ctl=ctl,
        crl=crl,
        ctl_sequence=ctl_sequence,
        revoked=list(revoked or []),
    )
