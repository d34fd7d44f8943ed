"""Property: whatever single entry is altered, deleted or swapped, ``verify_all`` names it."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, create_engine, delete, update
from sqlalchemy.pool import StaticPool

from fleetid.clock import ManualClock
from fleetid.crypto.signer import SoftwareSigner
from fleetid.errors import LogTamperedError
from fleetid.factory.auditlog import AuditLog, encode_leaf, leaf_hash
from fleetid.store.auditlog_table import audit_entries

ORIGIN = "fleetid.example/prop"
SIGNER = SoftwareSigner(ec.generate_private_key(ec.SECP256R1()))
TAMPERING = ("body", "body and leaf hash", "delete", "swap with next")


def _log(size: int) -> tuple[AuditLog, Engine]:
    engine = create_engine("sqlite://", poolclass=StaticPool)
    log = AuditLog(engine, SIGNER, ORIGIN, ManualClock())
    for i in range(size):
        log.append("injection", f"SN-{i}", {"i": i})
    return log, engine


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 24), st.data(), st.sampled_from(TAMPERING))
def test_first_tampered_entry_is_reported(size: int, data: st.DataObject, how: str) -> None:
    log, engine = _log(size)
    last = size - 2 if how == "swap with next" else size - 1
    assume(last >= 0)
    index = data.draw(st.integers(0, last), label="index")
    entries = log.entries()
    seq = audit_entries.c.seq
    with engine.begin() as conn:
        if how == "body":
            conn.execute(update(audit_entries).where(seq == index).values(body='{"i":-1}'))
        elif how == "body and leaf hash":
            e = entries[index]
            forged = encode_leaf(
                index=index, logged_at=e.logged_at, kind=e.kind, serial=e.serial, body={"i": -1}
            )
            values = {"body": '{"i":-1}', "leaf_hash": leaf_hash(forged)}
            conn.execute(update(audit_entries).where(seq == index).values(values))
        elif how == "delete":
            conn.execute(delete(audit_entries).where(seq == index))
        else:
            conn.execute(update(audit_entries).where(seq == index).values(seq=-1))
            conn.execute(update(audit_entries).where(seq == index + 1).values(seq=index))
            conn.execute(update(audit_entries).where(seq == -1).values(seq=index + 1))
    try:
        log.verify_all(SIGNER.public_key())
    except LogTamperedError as exc:
        assert exc.index == index, (how, index, str(exc))
    else:
        raise AssertionError(f"{how} at {index} was not detected")
    engine.dispose()
