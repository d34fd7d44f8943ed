"""A device whose root of trust is a TPM 2.0, driven through tpm2-pytss (ESAPI).

What lives in the TPM (TCG TPM 2.0 Keys for Device Identity and Attestation; EK Credential
Profile):

* the endorsement key (EK): the TCG's ECC NIST P-256 EK template (``create_ek_template``,
  "EK-ECC256"), persistent at ``EK_HANDLE``; a decrypt-only key whose certificate, issued by the
  line as a TPM vendor would, sits in NV at the TCG's index ``EK_CERTIFICATE_INDEX``;
* the attestation key (AK, the TCG's IAK): a restricted ECDSA P-256 signing key, fixedTPM and
  fixedParent, a primary of the endorsement hierarchy persistent at ``AK_HANDLE``; it signs only
  structures the TPM makes (TPM2_Certify, TPM2_Quote), never outside data that could pass for
  one. Its certificate and the line CA's sit in NV at ``AK_CHAIN_INDEX`` (DER, concatenated);
* the storage root key (SRK), the parent of every operational key, persistent at ``SRK_HANDLE``.

Operational keys are created in the TPM under the SRK (fixedTPM, fixedParent,
sensitiveDataOrigin, sign only); the host keeps only their public area and their private area
wrapped by the SRK, which no other TPM can load. Each key is addressed by a handle of this object
and loaded for one command at a time (a TPM holds few transient objects). With a ``key_dir`` the
wrapped keys are kept there, one file a handle (the marshalled TPM2B_PRIVATE then TPM2B_PUBLIC),
so a device that restarts keeps its keys and handles (never handing a deleted key's handle to
another key); the files are useless without this TPM. ``certify`` makes the AK certify a key
with the authority's challenge as qualifying data (TPM2_Certify); ``sign`` signs a digest with
it (TPM2_Sign). ``TpmDevice`` has the key-root interface the device agent runs on.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from fleetid.errors import EncodingError, TlvError, TpmError
from fleetid.formats.csr_attestation import AttestationBundle, AttestationStatement
from fleetid.formats.tcg_attest_certify import (
    TCG_ATTEST_CERTIFY_OID,
    TcgAttestCertify,
    encode_tcg_attest_certify,
)
from fleetid.formats.tlv import decode_tlv
from fleetid.private_file import write_private_file
from fleetid.tpm.evidence import public_key_of
from fleetid.tpm.stack import tss, tss_errors, tss_utils

__all__ = [
    "AK_CHAIN_INDEX",
    "AK_HANDLE",
    "EK_CERTIFICATE_INDEX",
    "EK_HANDLE",
    "SRK_HANDLE",
    "TpmDevice",
    "TpmSigner",
]

# The TCG TPM v2.0 Provisioning Guidance's persistent handles and the EK Credential Profile's NV
# (NV indices): the ECC P-256 EK and its certificate, and the SRK.
SRK_HANDLE: Final = 0x81000001
EK_HANDLE: Final = 0x81010002
EK_CERTIFICATE_INDEX: Final = 0x01C0000A
# TCG TPM 2.0 Keys for Device Identity and Attestation: the IAK's persistent handle. The
# index of its certificate chain is fleetid's, in the owner's range.
AK_HANDLE: Final = 0x81020000
AK_CHAIN_INDEX: Final = 0x01C90000
_NV_CHUNK: Final = 512  # below every TPM's MAX_NV_BUFFER_SIZE
_NV_SIZE: Final = 2048  # libtpms' MAX_NV_INDEX_SIZE

_DER = serialization.Encoding.DER
_NEXT_HANDLE: Final = "next-handle"  # in a key_dir: the handle the next key gets


@dataclass(frozen=True)
class _Blob:
    private: Any  # TPM2B_PRIVATE, wrapped by the SRK
    public: Any  # TPM2B_PUBLIC


class TpmDevice:
    """A TPM reached over a TCTI (``Swtpm.tcti``, or ``device:/dev/tpmrm0``); see the module
    docstring. A context manager; ``close`` ends the connection."""

    def __init__(self, tcti: str, *, key_dir: Path | None = None) -> None:
        tpm = tss()
        with tss_errors("opening the TPM"):
            self._ctx = tpm.ESAPI(tcti)
        self._tpm = tpm
        self._key_dir = key_dir
        self._keys: dict[int, _Blob] = {} if key_dir is None else self._read_keys(key_dir)
        self._handles = count(self._first_free_handle())
        self._objects: dict[int, Any] = {}  # ESYS_TR of each persistent object and NV index
        self._ready = False

    def close(self) -> None:
        self._ctx.close()

    def __enter__(self) -> TpmDevice:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- persistent objects ----------------------------------------------------------------------

    def _persistent(self) -> set[int]:
        tpm = self._tpm
        with tss_errors("listing persistent handles"):
            _, data = self._ctx.get_capability(
                tpm.TPM2_CAP.HANDLES, int(tpm.TPM2_HC.HR_PERSISTENT), 64
            )
        return {int(h) for h in data.data.handles}

    def _object(self, handle: int) -> Any:
        if handle not in self._objects:
            with tss_errors(f"reaching persistent object 0x{handle:08X}"):
                self._objects[handle] = self._ctx.tr_from_tpmpublic(handle)
        return self._objects[handle]

    def _make_persistent(self, hierarchy: Any, template: Any, handle: int) -> None:
        tpm = self._tpm
        with tss_errors(f"creating the primary key for 0x{handle:08X}"):
            transient = self._ctx.create_primary(
                tpm.TPM2B_SENSITIVE_CREATE(), template, primary_handle=hierarchy
            )[0]
            try:
                self._ctx.evict_control(tpm.ESYS_TR.OWNER, transient, handle)
            finally:
                self._ctx.flush_context(transient)

    def _template(self, algorithm: str, *, fixed: bool = True, purpose: Any) -> Any:
        """A key template (tpm2-tools' algorithm specifier): made in the TPM, used by its empty
        password without dictionary-attack lockout, bound to the TPM unless ``fixed`` is off."""
        flags = self._tpm.TPMA_OBJECT
        attributes = flags.SENSITIVEDATAORIGIN | flags.USERWITHAUTH | flags.NODA | purpose
        if fixed:
            attributes |= flags.FIXEDTPM | flags.FIXEDPARENT
        return self._tpm.TPM2B_PUBLIC.parse(algorithm, objectAttributes=attributes)

    def _ensure(self) -> None:
        """The SRK, EK and AK, created once (each is a primary: the same seed gives it again)."""
        if self._ready:
            return
        tpm = self._tpm
        flags = tpm.TPMA_OBJECT
        present = self._persistent()
        if SRK_HANDLE not in present:
            srk = self._template("ecc256:aes128cfb", purpose=flags.RESTRICTED | flags.DECRYPT)
            self._make_persistent(tpm.ESYS_TR.OWNER, srk, SRK_HANDLE)
        if EK_HANDLE not in present:
            _, ek = tss_utils().create_ek_template("EK-ECC256", self._nv_read_for_template)
            self._make_persistent(tpm.ESYS_TR.ENDORSEMENT, ek, EK_HANDLE)
        if AK_HANDLE not in present:
            ak = self._template(
                "ecc256:ecdsa-sha256:null", purpose=flags.RESTRICTED | flags.SIGN_ENCRYPT
            )
            self._make_persistent(tpm.ESYS_TR.ENDORSEMENT, ak, AK_HANDLE)
        self._ready = True

    def _nv_read_for_template(self, index: int) -> bytes:
        """``create_ek_template``'s NV reader: a TPM with no EK template in NV (EK Credential
        Profile) uses the default template."""
        if int(index) not in self._nv_indices():
            raise tss_utils().NoSuchIndex(index)
        return self._nv_read(int(index))

    def _public(self, handle: int) -> bytes:
        self._ensure()
        with tss_errors(f"reading the public area of 0x{handle:08X}"):
            public, _, _ = self._ctx.read_public(self._object(handle))
        return bytes(public.publicArea.marshal())

    def endorsement_public(self) -> bytes:
        """The EK's marshalled ``TPMT_PUBLIC`` (created on first use)."""
        return self._public(EK_HANDLE)

    def attestation_public(self) -> bytes:
        """The AK's marshalled ``TPMT_PUBLIC`` (created on first use)."""
        return self._public(AK_HANDLE)

    def activate_credential(self, credential_blob: bytes, encrypted_secret: bytes) -> bytes:
        """TPM2_ActivateCredential with the EK (its policy: PolicySecret of the endorsement
        hierarchy) for the AK: the secret comes out only if both are in this TPM."""
        tpm = self._tpm
        self._ensure()
        blob, _ = tpm.TPM2B_ID_OBJECT.unmarshal(credential_blob)
        secret, _ = tpm.TPM2B_ENCRYPTED_SECRET.unmarshal(encrypted_secret)
        with tss_errors("activating the credential"):
            session = self._ctx.start_auth_session(
                tpm.ESYS_TR.NONE,
                tpm.ESYS_TR.NONE,
                tpm.TPM2_SE.POLICY,
                tpm.TPMT_SYM_DEF(algorithm=tpm.TPM2_ALG.NULL),
                tpm.TPM2_ALG.SHA256,
            )
            try:
                self._ctx.policy_secret(tpm.ESYS_TR.ENDORSEMENT, session, expiration=0)
                recovered = self._ctx.activate_credential(
                    self._object(AK_HANDLE),
                    self._object(EK_HANDLE),
                    blob,
                    secret,
                    session1=tpm.ESYS_TR.PASSWORD,
                    session2=session,
                )
            finally:
                self._ctx.flush_context(session)
        return bytes(recovered)

    # -- NV: the certificates the line stored ----------------------------------------------------

    def _nv_write(self, index: int, data: bytes) -> None:
        tpm = self._tpm
        if len(data) > _NV_SIZE:
            raise EncodingError(f"{len(data)} bytes do not fit NV index 0x{index:08X}")
        with tss_errors(f"writing NV index 0x{index:08X}"):
            if index in self._nv_indices():
                self._ctx.nv_undefine_space(self._object(index), tpm.ESYS_TR.OWNER)
                del self._objects[index]
            public = tpm.TPM2B_NV_PUBLIC(
                nvPublic=tpm.TPMS_NV_PUBLIC(
                    nvIndex=index,
                    nameAlg=tpm.TPM2_ALG.SHA256,
                    attributes=(
                        tpm.TPMA_NV.OWNERWRITE
                        | tpm.TPMA_NV.OWNERREAD
                        | tpm.TPMA_NV.AUTHREAD
                        | tpm.TPMA_NV.NO_DA
                    ),
                    dataSize=len(data),
                )
            )
            nv = self._objects[index] = self._ctx.nv_define_space(None, public, tpm.ESYS_TR.OWNER)
            for offset in range(0, len(data), _NV_CHUNK):
                self._ctx.nv_write(
                    nv, data[offset : offset + _NV_CHUNK], offset, auth_handle=tpm.ESYS_TR.OWNER
                )

    def _nv_indices(self) -> set[int]:
        tpm = self._tpm
        with tss_errors("listing NV indices"):
            _, data = self._ctx.get_capability(
                tpm.TPM2_CAP.HANDLES, int(tpm.TPM2_HC.HR_NV_INDEX), 64
            )
        return {int(h) for h in data.data.handles}

    def _nv_read(self, index: int) -> bytes:
        tpm = self._tpm
        if index not in self._nv_indices():
            raise TpmError(
                f"NV index 0x{index:08X} is not defined: the line has not provisioned it"
            )
        with tss_errors(f"reading NV index 0x{index:08X}"):
            nv = self._object(index)
            public, _ = self._ctx.nv_read_public(nv)
            size = int(public.nvPublic.dataSize)
            data = b""
            for offset in range(0, size, _NV_CHUNK):
                chunk = self._ctx.nv_read(
                    nv, min(_NV_CHUNK, size - offset), offset, auth_handle=tpm.ESYS_TR.OWNER
                )
                data += bytes(chunk)
        return data

    def store_certificates(
        self, *, ek_certificate: x509.Certificate, ak_chain: list[x509.Certificate]
    ) -> None:
        """The line's last step: the EK certificate at the TCG's index, the AK's chain beside."""
        self._nv_write(EK_CERTIFICATE_INDEX, ek_certificate.public_bytes(_DER))
        self._nv_write(AK_CHAIN_INDEX, b"".join(c.public_bytes(_DER) for c in ak_chain))

    def ek_certificate(self) -> x509.Certificate:
        try:
            return x509.load_der_x509_certificate(self._nv_read(EK_CERTIFICATE_INDEX))
        except ValueError as exc:
            raise TpmError(f"the EK certificate in NV does not parse: {exc}") from exc

    def attestation_chain(self) -> list[x509.Certificate]:
        """The AK certificate and its issuers, as the line stored them."""
        data = self._nv_read(AK_CHAIN_INDEX)
        chain: list[x509.Certificate] = []
        while data:
            try:
                _, length = decode_tlv(data)
                chain.append(x509.load_der_x509_certificate(data[:length]))
            except (TlvError, ValueError) as exc:
                raise TpmError(f"the AK chain in NV does not parse: {exc}") from exc
            data = data[length:]
        if not chain:
            raise TpmError("the AK chain in NV is empty")
        return chain

    # -- operational keys ------------------------------------------------------------------------

    def create_key(self, *, duplicable: bool = False) -> int:
        """A new ECDSA P-256 signing key made in the TPM under the SRK; its handle here.

        ``duplicable`` clears fixedTPM and fixedParent: such a key can be duplicated out of the
        TPM (TPM2_Duplicate), and a verifier refuses it for a device credential.
        """
        tpm = self._tpm
        self._ensure()
        template = self._template(
            "ecc256:ecdsa-sha256:null", fixed=not duplicable, purpose=tpm.TPMA_OBJECT.SIGN_ENCRYPT
        )
        with tss_errors("creating a key"):
            private, public, _, _, _ = self._ctx.create(
                self._object(SRK_HANDLE), tpm.TPM2B_SENSITIVE_CREATE(), template
            )
        handle = next(self._handles)
        if self._key_dir is not None:
            write_private_file(self._key_dir / _NEXT_HANDLE, str(handle + 1).encode())
            write_private_file(
                self._key_dir / f"{handle}.key", bytes(private.marshal() + public.marshal())
            )
        self._keys[handle] = _Blob(private=private, public=public)
        return handle

    def _first_free_handle(self) -> int:
        """Past every handle given out here, deleted ones included (kept in ``key_dir``)."""
        after_keys = max(self._keys, default=0) + 1
        if self._key_dir is None or not (self._key_dir / _NEXT_HANDLE).exists():
            return after_keys
        text = (self._key_dir / _NEXT_HANDLE).read_text().strip()
        if not text.isdigit():
            raise TpmError(f"{_NEXT_HANDLE}: not a handle number")
        return max(after_keys, int(text))

    def _read_keys(self, key_dir: Path) -> dict[int, _Blob]:
        """The wrapped keys kept in ``key_dir`` by handle (files named ``<handle>.key``)."""
        key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        keys = {}
        for path in key_dir.glob("*.key"):
            if not path.stem.isdigit():
                raise TpmError(f"{path.name}: not a key file of this device")
            data = path.read_bytes()
            try:
                private, used = self._tpm.TPM2B_PRIVATE.unmarshal(data)
                public, rest = self._tpm.TPM2B_PUBLIC.unmarshal(data[used:])
            except Exception as exc:  # the library raises its own types for short data
                raise TpmError(f"{path.name}: not a wrapped TPM key ({exc})") from exc
            if used + rest != len(data) or not bytes(private.buffer):
                raise TpmError(f"{path.name}: not a wrapped TPM key")
            keys[int(path.stem)] = _Blob(private=private, public=public)
        return keys

    def _blob(self, handle: int) -> _Blob:
        try:
            return self._keys[handle]
        except KeyError:
            raise TpmError(f"no TPM key with handle {handle} here") from None

    def _with_loaded(self, handle: int, what: str, command: Any) -> Any:
        blob = self._blob(handle)
        with tss_errors(what):
            loaded = self._ctx.load(self._object(SRK_HANDLE), blob.private, blob.public)
            try:
                return command(loaded)
            finally:
                self._ctx.flush_context(loaded)

    def key_public(self, handle: int) -> bytes:
        """The key's marshalled ``TPMT_PUBLIC``."""
        return bytes(self._blob(handle).public.publicArea.marshal())

    def public_key(self, handle: int) -> ec.EllipticCurvePublicKey:
        return public_key_of(self.key_public(handle))

    def certify(self, handle: int, qualifying_data: bytes) -> TcgAttestCertify:
        """TPM2_Certify of the key by the AK, ``qualifying_data`` (the challenge) as extraData."""
        tpm = self._tpm
        self._ensure()
        scheme = tpm.TPMT_SIG_SCHEME(scheme=tpm.TPM2_ALG.NULL)  # the AK's own: ECDSA SHA-256
        attest, signature = self._with_loaded(
            handle,
            "certifying a key",
            lambda key: self._ctx.certify(
                key, self._object(AK_HANDLE), tpm.TPM2B_DATA(qualifying_data), scheme
            ),
        )
        return TcgAttestCertify(
            attest=bytes(attest),
            signature=bytes(signature.marshal()),
            public=self.key_public(handle),
        )

    def sign_digest(self, handle: int, digest: bytes) -> bytes:
        """TPM2_Sign of a SHA-256 digest with the key: a DER ECDSA signature."""
        tpm = self._tpm
        scheme = tpm.TPMT_SIG_SCHEME(scheme=tpm.TPM2_ALG.ECDSA)
        scheme.details.any.hashAlg = tpm.TPM2_ALG.SHA256
        # An unrestricted key signs any digest: the null ticket (Part 3 §20.2).
        ticket = tpm.TPMT_TK_HASHCHECK(tag=tpm.TPM2_ST.HASHCHECK, hierarchy=tpm.TPM2_RH.NULL)
        signature = self._with_loaded(
            handle,
            "signing",
            lambda key: self._ctx.sign(key, tpm.TPM2B_DIGEST(digest), scheme, ticket),
        )
        ecdsa = signature.signature.ecdsa
        return encode_dss_signature(
            int.from_bytes(bytes(ecdsa.signatureR), "big"),
            int.from_bytes(bytes(ecdsa.signatureS), "big"),
        )

    def delete_key(self, handle: int) -> None:
        """Forget the key: its wrapped private area is dropped (the TPM never held it)."""
        self._keys.pop(handle, None)
        if self._key_dir is not None:
            (self._key_dir / f"{handle}.key").unlink(missing_ok=True)

    # -- the key-root interface of the device agent ----------------------------------------------

    def identity(self) -> x509.Certificate:
        """The AK certificate: its subject serialNumber names the device (802.1AR)."""
        return self.attestation_chain()[0]

    def device_serial(self) -> str:
        (name,) = self.identity().subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        return str(name.value)

    def new_key(self) -> int:
        return self.create_key()

    def evidence(self, handle: int, nonce: bytes) -> AttestationBundle:
        """The key's TPM2_Certify bound to ``nonce``, with the AK chain and the EK certificate."""
        statement = encode_tcg_attest_certify(self.certify(handle, nonce))
        return AttestationBundle(
            statements=(AttestationStatement(type=TCG_ATTEST_CERTIFY_OID, statement=statement),),
            certificates=(*self.attestation_chain(), self.ek_certificate()),
        )

    def signer(self, handle: int) -> TpmSigner:
        return TpmSigner(self, handle)


class TpmSigner:
    """A TPM key as a ``fleetid.crypto.signer.Signer``: ECDSA P-256 with SHA-256."""

    def __init__(self, tpm: TpmDevice, handle: int) -> None:
        self._tpm = tpm
        self.handle = handle
        self._public = tpm.public_key(handle)

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public

    @property
    def hash_algorithm(self) -> hashes.HashAlgorithm:
        return hashes.SHA256()

    def sign(self, data: bytes) -> bytes:
        return self._tpm.sign_digest(self.handle, hashlib.sha256(data).digest())
