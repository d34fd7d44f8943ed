"""What the emulated chip keeps in its flash: the card state model and its serial form.

Everything the card must remember across power cycles lives in one ``CardState``: the chip
identity (CPLC), the GlobalPlatform card life cycle, the SCP03 key sets with their sequence
counters, the identity applet's key slots, the manufacturer attestation chain, trust anchors, the
signed-boot anchor (firmware verification key and monotonic security counter), and the PIV
applet's PIN, PUK, administration key, keys and data objects (``fleetid.se.piv_state``). Volatile
state (selected applet, secure channel session, pending response) is not here: it lives in
``fleetid.se.card.SecureElement`` and is lost on reset.

The serial form (``to_bytes`` / ``from_bytes``) is JSON with hex strings, keys sorted, no spaces
(what ``json.dumps(doc, sort_keys=True, separators=(",", ":"))`` gives). The card writes it on
every state change, so the JSON text of the public, rarely changing parts (CPLC, certificates,
chains, anchors, boot state) is kept per ``CardState`` and only re-encoded when they change; the
key sets and private keys are formatted afresh on every write. It is only ever
written to flash sealed (``fleetid.se.keystore``); private key material exists in plaintext only
inside the emulator object, and is never part of that per-state cache.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from fleetid.errors import StoreError
from fleetid.se.piv_state import PivState

# The wire values the card state holds; re-exported here for the card side, which names them
# through this module.
from fleetid.se.wire import ATTESTATION_HANDLE, MAX_USER_HANDLE, CardLifeCycle, Cplc, Curve

__all__ = [
    "ATTESTATION_HANDLE",
    "MAX_USER_HANDLE",
    "ApplicationRecord",
    "BootState",
    "CardContent",
    "CardLifeCycle",
    "CardState",
    "Cplc",
    "Curve",
    "FidoCredential",
    "FidoState",
    "KeySet",
    "KeySlot",
    "LoadFileRecord",
    "allowed_transition",
]

_FORMAT_VERSION = 1


# GP Card Spec §5.1.1 (Figure 5-1): OP_READY -> INITIALIZED -> SECURED, SECURED <-> CARD_LOCKED,
# and any state -> TERMINATED. Nothing goes back to OP_READY or INITIALIZED.
_TRANSITIONS: dict[CardLifeCycle, frozenset[CardLifeCycle]] = {
    CardLifeCycle.OP_READY: frozenset({CardLifeCycle.INITIALIZED, CardLifeCycle.TERMINATED}),
    CardLifeCycle.INITIALIZED: frozenset({CardLifeCycle.SECURED, CardLifeCycle.TERMINATED}),
    CardLifeCycle.SECURED: frozenset({CardLifeCycle.CARD_LOCKED, CardLifeCycle.TERMINATED}),
    CardLifeCycle.CARD_LOCKED: frozenset({CardLifeCycle.SECURED, CardLifeCycle.TERMINATED}),
    CardLifeCycle.TERMINATED: frozenset(),
}


def allowed_transition(current: CardLifeCycle, new: CardLifeCycle) -> bool:
    """Whether GP allows the card life cycle to move from ``current`` to ``new``."""
    return new in _TRANSITIONS[current]


@dataclass(frozen=True, slots=True, kw_only=True)
class KeySet:
    """One SCP03 static key set (Key-ENC, Key-MAC, Key-DEK) and its pseudo-random counter."""

    enc: bytes
    mac: bytes
    dek: bytes
    sequence_counter: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class KeySlot:
    """One asymmetric key held by the identity applet.

    ``usage`` is the policy byte of GENERATE KEY (``fleetid.formats.attestation.KeyUsage`` bits,
    plus ``0x80``: use only inside an authenticated secure channel session).
    """

    curve: Curve
    private_value: int
    usage: int
    generated_on_card: bool = True


@dataclass(slots=True, kw_only=True)
class BootState:
    """Signed-boot anchor: what the boot applet checks images against.

    ``verification_key`` is a DER SubjectPublicKeyInfo (P-256 or P-384). ``security_counter`` only
    goes up. ``measurement`` / ``image_version`` describe the last image the card verified; the
    identity applet reports them in the DICE TcbInfo of attestation certificates.
    """

    verification_key: bytes | None = None
    security_counter: int = 0
    measurement: bytes | None = None
    image_version: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FidoCredential:
    """A discoverable (resident) credential of the FIDO2 applet (CTAP 2.1 §6.1.2 step 16).

    ``credential_id`` is the wrapped form the applet hands out for every credential; the
    private key is kept here as well so that GetAssertion without an allowList finds it.
    """

    rp_id: str
    user_id: bytes
    user_name: str | None
    display_name: str | None
    credential_id: bytes
    private_value: int
    created: int  # the signature counter value at creation: orders "most recent first"

    def to_doc(self) -> dict[str, object]:
        return {
            "rp": self.rp_id,
            "user": self.user_id.hex(),
            "name": self.user_name,
            "display": self.display_name,
            "id": self.credential_id.hex(),
            "d": f"{self.private_value:x}",
            "created": self.created,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, object]) -> FidoCredential:
        name, display = doc["name"], doc["display"]
        return cls(
            rp_id=str(doc["rp"]),
            user_id=bytes.fromhex(str(doc["user"])),
            user_name=None if name is None else str(name),
            display_name=None if display is None else str(display),
            credential_id=bytes.fromhex(str(doc["id"])),
            private_value=int(str(doc["d"]), 16),
            created=int(str(doc["created"])),
        )


@dataclass(slots=True, kw_only=True)
class FidoState:
    """The FIDO2 applet's flash (``fleetid.se.applets.fido``): secret, written afresh each time.

    ``wrap_key`` (AES-256, generated on card) wraps non-resident credential keys into their
    credential IDs; ``attestation_key`` / ``attestation_chain`` are what the line injected;
    ``pin_hash`` is LEFT(SHA-256(PIN), 16) (CTAP 2.1 §6.5.5.5) and ``pin_retries`` its
    persistent retry counter.
    """

    wrap_key: bytes | None = None
    sign_count: int = 0
    attestation_key: int | None = None
    attestation_chain: list[bytes] = field(default_factory=list)
    aaguid: bytes = bytes(16)
    pin_hash: bytes | None = None
    pin_retries: int = 8
    credentials: list[FidoCredential] = field(default_factory=list)

    def pristine(self) -> bool:
        """Nothing written yet (the FIDO applet unused): the section's text is a constant."""
        return (
            self.wrap_key is None
            and self.attestation_key is None
            and self.pin_hash is None
            and not self.credentials
            and not self.attestation_chain
            and self.sign_count == 0
            and self.pin_retries == 8
            and self.aaguid == _NO_AAGUID
        )

    def to_json(self) -> str:
        """The section's JSON text (secret: formatted afresh, except the pristine constant)."""
        if self.pristine():
            return _PRISTINE_FIDO_JSON
        return _canonical(self.to_doc())

    def to_doc(self) -> dict[str, object]:
        return {
            "wrap": _hex_or_none(self.wrap_key),
            "count": self.sign_count,
            "att_d": None if self.attestation_key is None else f"{self.attestation_key:x}",
            "att_chain": [c.hex() for c in self.attestation_chain],
            "aaguid": self.aaguid.hex(),
            "pin": _hex_or_none(self.pin_hash),
            "retries": self.pin_retries,
            "creds": [c.to_doc() for c in self.credentials],
        }

    @classmethod
    def from_doc(cls, doc: dict[str, object]) -> FidoState:
        if not doc:
            return cls()
        att_d, chain, creds = doc["att_d"], doc["att_chain"], doc["creds"]
        if not isinstance(chain, list) or not isinstance(creds, list):
            raise ValueError("fido section")
        return cls(
            wrap_key=_bytes_or_none(_str_or_none(doc["wrap"])),
            sign_count=int(str(doc["count"])),
            attestation_key=None if att_d is None else int(str(att_d), 16),
            attestation_chain=[bytes.fromhex(c) for c in chain],
            aaguid=bytes.fromhex(str(doc["aaguid"])),
            pin_hash=_bytes_or_none(_str_or_none(doc["pin"])),
            pin_retries=int(str(doc["retries"])),
            credentials=[FidoCredential.from_doc(c) for c in creds],
        )


