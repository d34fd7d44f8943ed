"""GlobalPlatform Secure Channel Protocol '03' (GP Card Spec v2.3 Amendment D v1.2).

Section numbers are those of Amendment D v1.2 unless marked GPCS (Card Specification v2.3.1).

The host side, :class:`HostSession`, is sans-I/O: it builds the INITIALIZE UPDATE and EXTERNAL
AUTHENTICATE APDUs, then wraps command APDUs and unwraps response APDUs as bytes. The card side,
:class:`CardChannel`, is what the emulated security domain calls: it answers INITIALIZE UPDATE,
verifies EXTERNAL AUTHENTICATE, unwraps incoming commands and wraps outgoing responses.

The package keeps the two ends apart, so that host code loads no card: ``host``
(:class:`HostSession`, the PUT KEY helpers), ``card`` (:class:`CardChannel`, the card's side,
imported only inside ``fleetid.se``) and ``secure_messaging`` (the arithmetic both share). This
module re-exports the host side and the shared values, never the card's channel.

Protocol summary (what both sides implement):

* Session keys S-ENC, S-MAC, S-RMAC = KDF(Key-ENC/MAC/MAC, 04/06/07, host ‖ card challenge),
  L = static key length (§6.2.1). There is no session DEK: the static Key-DEK encrypts sensitive
  data (§6.2.8).
* Card/host cryptogram = KDF(S-MAC, 00/01, host ‖ card challenge), 8 bytes in S8 mode, 16 in S16
  (§6.2.2). A pseudo-random card challenge is KDF(Key-ENC, 02, sequence counter ‖ AID) (§6.2.2.1).
* C-MAC = CMAC(S-MAC, chaining value ‖ CLA' INS P1 P2 ‖ Lc' ‖ data')[:8 or 16]; the full CMAC is
  the next chaining value; EXTERNAL AUTHENTICATE starts from 16 × ``00``; Le is not MACed (§6.2.4).
  CLA' is the class byte with the logical channel zeroed and bit 3 set (``84``).
* C-DECRYPTION: an encryption counter starts at 1 for the first command after EXTERNAL
  AUTHENTICATE and increments for *every* command, with data or not; ICV = AES(S-ENC, counter);
  data is padded ``80 00…`` and encrypted before MACing (§6.2.6).
* R-MAC = CMAC(S-RMAC, chaining value ‖ response data ‖ SW)[:8 or 16]; none on error status
  words (anything but 9000, 62xx, 63xx) nor on EXTERNAL AUTHENTICATE (§6.2.5). R-ENCRYPTION uses
  the command's counter block with its first byte set to ``80`` as ICV input (§6.2.7).

Choices where the spec leaves room (documented so the card and the host agree):

* Extended-length commands: the MAC covers Lc' as it is encoded on the wire (``00 Lc1 Lc2``).
* A wrapped command whose original carried Le gets Le = ``00`` (``0000`` extended): the R-MAC
  and padding make the response longer than the original Ne. pySim and GPPro do the same.
* Card, no session and a command with the secure-messaging bit: ``6985`` (conditions of use not
  satisfied). ``6882`` would claim that the card does not support secure messaging at all.
* Card, after a session established by EXTERNAL AUTHENTICATE was aborted by a security error,
  every further command is refused with ``6982`` until the session is terminated (a new
  INITIALIZE UPDATE, or :meth:`CardChannel.close` on SELECT / reset), as §5.6 requires. A failed
  mutual authentication (wrong host cryptogram) just returns to "no session".
* Card, level ``00`` (authenticated, no secure messaging expected): plain commands pass; a
  command that carries a C-MAC anyway is verified as such, since it exceeds the level (§5.6).
* Card, the sequence counter moves only when the challenge is pseudo-random (it feeds nothing
  else); it is incremented first and the new value is used and returned (§6.2.2.1).
* Host, R-ENCRYPTION padding is removed leniently (``80`` then any zeros) once the R-MAC has
  verified: the Samsung OpenSCP transcripts show cards padding beyond one block. The card side
  is strict, because our host always pads minimally.
* Logical channels 4-19 (further interindustry CLA): secure messaging is b6 on the wire; the MAC
  is computed over the ``84``-style class byte as for channel 0 (§6.2.4, GPCS Table 11-12).

Verified against the pySim, Samsung OpenSCP (S8 and S16) and kaoh/globalplatform transcripts;
see ``tests/conformance/test_scp03_transcripts.py``.
"""

from fleetid.se.scp03.host import (
    HostSession,
    KeyProvider,
    SessionKeySource,
    aes_key_component,
    encrypt_key_component,
    put_key_command,
)
from fleetid.se.scp03.secure_messaging import (
    AES_KEY_TYPE,
    C_DECRYPTION,
    C_MAC,
    R_ENCRYPTION,
    R_MAC,
    SCP03_ID,
    SECURITY_LEVELS,
    SessionKeys,
    StaticKeys,
    derive_session_keys,
    pseudo_random_card_challenge,
    session_keys_by_prf,
)

__all__ = [
    "AES_KEY_TYPE",
    "C_DECRYPTION",
    "C_MAC",
    "R_ENCRYPTION",
    "R_MAC",
    "SCP03_ID",
    "SECURITY_LEVELS",
    "HostSession",
    "KeyProvider",
    "SessionKeySource",
    "SessionKeys",
    "StaticKeys",
    "aes_key_component",
    "derive_session_keys",
    "encrypt_key_component",
    "pseudo_random_card_challenge",
    "put_key_command",
    "session_keys_by_prf",
]
