"""The butterfly authorities beside an on-disk V2X hierarchy (``fleetid v2x init``).

What ``<data-dir>/v2x/`` holds for them::

    butterfly.json            the pseudonym periods (origin, length in seconds), certificates
                              per period, the RA's, the pseudonym CA's and the misbehaviour
                              authority's certificates (COER, hex)
    ra.db pca.db la1.db la2.db  each authority's own database (separate operators)
    keys/{ra,ra-enc,pca,pca-enc,la1,la2}.p8   their keys, in the V2X key store
    keys/{la1-sign,la2-sign}.p8  the LAs' signing keys (their answers are signed; butterfly.json
                              holds their certificates)
    keys/{ma,ma-enc}.p8       the misbehaviour authority's keys, for its operator; the server
                              never loads them (it checks reports against the MA certificate)
    linked-crl/               the linked CRLs the CRACA publishes, served over HTTP

The LAs pair and share their keys with the CA once, at ``init``; from then on each authority
reopens its state from its database (``fleetid.store.butterfly_state``), its secrets sealed
under a key derived from its key-store key.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

from fleetid.authority.v2x.batch_pki import (
    ButterflyAuthorities,
    ButterflyEngines,
    ButterflyKeys,
    assemble_butterfly,
    new_butterfly_keys,
)
from fleetid.authority.v2x.common import AuthorityKeys
from fleetid.authority.v2x.hierarchy import V2xHierarchy
from fleetid.authority.v2x.key_store import authority_keys, load_keys
from fleetid.authority.v2x.misbehaviour_reports import issue_misbehaviour_authority
from fleetid.authority.v2x.pseudonym_ca import PeriodSchedule
from fleetid.authority.v2x.ra import DEFAULT_DELIVERED_RETENTION, EcLookup
from fleetid.clock import Clock
from fleetid.crypto.signer import SoftwareSigner
from fleetid.crypto.v2xkeys import PrivateKey
from fleetid.errors import ConfigError, EncodingError
from fleetid.formats.ieee1609 import Certificate, decode_certificate, time32
from fleetid.store.engine import open_engine

__all__ = ["BUTTERFLY_ROLES", "ButterflyStore", "has_butterfly", "init_butterfly", "open_butterfly"]

BUTTERFLY_ROLES: Final = ("ra", "ra-enc", "pca", "pca-enc", "la1", "la2")
_CONFIG: Final = "butterfly.json"


@dataclass(kw_only=True)
class ButterflyStore:
    """The opened butterfly authorities and their databases."""

    authorities: ButterflyAuthorities
    engines: ButterflyEngines
    linked_crl_directory: Path
    # The misbehaviour authority's certificate; None for authorities made before it existed.
    misbehaviour_certificate: Certificate | None = None

    def close(self) -> None:
        e = self.engines
        for engine in (e.ra, e.ca, e.la1, e.la2):
            engine.dispose()


def _engines(directory: Path) -> ButterflyEngines:
    ra, ca, la1, la2 = (
        open_engine(f"sqlite:///{directory / name}")
        for name in ("ra.db", "pca.db", "la1.db", "la2.db")
    )
    return ButterflyEngines(ra=ra, ca=ca, la1=la1, la2=la2)


def _open(
    directory: Path,
    keys: ButterflyKeys,
    schedule: PeriodSchedule,
    per_period: int,
    *,
    ec_lookup: EcLookup,
    clock: Clock,
    delivered_retention: timedelta = DEFAULT_DELIVERED_RETENTION,
) -> ButterflyStore:
    engines = _engines(directory)
    authorities = assemble_butterfly(
        keys,
        ec_lookup=ec_lookup,
        clock=clock,
        schedule=schedule,
        engines=engines,
        certificates_per_period=per_period,
        delivered_retention=delivered_retention,
    )
    crls = directory / "linked-crl"
    crls.mkdir(exist_ok=True)
    return ButterflyStore(authorities=authorities, engines=engines, linked_crl_directory=crls)


def init_butterfly(
    directory: Path,
    hierarchy: V2xHierarchy,
    *,
    key_factory: Callable[[str, str], PrivateKey],
    certificates_per_period: int = 20,
) -> ButterflyStore:
    """Keys, certificates, configuration and databases of the RA, pseudonym CA, LA1 and LA2
    (the keys are made by ``key_factory``, which the caller writes to its key store)."""
    if (directory / _CONFIG).exists():
        raise ConfigError(f"{directory} already holds butterfly authorities")
    keys = new_butterfly_keys(hierarchy, key_factory=key_factory)
    family = hierarchy.family
    ma = issue_misbehaviour_authority(
        hierarchy,
        signer=SoftwareSigner(key_factory("ma", family.ca)),
        decryption_key=key_factory("ma-enc", family.end_entity),
    )
    schedule = PeriodSchedule(origin=time32(hierarchy.clock.now()))
    config = {
        "origin": schedule.origin,
        "length": schedule.length,
        "certificates_per_period": certificates_per_period,
        "ra_certificate": keys.ra.certificate.encoded.hex(),
        "pca_certificate": keys.ca.certificate.encoded.hex(),
        "ma_certificate": ma.certificate.encoded.hex(),
    }
    if keys.la_keys is not None:
        for role, la in zip(("la1", "la2"), keys.la_keys, strict=True):
            config[f"{role}_certificate"] = la.certificate.encoded.hex()
    opened = _open(
        directory,
        keys,
        schedule,
        certificates_per_period,
        ec_lookup=hierarchy.ea.current_enrolment_credential,
        clock=hierarchy.clock,
    )
    opened.misbehaviour_certificate = ma.certificate
    (directory / _CONFIG).write_text(json.dumps(config, indent=2) + "\n")
    return opened


def has_butterfly(data_dir: Path) -> bool:
    """Whether ``fleetid v2x init`` made butterfly authorities under ``<data_dir>/v2x``."""
    return (Path(data_dir) / "v2x" / _CONFIG).is_file()


def open_butterfly(
    data_dir: Path,
    *,
    passphrase: bytes,
    clock: Clock,
    ec_lookup: EcLookup,
    delivered_retention: timedelta = DEFAULT_DELIVERED_RETENTION,
) -> ButterflyStore:
    """Reopen the butterfly authorities under ``<data_dir>/v2x`` with everything they kept;
    ``ec_lookup`` is the EA's (the RA checks each request's EC with it); the RA keeps a
    downloaded batch for ``delivered_retention``."""
    directory = Path(data_dir) / "v2x"
    try:
        config = json.loads((directory / _CONFIG).read_text())
        certificates = {
            role: decode_certificate(bytes.fromhex(config[f"{role}_certificate"]))
            for role in ("ra", "pca")
        }
        schedule = PeriodSchedule(origin=int(config["origin"]), length=int(config["length"]))
        per_period = int(config["certificates_per_period"])
        ma_hex = config.get("ma_certificate")
        ma_certificate = None if ma_hex is None else decode_certificate(bytes.fromhex(ma_hex))
        # Authorities made before the LAs were certified have no LA certificates.
        la_certificates = [
            decode_certificate(bytes.fromhex(config[f"{role}_certificate"]))
            for role in ("la1", "la2")
            if f"{role}_certificate" in config
        ]
    except FileNotFoundError:
        raise ConfigError(f"no butterfly authorities in {directory}; run v2x init") from None
    except (ValueError, KeyError, TypeError, EncodingError) as exc:
        raise ConfigError(
            f"{directory / _CONFIG} is not a butterfly configuration: {exc}"
        ) from None
    la_roles = ("la1-sign", "la2-sign") if len(la_certificates) == 2 else ()
    k = load_keys(directory / "keys", (*BUTTERFLY_ROLES, *la_roles), passphrase)
    la_keys = tuple(
        AuthorityKeys(
            signer=SoftwareSigner(k[f"{role}-sign"]), decryption_key=k[role], certificate=cert
        )
        for role, cert in zip(("la1", "la2"), la_certificates, strict=False)
    )
    keys = ButterflyKeys(
        ra=authority_keys(k, "ra", certificates["ra"]),
        ca=authority_keys(k, "pca", certificates["pca"]),
        la1_wrapping=k["la1"],
        la2_wrapping=k["la2"],
        la_keys=(la_keys[0], la_keys[1]) if len(la_keys) == 2 else None,
    )
    opened = _open(
        directory,
        keys,
        schedule,
        per_period,
        ec_lookup=ec_lookup,
        clock=clock,
        delivered_retention=delivered_retention,
    )
    opened.misbehaviour_certificate = ma_certificate
    return opened