_NO_AAGUID = bytes(16)


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadFileRecord:
    """An executable load file on the card (GPCS §5.3.1: life cycle LOADED, ``01``)."""

    aid: bytes
    version: int
    package_hash: bytes
    module_aids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ApplicationRecord:
    """An application instance (GPCS §5.3.2). ``life_cycle`` is ``03`` INSTALLED or ``07``
    SELECTABLE; ``data`` is the applet's own persistent state (JSON values), migrated on
    upgrade; keys by handle stay in ``CardState.keys``."""

    aid: bytes
    load_file_aid: bytes
    module_aid: bytes
    version: int
    life_cycle: int
    privileges: bytes
    data: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True, kw_only=True)
class CardContent:
    """The GP registry of the card (GPCS §5.3): load files, applications, and what guards them.

    ``staged`` holds a load file loaded as an upgrade of one whose applications are still
    installed: the old version keeps running until INSTALL [for install] migrates them.
    ``version_floor`` is the highest version installed per load-file AID, which only goes up
    (like the boot applet's security counter). ``applet_signing_key`` is the DER SPKI every DAP
    must verify under.
    """

    load_files: dict[bytes, LoadFileRecord] = field(default_factory=dict)
    staged: dict[bytes, LoadFileRecord] = field(default_factory=dict)
    applications: dict[bytes, ApplicationRecord] = field(default_factory=dict)
    version_floor: dict[bytes, int] = field(default_factory=dict)
    applet_signing_key: bytes | None = None

    def to_doc(self) -> dict[str, object]:
        return {
            "load_files": {a.hex(): _load_file_doc(r) for a, r in self.load_files.items()},
            "staged": {a.hex(): _load_file_doc(r) for a, r in self.staged.items()},
            "applications": {
                a.hex(): {
                    "load_file": r.load_file_aid.hex(),
                    "module": r.module_aid.hex(),
                    "version": r.version,
                    "life_cycle": r.life_cycle,
                    "privileges": r.privileges.hex(),
                }
                for a, r in self.applications.items()
            },
            "version_floor": {a.hex(): v for a, v in self.version_floor.items()},
            "applet_signing_key": _hex_or_none(self.applet_signing_key),
        }

    def cache_key(self) -> tuple[object, ...]:
        """What ``to_doc`` is made of, compared by value to reuse its JSON text (the applets'
        own ``data`` is not part of it: it is written afresh every time)."""
        return (
            tuple(self.load_files.values()),
            tuple(self.staged.values()),
            tuple(self.version_floor.items()),
            self.applet_signing_key,
            tuple(
                (a.aid, a.load_file_aid, a.module_aid, a.version, a.life_cycle, a.privileges)
                for a in self.applications.values()
            ),
        )

    def data_json(self) -> str:
        """The applications' own data, by AID (only those that hold any)."""
        held = {a.hex(): r.data for a, r in self.applications.items() if r.data}
        return _canonical(held) if held else "{}"

    @classmethod
    def from_doc(
        cls, doc: dict[str, dict[str, object]], data: dict[str, dict[str, object]]
    ) -> CardContent:
        apps: dict[str, dict[str, object]] = doc["applications"]  # type: ignore[assignment]
        return cls(
            load_files={bytes.fromhex(a): _load_file(a, r) for a, r in doc["load_files"].items()},
            staged={bytes.fromhex(a): _load_file(a, r) for a, r in doc["staged"].items()},
            applications={
                bytes.fromhex(a): ApplicationRecord(
                    aid=bytes.fromhex(a),
                    load_file_aid=bytes.fromhex(str(r["load_file"])),
                    module_aid=bytes.fromhex(str(r["module"])),
                    version=int(r["version"]),  # type: ignore[call-overload]
                    life_cycle=int(r["life_cycle"]),  # type: ignore[call-overload]
                    privileges=bytes.fromhex(str(r["privileges"])),
                    data=dict(data.get(a, {})),
                )
                for a, r in apps.items()
            },
            version_floor={
                bytes.fromhex(a): int(v)  # type: ignore[call-overload]
                for a, v in doc["version_floor"].items()
            },
            applet_signing_key=_bytes_or_none(doc["applet_signing_key"]),  # type: ignore[arg-type]
        )


