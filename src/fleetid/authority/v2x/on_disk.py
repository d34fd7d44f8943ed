"""A V2X hierarchy kept in a directory: what ``fleetid v2x init|publish|stats`` operate on.

Layout of ``<data-dir>/v2x/``::

    v2x.json         the curve family and the access points
    ca.db            the Root CA's certificates and publications (``ca_metadata``)
    ea.db, aa.db     the EA's and the AA's own databases (separate operators, separate files)
    keys/<role>.p8   the authorities' private keys, PKCS#8 encrypted under the passphrase
                     (AES-256-CBC, PBKDF2; mode 0600): the software key store, as the software
                     HSM is; an HSM-backed deployment passes its signers instead.

The passphrase comes from the caller (the CLI reads ``FLEETID_V2X_PASSPHRASE``); it is never
logged or stored.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.hazmat.primitives import serialization
from sqlalchemy import Engine, func, insert, select, update

from fleetid.authority.v2x.common import AuthorityKeys
from fleetid.authority.v2x.hierarchy import AA_URL, EA_URL, V2xHierarchy, assemble, build_hierarchy
from fleetid.authority.v2x.root_ca import RootCa
from fleetid.clock import Clock
from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import PrivateKey, generate_key
from fleetid.errors import ConfigError, PolicyError
from fleetid.formats.etsi102941 import open_pki_data
from fleetid.formats.ieee1609 import Certificate, decode_certificate, time32
from fleetid.policy.v2x import FAMILIES
from fleetid.store.engine import open_engine
from fleetid.store.v2x_tables import (
    aa_issued_tickets,
    ca_certificates,
    ca_metadata,
    ca_publications,
    ea_enrolment_credentials,
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

    def close(self) -> None:
        for engine in (self.ca_engine, self.ea_engine, self.aa_engine):
            engine.dispose()

    def publish(self, *, revoke: tuple[bytes, ...] = ()) -> tuple[bytes, bytes]:
        """Mark ``revoke`` CA certificates revoked, then sign and store a new CTL and CRL."""
        with self.ca_engine.begin() as conn:
            for cert_id in revoke:
                done = conn.execute(
                    update(ca_certificates)
                    .where(ca_certificates.c.cert_id == cert_id)
                    .values(revoked=True)
                )
                if done.rowcount != 1:
                    raise PolicyError(f"no CA certificate {cert_id.hex()} in this hierarchy")
            revoked = [
                bytes(r.cert_id)
                for r in conn.execute(select(ca_certificates).where(ca_certificates.c.revoked))
            ]
            last = conn.execute(
                select(func.max(ca_publications.c.sequence)).where(ca_publications.c.kind == "ctl")
            ).scalar()
        h = self.hierarchy
        h.ctl_sequence = int(last or 0) + 1
        h.revoked = revoked
        ctl = _sign_ctl(h)
        crl = h.root.sign_crl(revoked=revoked)
        h.ctl, h.crl = ctl, crl
        with self.ca_engine.begin() as conn:
            conn.execute(
                insert(ca_publications).values(kind="ctl", sequence=h.ctl_sequence, encoded=ctl)
            )
            conn.execute(
                insert(ca_publications).values(kind="crl", sequence=h.ctl_sequence, encoded=crl)
            )
        return ctl, crl

    def latest(self, kind: Literal["ctl", "crl"]) -> bytes:
        """The newest stored CTL or CRL (another process may have published since opening)."""
        with self.ca_engine.connect() as conn:
            encoded = conn.execute(
                select(ca_publications.c.encoded)
                .where(ca_publications.c.kind == kind)
                .order_by(ca_publications.c.sequence.desc())
                .limit(1)
            ).scalar_one()
        return bytes(encoded)

    def stats(self) -> dict[str, Any]:
        with self.ca_engine.connect() as conn:
            cas = conn.execute(select(ca_certificates.c.role, ca_certificates.c.revoked)).all()
        with self.ea_engine.connect() as conn:
            ecs = conn.execute(select(func.count()).select_from(ea_enrolment_credentials)).scalar()
            revoked_ecs = conn.execute(
                select(func.count())
                .select_from(ea_enrolment_credentials)
                .where(ea_enrolment_credentials.c.revoked)
            ).scalar()
        with self.aa_engine.connect() as conn:
            ats = conn.execute(select(func.count()).select_from(aa_issued_tickets)).scalar()
        return {
            "family": self.hierarchy.family.name,
            "root": self.hierarchy.root.certificate.hashed_id8.hex(),
            "ca_certificates": len(cas),
            "revoked_cas": sum(1 for _, r in cas if r),
            "ctl_sequence": self.hierarchy.ctl_sequence,
            "ecs_issued": int(ecs or 0),
            "ecs_revoked": int(revoked_ecs or 0),
            "ats_issued": int(ats or 0),
            "ea_counters": self.hierarchy.ea.counters.all(),
            "aa_counters": self.hierarchy.aa.counters.all(),
        }


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
        generated[role] = generate_key(curve)
        return SoftwareSigner(generated[role])

    def decryption(role: str, curve: str) -> PrivateKey:
        generated[f"{role}-enc"] = generate_key(curve)
        return generated[f"{role}-enc"]

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
    encryption = serialization.BestAvailableEncryption(passphrase)
    for role, key in generated.items():
        path = keys_dir / f"{role}.p8"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(
                key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
                )
            )
    ca_metadata.create_all(ca_engine)
    with ca_engine.begin() as conn:
        for role, certificate, url in (
            ("root", hierarchy.root.certificate, None),
            ("ea", hierarchy.ea.certificate, EA_URL),
            ("aa", hierarchy.aa.certificate, AA_URL),
        ):
            conn.execute(
                insert(ca_certificates).values(
                    cert_id=certificate.hashed_id8,
                    role=role,
                    name=str(certificate.tbs["id"][1]),
                    certificate=certificate.encoded,
                    access_point=url,
                    revoked=False,
                )
            )
        conn.execute(insert(ca_publications).values(kind="ctl", sequence=0, encoded=hierarchy.ctl))
        conn.execute(insert(ca_publications).values(kind="crl", sequence=0, encoded=hierarchy.crl))
    (directory / "v2x.json").write_text(json.dumps({"family": family_name}) + "\n")
    return V2xStore(
        directory=directory,
        hierarchy=hierarchy,
        ca_engine=ca_engine,
        ea_engine=ea_engine,
        aa_engine=aa_engine,
    )


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
    keys: dict[str, PrivateKey] = {}
    for role in _ROLES:
        try:
            loaded = serialization.load_pem_private_key(
                (keys_dir / f"{role}.p8").read_bytes(), password=passphrase
            )
        except ValueError:
            raise ConfigError("wrong passphrase for the V2X key store") from None
        if not isinstance(loaded, PrivateKey):
            raise ConfigError(f"{role}.p8 is not an EC key")
        keys[role] = loaded
    ca_engine, ea_engine, aa_engine = _engines(directory)
    with ca_engine.connect() as conn:
        certificates = {
            r.role: decode_certificate(r.certificate) for r in conn.execute(select(ca_certificates))
        }
        latest: dict[str, tuple[int, bytes]] = {}
        for row in conn.execute(select(ca_publications).order_by(ca_publications.c.sequence)):
            latest[row.kind] = (int(row.sequence), bytes(row.encoded))
        revoked = [
            bytes(r.cert_id)
            for r in conn.execute(select(ca_certificates).where(ca_certificates.c.revoked))
        ]
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
        with ca_engine.begin() as conn:
            for kind in ("ctl", "crl"):
                conn.execute(
                    insert(ca_publications).values(
                        kind=kind, sequence=sequence, encoded=latest[kind][1]
                    )
                )
    hierarchy = assemble(
        family=family,
        clock=clock,
        root=root,
        ea_keys=AuthorityKeys(
            signer=SoftwareSigner(keys["ea"]),
            decryption_key=keys["ea-enc"],
            certificate=certificates["ea"],
        ),
        aa_keys=AuthorityKeys(
            signer=SoftwareSigner(keys["aa"]),
            decryption_key=keys["aa-enc"],
            certificate=certificates["aa"],
        ),
        ctl=latest["ctl"][1],
        crl=latest["crl"][1],
        ea_engine=ea_engine,
        aa_engine=aa_engine,
        ctl_sequence=latest["ctl"][0],
        revoked=revoked,
    )
    return V2xStore(
        directory=directory,
        hierarchy=hierarchy,
        ca_engine=ca_engine,
        ea_engine=ea_engine,
        aa_engine=aa_engine,
    )


def _stale(message: bytes, clock: Clock) -> bool:
    data = open_pki_data(message, signer_kinds=frozenset({"digest"}))
    body = data.content[1]
    return int(body["nextUpdate"]) <= time32(clock.now())
