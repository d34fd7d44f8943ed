"""Examples in every command's ``--help`` (docs/operations.md, "Conventions").

One table, command path to example lines, set as each parser's epilog once every verb module has
registered (``attach``); a verb module keeps only its arguments. ``tests/unit/cli`` parses every
example with the real parser, so an example cannot drift from the command it shows.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Final

__all__ = ["EXAMPLES", "attach", "commands"]

_D = "--data-dir /var/lib/fleetid"
# The same commands through the admin API, as an operator (fleetid operator create).
_REMOTE = (
    "--ca-url https://pki.example.com:8443 --root fleetid-root.pem"
    " --operator-cert alice.crt --operator-key alice.key"
)
_UNIT = "--wafer factory/wafer --unit LOT1-000001 --state st"

EXAMPLES: Final[dict[tuple[str, ...], tuple[str, ...]]] = {
    ("audit", "verify"): (f"fleetid audit verify {_D}",),
    ("audit", "prove"): (f"fleetid audit prove 1f2e3d {_D} > proof.json",),
    ("ca", "init"): (f"fleetid ca init {_D} --name Example",),
    ("ca", "certs"): (f"fleetid ca certs {_D} > chain.pem",),
    ("ca", "trust-manufacturer"): (f"fleetid ca trust-manufacturer {_D} --cert oem-root.pem",),
    ("ca", "manufacturers"): (f"fleetid ca manufacturers {_D}",),
    ("ca", "distrust-manufacturer"): (f"fleetid ca distrust-manufacturer {_D} 3a7bd3e2360a3d29",),
    ("ca", "import-manifest"): (f"fleetid ca import-manifest {_D} manifest.json",),
    ("ca", "rollover"): (f"fleetid ca rollover {_D}", f"fleetid ca rollover {_D} --root --json"),
    ("ca", "bootstrap"): (
        "fleetid ca bootstrap --ca-url https://ca.example.com:8443 --fingerprint "
        "0da7498dcf1dbe4fa3aad1a03675a6c68236df04abb8bd6c5f6c7056025077d7 --out root.pem",
    ),
    ("ceremony", "init"): ("fleetid ceremony init --config cfg/ceremony.toml --data-dir factory",),
    ("ceremony", "activate"): (
        "fleetid ceremony activate --data-dir factory --share A.toml --share B.toml",
    ),
    ("ceremony", "deactivate"): ("fleetid ceremony deactivate --data-dir factory",),
    ("ceremony", "example"): ("fleetid ceremony example --out cfg/",),
    ("crl", "publish"): (f"fleetid crl publish {_D}", f"fleetid crl publish {_REMOTE}"),
    ("demo",): ("fleetid demo",),
    ("worker", "run"): (
        f"fleetid worker run {_D} --concurrency 4",
        f"fleetid worker run {_D} --once",
    ),
    ("worker", "defer"): (f"fleetid worker defer publish-revocation {_D}",),
    ("device", "enrol"): (
        f"fleetid device enrol {_UNIT} --ca-url https://ca:8443 --root root.pem",
    ),
    ("device", "renew"): (f"fleetid device renew {_UNIT} --ca-url https://ca:8443 --force",),
    ("device", "rekey"): (f"fleetid device rekey {_UNIT} --ca-url https://ca:8443",),
    ("device", "status"): (f"fleetid device status {_UNIT}",),
    ("device", "list"): (f"fleetid device list {_D} --status enrolled",),
    ("device", "show"): (
        f"fleetid device show gw-0001 {_D} --json",
        f"fleetid device show gw-0001 {_REMOTE}",
    ),
    ("line", "run"): ("fleetid line run --devices 100 --data-dir factory",),
    ("line", "status"): ("fleetid line status --data-dir factory",),
    ("line", "export-manifest"): (
        "fleetid line export-manifest --data-dir factory --out manifest.json",
    ),
    ("revoke",): (
        f"fleetid revoke {_D} 1f2e3d --reason keyCompromise",
        f"fleetid revoke {_D} --device gw-0001 --reason cessationOfOperation",
        f"fleetid revoke 1f2e3d --reason keyCompromise {_REMOTE}",
    ),
    ("se", "pcsc"): ("fleetid se pcsc --silicon chip.bin --flash flash.bin",),
    ("applet", "list"): ("fleetid applet list", "fleetid applet list --json"),
    ("applet", "key"): (f"fleetid applet key {_D} > applet-signing.pub.pem",),
    ("applet", "status"): (
        "fleetid applet status --card chip.bin:flash.bin --keys isd-keys.toml --kvn 0x30 --json",
    ),
    ("applet", "push"): (
        f"fleetid applet push identity --version 2 {_D} --card a/chip.bin:a/flash.bin "
        "--card b/chip.bin:b/flash.bin --keys isd-keys.toml --kvn 0x30",
        f"fleetid applet push identity {_D} --card chip.bin:flash.bin --keys isd-keys.toml --json",
    ),
    ("serve",): (
        f"fleetid serve {_D} --https 0.0.0.0:8443 --public-url http://pki.example.com",
        f"fleetid serve {_D} --config /etc/fleetid/fleetid.toml",
    ),
    ("token", "create"): (
        f"fleetid token create {_D} --device-id gw-1",
        f"fleetid token create {_D} --device-prefix gw- --count 300 --json > tokens.json",
    ),
    ("token", "list"): (
        f"fleetid token list {_D} --state unused",
        f"fleetid token list --state unused {_REMOTE}",
    ),
    ("token", "revoke"): (f"fleetid token revoke t-0123456789abcdef {_D}",),
    ("v2x", "init"): (f"fleetid v2x init {_D}",),
    ("fido", "init"): (
        f"fleetid fido init {_D} --rp-id operators.example.org "
        "--origin https://operators.example.org --metadata-root mds-root.pem",
    ),
    ("fido", "load-metadata"): (f"fleetid fido load-metadata {_D} blob.jwt",),
    ("fido", "operators"): (f"fleetid fido operators {_D} alice",),
    ("package", "order"): (
        f"fleetid package order {_D} --device GW-0001 --kind configuration --content cfg.json",
    ),
    ("package", "status"): (f"fleetid package status {_D}",),
    ("discovery", "list"): (f"fleetid discovery list {_D}",),
    ("threats", "list"): ("fleetid threats list",),
    ("threats", "run"): ("fleetid threats run", "fleetid threats run key-cloning --json"),
    ("v2x", "publish"): (f"fleetid v2x publish {_D}",),
    ("v2x", "stats"): (f"fleetid v2x stats {_D}",),
    ("filter", "publish"): (f"fleetid filter publish {_D} --out filter.bin",),
    ("filter", "check"): (
        "fleetid filter check --filter filter.bin --cert device.pem --trust issuing-ca.pem",
    ),
    ("cert", "list"): (
        f"fleetid cert list {_D} --device gw-0001",
        f"fleetid cert list {_D} --status valid --expiring-within 30d --json",
        f"fleetid cert list --status revoked {_REMOTE}",
    ),
    ("cert", "show"): (
        f"fleetid cert show 1f2e3d {_D}",
        f"fleetid cert show 1f2e3d {_D} --pem",
        f"fleetid cert show 1f2e3d {_REMOTE}",
    ),
    ("operator", "create"): (
        f"fleetid operator create alice --role operator --days 90 --out creds/ {_D}",
        f"fleetid operator create sam --role security-officer {_D} --json",
    ),
    ("operator", "list"): (f"fleetid operator list {_D}",),
    ("operator", "revoke"): (f"fleetid operator revoke 5e2b... {_D}",),
    ("completion",): (
        "fleetid completion bash > /etc/bash_completion.d/fleetid",
        "fleetid completion fish > ~/.config/fish/completions/fleetid.fish",
    ),
    ("doctor",): (f"fleetid doctor {_D}", f"fleetid doctor {_D} --within 14d --json"),
    ("backup",): (f"fleetid backup {_D} --to /backup/fleetid-2026-12-07",),
    ("restore",): (
        "fleetid restore --from /backup/fleetid-2026-12-07 --data-dir /var/lib/fleetid-restored",
    ),
    ("reload",): (f"fleetid reload {_D}",),
}


def commands(
    parser: argparse.ArgumentParser,
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every runnable command under ``parser``: its path of names and its parser."""

    def walk(
        node: argparse.ArgumentParser, path: tuple[str, ...]
    ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
        groups = [a for a in node._actions if isinstance(a, argparse._SubParsersAction)]
        if not groups:
            yield path, node
            return
        for name, child in groups[0].choices.items():
            yield from walk(child, (*path, name))

    yield from walk(parser, ())


def attach(parser: argparse.ArgumentParser) -> None:
    """Set each command's examples as its epilog (kept as written, line by line)."""
    for path, command in commands(parser):
        examples = EXAMPLES.get(path)
        if not examples:
            continue
        lines = "\n".join(f"  {line}" for line in examples)
        before = f"{command.epilog}\n\n" if command.epilog else ""
        command.epilog = f"{before}examples:\n{lines}"
        command.formatter_class = argparse.RawDescriptionHelpFormatter
