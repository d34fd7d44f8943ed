"""A V2X hierarchy kept in a directory: what ``fleetid v2x init|publish|stats`` operate on.

Layout of ``<data-dir>/v2x/``::

    v2x.json         the curve family and the access points
    ca.db            the Root CA's certificates and publications (``RootCaRecords``)
    ea.db, aa.db     the EA's and the AA's own databases (separate operators, separate files)
    keys/<role>.p8   the authorities' private keys, PKCS#8 encrypted under the passphrase
                     (AES-256-CBC, PBKDF2; mode 0600): the software key store, as the software
                     HSM is; an HSM-backed deployment passes its signers instead
                     (``fleetid.authority.v2x.key_store``).

and the butterfly authorities beside them (``fleetid.authority.v2x.butterfly_on_disk``).

The passphrase comes from the caller (the CLI reads ``FLEETID_V2X_PASSPHRASE``); it is never
logged or stored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fleetid.authority.v2x.butterfly_on_disk import ButterflyStore, init_butterfly
from fleetid.authority.v2x.hierarchy import AA_URL, EA_URL, V2xHierarchy, assemble, build_hierarchy
from fleetid.authority.v2x.key_store import authority_keys, load_keys, signer_key, write_keys
from fleetid.authority.v2x.root_ca import RootCa
from fleetid.clock import Clock
from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import PrivateKey
from fleetid.errors import ConfigError, StoreError
from fleetid.formats.etsi102941 import open_pki_data
from fleetid.formats.ieee1609 import Certificate, decode_certificate, time32
from fleetid.policy.v2x import FAMILIES
from fleetid.store.engine import Engine, open_engine
from fleetid.store.v2x_repository import (
    CaCertificateRecord,
    Publication,
    PublicationKind,
    RootCaRecords,
    V2xCaRole,
)

__all__ = ["V2xStore", "has_v2x", "init_v2x", "open_v2x"]

_ROLES = ("root", "ea", "ea-enc", "aa", "aa-enc")


@dataclass(kw_only=True)
class V2xStore:
    """An opened on-disk hierarchy."""

    directory: Path
    hierarchy: V2xHierarchy
    ca_engine: Engine
    ea_engine: Engine
    aa_engine: Engine
    ca_records: RootCaRecords
    butterfly: ButterflyStore | None = None

    @classmethod
    def of(
        cls,
        directory: Path,
        hierarchy: V2xHierarchy,
        engines: tuple[Engine, Engine, Engine],
        records: RootCaRecords,
        butterfly: ButterflyStore | None = None,
    ) -> V2xStore:
        """The store of an opened hierarchy; ``engines`` are the Root CA's, EA's and AA's."""
        ca, ea, aa = engines
        return cls(
            directory=directory,
            hierarchy=hierarchy,
            ca_engine=ca,
            ea_engine=ea,
            aa_engine=aa,
            ca_records=records,
            butterfly=butterfly,
        )

    def close(self) -> None:
        for engine in (self.ca_engine, self.ea_engine, self.aa_engine):
            engine.dispose()
        if self.butterfly is not None:
            self.butterfly.close()

    def publish(self, *, revoke: tuple[bytes, ...] = ()) -> tuple[bytes, bytes]:
        """Mark ``revoke`` CA certificates revoked, then sign and store a new CTL and CRL;
        ``NotFoundError`` (nothing revoked) if one is not a certificate of this hierarchy."""
        records = self.ca_records
        revoked = records.revoke(revoke)
        last = records.latest(PublicationKind.CTL)
        h = self.hierarchy
        h.ctl_sequence = (0 if last is None else last.sequence) + 1
        h.revoked = revoked
        ctl = _sign_ctl(h)
        crl = h.root.sign_crl(revoked=revoked)
        h.ctl, h.crl = ctl, crl
        records.add_publications(_publications(h.ctl_sequence, ctl, crl))
        return ctl, crl

    def latest(self, kind: Literal["ctl", "crl"]) -> bytes:
        """The newest stored CTL or CRL (another process may have published since opening)."""
        publication = self.ca_records.latest(PublicationKind(kind))
        if publication is None:
            raise StoreError(f"no {kind} was ever published in {self.directory}")
        return publication.encoded

    def stats(self) -> dict[str, Any]:
        cas = self.ca_records.certificates()
        ecs, revoked_ecs = self.hierarchy.ea.records.credential_counts()
        return {
            "family": self.hierarchy.family.name,
            "root": self.hierarchy.root.certificate.hashed_id8.hex(),
            "ca_certificates": len(cas),
            "revoked_cas": sum(1 for ca in cas if ca.revoked),
            "ctl_sequence": self.hierarchy.ctl_sequence,
            "ecs_issued": ecs,
            "ecs_revoked": revoked_ecs,
            "ats_issued": self.hierarchy.aa.records.ticket_count(),
            "ea_counters": self.hierarchy.ea.counters.all(),
            "aa_counters": self.hierarchy.aa.counters.all(),
        }


def _publications(sequence: int, ctl: bytes, crl: bytes) -> list[Publication]:
    return [
        Publication(kind=PublicationKind.CTL, sequence=sequence, encoded=ctl),
        Publication(kind=PublicationKind.CRL, sequence=sequence, encoded=crl),
    ]


def _sign_ctl(h: V2xHierarchy) -> bytes:
    return h.root.sign_ctl(
        sequence=h.ctl_sequence,
        entries=[("ea", h.ea.certificate, EA_URL), ("aa", h.aa.certificate, AA_URL)],
    )


def _paths(data_dir: Path) -> tuple[Path, Path]:
    directory = Path(data_dir) / "v2x"
    return directory, directory / "keys"