def _load_file_doc(record: LoadFileRecord) -> dict[str, object]:
    return {
        "version": record.version,
        "hash": record.package_hash.hex(),
        "modules": [m.hex() for m in record.module_aids],
    }


def _load_file(aid: str, doc: object) -> LoadFileRecord:
    fields: dict[str, object] = doc  # type: ignore[assignment]
    return LoadFileRecord(
        aid=bytes.fromhex(aid),
        version=int(fields["version"]),  # type: ignore[call-overload]
        package_hash=bytes.fromhex(str(fields["hash"])),
        module_aids=tuple(bytes.fromhex(m) for m in fields["modules"]),  # type: ignore[attr-defined]
    )


@dataclass(slots=True, kw_only=True)
class CardState:
    """Everything the card keeps in flash. Mutable: only the card object changes it."""

    cplc: Cplc
    life_cycle: CardLifeCycle = CardLifeCycle.OP_READY
    keysets: dict[int, KeySet] = field(default_factory=dict)
    keys: dict[int, KeySlot] = field(default_factory=dict)
    attestation_chain: list[bytes] = field(default_factory=list)
    trust_anchors: list[bytes] = field(default_factory=list)
    key_certificates: dict[int, bytes] = field(default_factory=dict)
    boot: BootState = field(default_factory=BootState)
    #: The PIV applet's PIN, keys and data objects (``fleetid.se.piv_state``).
    piv: PivState = field(default_factory=PivState)
    #: The FIDO2 applet's credentials, PIN and counter.
    fido: FidoState = field(default_factory=FidoState)
    #: Card content (GPCS §5.3); None until the card first records its pre-installed applets.
    content: CardContent | None = None
    # JSON text of public parts, by section: (the values it was encoded from, the text).
    _json: dict[str, tuple[object, str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    #: DER SubjectPublicKeyInfo of key slots, by handle: (the slot it is the public key of, the
    #: DER). Public values, never written to flash; an entry counts only while ``keys`` holds
    #: that very slot object (a replaced or reloaded slot misses).
    public_keys: dict[int, tuple[KeySlot, bytes]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def chip_serial(self) -> bytes:
        """The chip's serial, unique across the fleet: the 10-byte CPLC identity (``Cplc.kdd``).

        The 4-byte IC serial number alone is unique only within a fabricator's batch.
        """
        return self.cplc.kdd

    def zeroise(self) -> None:
        """Forget every secret: SCP03 key sets and all private keys (tamper response)."""
        self.keysets.clear()
        self.keys.clear()
        self.key_certificates.clear()
        self.piv.zeroise()
        self.fido = FidoState()
        self._json.clear()
        self.public_keys.clear()
        if self.content is not None:  # an applet's own state may hold secrets too
            for aid, app in list(self.content.applications.items()):
                self.content.applications[aid] = replace(app, data={})

    def to_bytes(self) -> bytes:
        boot = self.boot
        boot_fields = (
            boot.verification_key,
            boot.security_counter,
            boot.measurement,
            boot.image_version,
        )
        chain = tuple(self.attestation_chain)
        anchors = tuple(self.trust_anchors)
        certificates = tuple(sorted(self.key_certificates.items()))
        cplc = self.cplc
        content = self.content
        content_key = None if content is None else content.cache_key()

        def content_doc() -> object:
            return None if content is None else content.to_doc()

        # Top-level keys in sorted order, as json.dumps(sort_keys=True) writes them.
        return (
            f'{{"applet_data":{"{}" if content is None else content.data_json()},'
            f'"attestation_chain":{self._public("chain", chain, lambda: _hexes(chain))},'
            f'"boot":{self._public("boot", boot_fields, lambda: _boot_doc(boot))},'
            f'"content":{self._public("content", content_key, content_doc)},'
            f'"cplc":{self._public("cplc", cplc, lambda: cplc.encode().hex())},'
            f'"fido":{self.fido.to_json()},'
            f'"format":{_FORMAT_VERSION},'
            '"key_certificates":'
            f"{self._public('certificates', certificates, lambda: _hex_map(certificates))},"
            f'"keys":{_keys_json(self.keys)},'
            f'"keysets":{_keysets_json(self.keysets)},'
            f'"life_cycle":{int(self.life_cycle)},'
            f'"piv":{_canonical(self.piv.to_doc())},'
            f'"trust_anchors":{self._public("anchors", anchors, lambda: _hexes(anchors))}}}'
        ).encode()

    def _public(self, section: str, value: object, doc: Callable[[], object]) -> str:
        """The JSON text of a public section, re-encoded (``doc()``) only when ``value`` changed.

        ``value`` is compared by value (tuples of immutable bytes, the frozen ``Cplc``); that is
        cheap when nothing changed, as the same bytes objects compare by identity first.
        """
        cached = self._json.get(section)
        if cached is not None and cached[0] == value:
            return cached[1]
        text = _canonical(doc())
        self._json[section] = (value, text)
        return text

    @classmethod
    def from_bytes(cls, raw: bytes) -> CardState:
        try:
            doc = json.loads(raw)
            if doc.get("format") != _FORMAT_VERSION:
                raise StoreError(f"card state format {doc.get('format')!r} is not supported")
            boot = doc["boot"]
            content = doc.get("content")  # absent in flash written before card content existed
            return cls(
                cplc=Cplc.decode(bytes.fromhex(doc["cplc"])),
                life_cycle=CardLifeCycle(doc["life_cycle"]),
                keysets={
                    int(kvn): KeySet(
                        enc=bytes.fromhex(v["enc"]),
                        mac=bytes.fromhex(v["mac"]),
                        dek=bytes.fromhex(v["dek"]),
                        sequence_counter=v["counter"],
                    )
                    for kvn, v in doc["keysets"].items()
                },
                keys={
                    int(h): KeySlot(
                        curve=Curve(v["curve"]),
                        private_value=int(v["d"], 16),
                        usage=v["usage"],
                        generated_on_card=v["generated_on_card"],
                    )
                    for h, v in doc["keys"].items()
                },
                attestation_chain=[bytes.fromhex(c) for c in doc["attestation_chain"]],
                trust_anchors=[bytes.fromhex(c) for c in doc["trust_anchors"]],
                key_certificates={
                    int(h): bytes.fromhex(c) for h, c in doc["key_certificates"].items()
                },
                boot=BootState(
                    verification_key=_bytes_or_none(boot["verification_key"]),
                    security_counter=boot["security_counter"],
                    measurement=_bytes_or_none(boot["measurement"]),
                    image_version=boot["image_version"],
                ),
                # A card written before the PIV or FIDO2 applet existed has a factory-fresh one.
                piv=PivState.from_doc(doc["piv"]) if "piv" in doc else PivState(),
                fido=FidoState.from_doc(doc.get("fido", {})),
                content=None
                if content is None
                else CardContent.from_doc(content, doc.get("applet_data", {})),
            )
        except StoreError:
            raise
        except (ValueError, KeyError, TypeError) as exc:
            # Say what broke, never echo the content: it holds key material.
            raise StoreError(f"card state does not parse ({type(exc).__name__})") from None


def _canonical(doc: object) -> str:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"))


# The secret sections (key sets, private keys) are written on every change and never cached.
# Their members are integers, hex strings and booleans only, so the text json.dumps(sort_keys=True)
# gives is formatted directly: names in sorted order, object keys (decimal handles) sorted as text.


def _keysets_json(keysets: dict[int, KeySet]) -> str:
    items = sorted((str(kvn), ks) for kvn, ks in keysets.items())
    members = ",".join(
        f'"{kvn}":{{"counter":{int(ks.sequence_counter)},"dek":"{ks.dek.hex()}",'
        f'"enc":"{ks.enc.hex()}","mac":"{ks.mac.hex()}"}}'
        for kvn, ks in items
    )
    return f"{{{members}}}"


def _keys_json(keys: dict[int, KeySlot]) -> str:
    items = sorted((str(handle), slot) for handle, slot in keys.items())
    members = ",".join(
        f'"{handle}":{{"curve":{int(slot.curve)},"d":"{slot.private_value:x}",'
        f'"generated_on_card":{"true" if slot.generated_on_card else "false"},'
        f'"usage":{int(slot.usage)}}}'
        for handle, slot in items
    )
    return f"{{{members}}}"


def _boot_doc(boot: BootState) -> dict[str, object]:
    return {
        "verification_key": _hex_or_none(boot.verification_key),
        "security_counter": boot.security_counter,
        "measurement": _hex_or_none(boot.measurement),
        "image_version": boot.image_version,
    }


def _hexes(values: tuple[bytes, ...]) -> list[str]:
    return [v.hex() for v in values]


def _hex_map(items: tuple[tuple[int, bytes], ...]) -> dict[str, str]:
    return {str(h): v.hex() for h, v in items}


def _hex_or_none(value: bytes | None) -> str | None:
    return None if value is None else value.hex()


def _bytes_or_none(value: str | None) -> bytes | None:
    return None if value is None else bytes.fromhex(value)


# The FIDO section of a card whose FIDO applet was never used (most cards): one constant.
_PRISTINE_FIDO_JSON = _canonical(FidoState().to_doc())
