"""``fleetid device enrol|renew|rekey|status``: the device agent from the command line;
``fleetid device list|show``: the authority's view of its devices (``cli.device_inspect``).

In the shape of ``step ca certificate`` / ``step ca renew`` / ``step ca rekey``. The device is an
emulated card of a wafer lot (``fleetid line run`` makes them: ``<factory>/wafer/<LOT>``;
``--wafer`` names that directory or the lot's own); the agent's
state lives in ``--state DIR`` and is public material only: ``anchors.pem`` (trust anchors),
``credential.pem`` (certificate then intermediates) and ``state.json`` (lifecycle state and the
SE key handle). The private keys never leave the card.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from fleetid.cli import device_inspect

__all__ = ["register"]


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "device", help="a device's agent: enrol, renew, rekey, status; the authority's list, show"
    )
    verbs = parser.add_subparsers(dest="device_command", metavar="VERB", required=True)
    for name, help_text in (
        ("enrol", "enrol with the IDevID (attestation-gated EST simpleenroll)"),
        ("renew", "refresh the credential if due (--force: now), proven by the current one"),
        ("rekey", "new SE key and attestation, under the current credential"),
        ("status", "print the lifecycle state and the credential"),
    ):
        verb = verbs.add_parser(name, help=help_text)
        verb.add_argument(
            "--wafer",
            type=Path,
            required=True,
            help="the factory's wafer directory (FACTORY/wafer) or one lot's directory",
        )
        verb.add_argument("--unit", required=True, help="the unit (e.g. LOT1-000001)")
        verb.add_argument("--state", type=Path, required=True, help="the agent's state directory")
        if name != "status":
            verb.add_argument("--ca-url", required=True, help="the authority's base URL")
            verb.add_argument(
                "--root", type=Path, help="fleet root PEM (first enrolment; TLS trust too)"
            )
        if name == "renew":
            verb.add_argument("--force", action="store_true", help="renew even if not due")
        verb.set_defaults(func=_run)
    device_inspect.register_into(verbs)


def _client(args: argparse.Namespace) -> Any:
    from fleetid.se.client import SecureElementClient
    from fleetid.sim.wafer import open_lot_of

    client = SecureElementClient(open_lot_of(args.wafer, args.unit).power_on(args.unit))
    client.select_identity()
    return client


def _agent(args: argparse.Namespace) -> Any:
    from cryptography import x509

    from fleetid.clock import SystemClock
    from fleetid.device.agent import AgentState, Credential, DeviceAgent
    from fleetid.device.truststore import TrustStore
    from fleetid.errors import ConfigError, EncodingError
    from fleetid.policy import DEFAULT_POLICY, CredentialType

    client = _client(args)
    anchors = args.state / "anchors.pem"
    if anchors.exists():
        trust = TrustStore.load(anchors)
    elif getattr(args, "root", None) is not None:
        try:
            trust = TrustStore(x509.load_pem_x509_certificates(args.root.read_bytes()))
        except ValueError as exc:
            raise EncodingError(f"--root {args.root} is not a PEM certificate: {exc}") from exc
    else:
        raise ConfigError("no trust anchors yet: give --root with the fleet root PEM")
    agent = DeviceAgent(
        se=client,
        clock=SystemClock(),
        cadence=DEFAULT_POLICY.profile(CredentialType.OPERATIONAL).cadence,
        trust=trust,
    )
    state_file = args.state / "state.json"
    if state_file.exists():
        try:
            saved = json.loads(state_file.read_text())
            agent.state = AgentState(saved["state"])
            if saved.get("handle") is not None:
                leaf, *intermediates = x509.load_pem_x509_certificates(
                    (args.state / "credential.pem").read_bytes()
                )
                agent.credential = Credential(
                    certificate=leaf,
                    handle=int(saved["handle"]),
                    intermediates=tuple(intermediates),
                )
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"the agent state in {args.state} is unreadable: {exc!r}") from exc
    return agent


def _save(args: argparse.Namespace, agent: Any) -> None:
    from cryptography.hazmat.primitives import serialization

    args.state.mkdir(parents=True, exist_ok=True)
    agent.trust.save(args.state / "anchors.pem")
    credential = agent.credential
    if credential is not None:
        (args.state / "credential.pem").write_bytes(
            b"".join(
                c.public_bytes(serialization.Encoding.PEM)
                for c in (credential.certificate, *credential.intermediates)
            )
        )
    (args.state / "state.json").write_text(
        json.dumps(
            {"state": str(agent.state), "handle": None if credential is None else credential.handle}
        )
    )


def _run(args: argparse.Namespace) -> int:
    from fleetid.device.transport import HttpTransport

    if args.device_command == "status" and not (args.state / "state.json").exists():
        from cryptography.x509.oid import NameOID

        from fleetid.errors import NotFoundError
        from fleetid.errors import ReferencedDataNotFoundError as NotOnCardError

        try:
            idevid = _client(args).attestation_chain()[0]
        except NotOnCardError as exc:
            raise NotFoundError(
                f"unit {args.unit} holds no IDevID: the line did not secure it "
                f"(`fleetid line status` says why) [{exc}]"
            ) from exc
        (serial,) = idevid.subject.get_attributes_for_oid(NameOID.SERIAL_NUMBER)
        print(f"device {serial.value}: factory (not enrolled)")
        return 0
    agent = _agent(args)
    if args.device_command == "status":
        credential = agent.credential
        print(f"device {agent.device_id}: {agent.state}")
        if credential is not None:
            due = agent.cadence.renew_from(credential.not_after).isoformat()
            print(f"credential {credential.serial} until {credential.not_after.isoformat()}")
            print(f"renewal due from {due}")
        return 0
    bundle = args.root if getattr(args, "root", None) is not None else args.state / "anchors.pem"
    transport = HttpTransport.connect(
        args.ca_url, ca_bundle=bundle if args.ca_url.startswith("https") else None
    )
    try:
        if args.device_command == "enrol":
            credential = agent.enrol(transport)
        elif args.device_command == "rekey":
            credential = agent.rekey(transport)
        elif args.force:
            credential = agent.refresh(transport)
        else:
            action = agent.tick(transport)
            credential = agent.credential
            if action is None:
                print("not due")
    finally:
        transport.close()
        _save(args, agent)
    print(f"credential {credential.serial} until {credential.not_after.isoformat()}")
    return 0
