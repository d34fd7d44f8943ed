"""Fixtures for the V2X tests: a whole PKI per curve family, stations, message surgery."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetid.authority.v2x import FAMILIES
from fleetid.authority.v2x.hierarchy import V2xHierarchy, build_hierarchy
from fleetid.clock import ManualClock
from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import generate_key
from fleetid.device.v2x import ItsStation, PendingRequest, SoftwareV2xKeys
from fleetid.formats.etsi102941 import decrypt_with_key, open_pki_data
from fleetid.formats.ieee1609 import decode, encode
from fleetid.store.engine import Engine, memory_engine

__all__ = [
    "FAMILY_NAMES",
    "Pki",
    "memory_engine",
    "mutate",
    "new_pki",
    "response_code",
]

FAMILY_NAMES = ["nist", "brainpool"]


@dataclass
class Pki:
    hierarchy: V2xHierarchy
    clock: ManualClock
    ea_engine: Engine
    aa_engine: Engine

    @property
    def ea(self) -> Any:
        return self.hierarchy.ea

    @property
    def aa(self) -> Any:
        return self.hierarchy.aa

    def station(
        self, its_id: bytes = b"VIN-0001", *, register: bool = True, **kw: Any
    ) -> ItsStation:
        family = self.hierarchy.family
        canonical = SoftwareSigner(generate_key(family.end_entity))
        if register:
            self.ea.register_canonical_key(its_id, canonical.public_key())
        return ItsStation(
            its_id=its_id,
            canonical_key=canonical,
            keys=SoftwareV2xKeys(),
            family=family,
            trust=self.hierarchy.trust_store(),
            clock=self.clock,
            **kw,
        )

    def enrolled(self, its_id: bytes = b"VIN-0001", **kw: Any) -> ItsStation:
        station = self.station(its_id, **kw)
        station.enrol(self.ea.handle_enrolment)
        return station


def new_pki(family: str) -> Pki:
    clock = ManualClock()
    ea_engine, aa_engine = memory_engine(), memory_engine()
    hierarchy = build_hierarchy(
        family=FAMILIES[family], clock=clock, ea_engine=ea_engine, aa_engine=aa_engine
    )
    return Pki(hierarchy=hierarchy, clock=clock, ea_engine=ea_engine, aa_engine=aa_engine)


def response_code(pending: PendingRequest, response: bytes) -> str:
    """The responseCode of an encrypted, signed PKI response (signature checked)."""
    data = open_pki_data(
        decrypt_with_key(response, pending.aes_key), signer_kinds=frozenset({"digest"})
    )
    data.verify(pending.authority.verification_key(), pending.authority.encoded)
    return str(data.content[1]["responseCode"])


def mutate(type_name: str, data: bytes, change: Any) -> bytes:
    """Decode, let ``change`` edit the value in place, re-encode."""
    value = decode(type_name, data)
    change(value)
    return encode(type_name, value)