def _engines(directory: Path) -> tuple[Engine, Engine, Engine]:
    return tuple(  # type: ignore[return-value]
        open_engine(f"sqlite:///{directory / name}") for name in ("ca.db", "ea.db", "aa.db")
    )


def init_v2x(data_dir: Path, *, family_name: str, passphrase: bytes, clock: Clock) -> V2xStore:
    """Create the hierarchy under ``<data_dir>/v2x``; refuses to overwrite one."""
    if family_name not in FAMILIES:
        raise ConfigError(f"unknown curve family {family_name} (nist or brainpool)")
    if len(passphrase) < 12:
        raise ConfigError("the key passphrase must have at least 12 characters")
    directory, keys_dir = _paths(data_dir)
    if (directory / "v2x.json").exists():
        raise ConfigError(f"{directory} already holds a V2X hierarchy")
    keys_dir.mkdir(parents=True, exist_ok=True)
    generated: dict[str, PrivateKey] = {}

    def signer(role: str, curve: str) -> SoftwareSigner:
        return SoftwareSigner(signer_key(generated)(role, curve))

    def decryption(role: str, curve: str) -> PrivateKey:
        return signer_key(generated)(f"{role}-enc", curve)

    family = FAMILIES[family_name]
    ca_engine, ea_engine, aa_engine = _engines(directory)
    hierarchy = build_hierarchy(
        family=family,
        clock=clock,
        ea_engine=ea_engine,
        aa_engine=aa_engine,
        key_factory=signer,
        decryption_key_factory=decryption,
    )
    butterfly = init_butterfly(directory, hierarchy, key_factory=signer_key(generated))
    write_keys(keys_dir, generated, passphrase)
    records = RootCaRecords(ca_engine)
    records.add_certificates(
        CaCertificateRecord(
            cert_id=certificate.hashed_id8,
            role=role,
            name=str(certificate.tbs["id"][1]),
            certificate=certificate.encoded,
            access_point=url,
            revoked=False,
        )
        for role, certificate, url in (
            (V2xCaRole.ROOT, hierarchy.root.certificate, None),
            (V2xCaRole.EA, hierarchy.ea.certificate, EA_URL),
            (V2xCaRole.AA, hierarchy.aa.certificate, AA_URL),
        )
    )
    records.add_publications(_publications(0, hierarchy.ctl, hierarchy.crl))
    (directory / "v2x.json").write_text(json.dumps({"family": family_name}) + "\n")
    return V2xStore.of(directory, hierarchy, (ca_engine, ea_engine, aa_engine), records, butterfly)


def has_v2x(data_dir: Path) -> bool:
    """Whether ``fleetid v2x init`` made a hierarchy under ``<data_dir>/v2x``."""
    return (_paths(data_dir)[0] / "v2x.json").is_file()


def open_v2x(data_dir: Path, *, passphrase: bytes, clock: Clock) -> V2xStore:
    """Open the hierarchy under ``<data_dir>/v2x`` with its latest CTL and CRL."""
    directory, keys_dir = _paths(data_dir)
    try:
        config = json.loads((directory / "v2x.json").read_text())
    except FileNotFoundError:
        raise ConfigError(f"no V2X hierarchy in {directory}; run fleetid v2x init") from None
    family = FAMILIES[config["family"]]
    keys = load_keys(keys_dir, _ROLES, passphrase)
    ca_engine, ea_engine, aa_engine = _engines(directory)
    records = RootCaRecords(ca_engine)
    registry = records.certificates()
    certificates = {str(r.role): decode_certificate(r.certificate) for r in registry}
    revoked = [r.cert_id for r in registry if r.revoked]
    latest: dict[str, tuple[int, bytes]] = {}
    for kind in PublicationKind:
        publication = records.latest(kind)
        if publication is None:
            raise StoreError(f"the V2X hierarchy in {directory} has no {kind}")
        latest[str(kind)] = (publication.sequence, publication.encoded)
    root = RootCa(
        signer=SoftwareSigner(keys["root"]),
        certificate=certificates["root"],
        family=family,
        clock=clock,
    )
    if _stale(latest["ctl"][1], clock) or _stale(latest["crl"][1], clock):
        # Past nextUpdate: nothing would trust them; sign current ones before anything else.
        sequence = latest["ctl"][0] + 1
        entries: list[tuple[Literal["ea", "aa"], Certificate, str]] = [
            ("ea", certificates["ea"], EA_URL),
            ("aa", certificates["aa"], AA_URL),
        ]
        latest["ctl"] = (sequence, root.sign_ctl(sequence=sequence, entries=entries))
        latest["crl"] = (sequence, root.sign_crl(revoked=revoked))
        records.add_publications(_publications(sequence, latest["ctl"][1], latest["crl"][1]))
    hierarchy = assemble(
        family=family,
        clock=clock,
        root=root,
        ea_keys=authority_keys(keys, "ea", certificates["ea"]),
        aa_keys=authority_keys(keys, "aa", certificates["aa"]),
        ctl=latest["ctl"][1],
        crl=latest["crl"][1],
        ea_engine=ea_engine,
        aa_engine=aa_engine,
        ctl_sequence=latest["ctl"][0],
        revoked=revoked,
    )
    return V2xStore.of(directory, hierarchy, (ca_engine, ea_engine, aa_engine), records)


def _stale(message: bytes, clock: Clock) -> bool:
    data = open_pki_data(message, signer_kinds=frozenset({"digest"}))
    body = data.content[1]
    return int(body["nextUpdate"]) <= time32(clock.now())
