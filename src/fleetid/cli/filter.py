"""``fleetid filter publish|check``: the signed offline revocation filter.

* ``publish --data-dir DIR --out FILE`` builds the current full filter from the registry (signed
  by the issuing CA's key in the HSM), keeps it in ``DIR/revocation/filter`` (served at
  ``/revocation/filter/full``) and writes it to ``FILE``. ``--delta`` writes a cumulative delta
  over the last full filter instead; ``--mqtt HOST:PORT`` also retains it on the broker.
* ``check --filter FILE [--filter DELTA] --cert CERT.pem`` prints the verdict for one certificate
  with no network. The filter's signer must be a trusted issuing CA: from ``--trust PEM``, or
  from ``--data-dir`` (the authority's issuing-CA certificates), or else the CA certificate that
  follows the leaf in ``CERT.pem`` (a chain file; said so on stderr, since that is not an
  anchor). Exit status: 0 valid, 3 not covered (issued after the filter), 4 revoked; 1 for a
  filter that does not verify.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Final

__all__ = ["EXIT_NOT_COVERED", "EXIT_REVOKED", "register"]

EXIT_NOT_COVERED: Final = 3
EXIT_REVOKED: Final = 4


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("filter", help="publish or check the offline revocation filter")
    verbs = parser.add_subparsers(dest="filter_command", metavar="ACTION", required=True)

    publish = verbs.add_parser("publish", help="write the current signed filter")
    publish.add_argument("--data-dir", type=Path, required=True, help="the authority's directory")
    publish.add_argument("--out", type=Path, required=True, help="where to write the filter")
    publish.add_argument(
        "--delta", action="store_true", help="a cumulative delta over the last full filter"
    )
    publish.add_argument("--mqtt", metavar="HOST:PORT", help="also retain it on this broker")
    publish.add_argument("--topic-prefix", default=None, help="MQTT topic prefix")
    publish.set_defaults(func=_publish)

    check = verbs.add_parser("check", help="the verdict for one certificate (no network)")
    check.add_argument(
        "--filter",
        type=Path,
        action="append",
        required=True,
        help="a full filter, then any deltas (repeat)",
    )
    check.add_argument("--cert", type=Path, required=True, help="the certificate (PEM)")
    check.add_argument("--trust", type=Path, help="PEM: the fleet's issuing CA certificate(s)")
    check.add_argument("--data-dir", type=Path, help="take the issuing CAs from this authority")
    check.set_defaults(func=_check)


def _publish(args: argparse.Namespace) -> int:
    from fleetid.authority.fleet_ca import FleetCa
    from fleetid.clock import SystemClock
    from fleetid.config import Settings, parse_listen
    from fleetid.errors import ConfigError
    from fleetid.revocation.channels import DEFAULT_TOPIC_PREFIX, MqttFilterPublisher
    from fleetid.revocation.publish import FilterPublisher, filter_directory

    # Refused before anything is signed or published, not after (a filter kept but not written).
    if not args.out.parent.is_dir():
        raise ConfigError(f"no directory {args.out.parent} to write --out {args.out} into")
    if args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a directory; name the filter file")
    settings = Settings.load(args.data_dir)
    ca = FleetCa.open(settings, clock=SystemClock())
    try:
        publisher = FilterPublisher.for_ca(ca, directory=filter_directory(args.data_dir))
        published = publisher.publish_delta() if args.delta else publisher.publish_full()
    finally:
        ca.close()
    args.out.write_bytes(published.data)
    header = published.header
    print(
        f"{header.kind.name.lower()} filter: watermark {header.watermark}, covers issuance up to "
        f"{header.coverage_until.isoformat()}, {header.revoked_count} revoked / "
        f"{header.valid_count} valid, {len(published.data)} bytes -> {args.out}"
    )
    if args.mqtt:
        listen = parse_listen(args.mqtt)
        mqtt = MqttFilterPublisher(
            listen.host, listen.port, topic_prefix=args.topic_prefix or DEFAULT_TOPIC_PREFIX
        )
        try:
            mqtt.publish(published.data)
        finally:
            mqtt.close()
        print(f"retained on mqtt://{listen}/{mqtt.topic(header.kind)}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from cryptography import x509

    from fleetid.errors import EncodingError, VerificationError
    from fleetid.revocation.check.filter import FilterVerifier, Verdict, filter_certificate_id
    from fleetid.revocation.filter.format import key_id, parse_filter

    try:
        bundle = x509.load_pem_x509_certificates(args.cert.read_bytes())
    except ValueError as exc:
        raise EncodingError(f"{args.cert} is not PEM: {exc}") from exc
    leaf = bundle[0]
    signers = _trusted_signers(args, bundle)
    artefacts = [path.read_bytes() for path in args.filter]
    wanted = parse_filter(artefacts[0]).header.signer_key_id
    signer = next((c for c in signers if key_id(_ec(c)) == wanted), None)
    if signer is None:
        raise VerificationError("the filter is not signed by a trusted issuing CA")
    verifier = FilterVerifier(_ec(signer))
    for data in artefacts:
        verifier.load(data)
    verdict = verifier.status(filter_certificate_id(leaf), leaf.not_valid_before_utc)
    coverage = verifier.coverage_until.isoformat() if verifier.coverage_until else "-"
    print(
        f"{verdict.value}: serial {leaf.serial_number:x}, filter watermark {verifier.watermark}, "
        f"coverage {coverage}"
    )
    if verdict is Verdict.REVOKED:
        return EXIT_REVOKED
    if verdict is Verdict.NOT_COVERED:
        return EXIT_NOT_COVERED
    return 0


def _ec(certificate: Any) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec

    from fleetid.errors import VerificationError

    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise VerificationError("the filter signer must be an EC key")
    return key


def _trusted_signers(args: argparse.Namespace, bundle: list[Any]) -> list[Any]:
    from cryptography import x509

    from fleetid.crypto.pkix import issued_by
    from fleetid.errors import ConfigError, EncodingError, VerificationError

    if args.trust is not None:
        try:
            return list(x509.load_pem_x509_certificates(args.trust.read_bytes()))
        except ValueError as exc:
            raise EncodingError(f"{args.trust} is not PEM: {exc}") from exc
    if args.data_dir is not None:
        from fleetid.config import Settings
        from fleetid.revocation.registry import RevocationRegistry, issuer_certificate
        from fleetid.store.engine import engine_from_settings
        from fleetid.store.repositories import Store

        store = Store(engine_from_settings(Settings.load(args.data_dir)))
        try:
            return [issuer_certificate(i) for i in RevocationRegistry(store).issuers()]
        finally:
            store.dispose()
    chain = bundle[1:]
    if not chain:
        raise ConfigError(
            "no trusted filter signer: pass --trust ISSUING_CA.pem or --data-dir, or give the "
            "certificate as a chain file (leaf, then its issuing CA)"
        )
    if not issued_by(bundle[0], chain[0]):
        raise VerificationError("the certificate is not issued by the next in its file")
    print(
        "note: the filter signer is taken from the chain in the certificate file, not from a "
        "trust anchor; pass --trust for an anchored check",
        file=sys.stderr,
    )
    return [chain[0]]
