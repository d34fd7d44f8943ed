"""Every ``fleetid`` command's error paths, black-box: one line on stderr, a non-zero exit, never a
traceback.

``CASES`` gives each leaf command (``fleetid audit verify``, ...) its failing invocations: missing
or unusable directories and files, bad numbers, unreachable URLs, unknown records. The walk
checks that ``CASES`` names every command ``fleetid --help`` offers, so a new verb comes with its
error cases. The setup is a real factory (a two-unit lot) and a real authority, made with the
CLI.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.authority_server import fleetid, free_port

from fleetid.cli import build_parser

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class Site:
    tmp: Path
    factory: Path
    authority: Path
    cfg: Path
    env: dict[str, str]

    @property
    def absent(self) -> Path:
        """A path that does not exist."""
        return self.tmp / "absent"

    @property
    def blocked(self) -> Path:
        """A path that cannot exist: its parent is a regular file."""
        return self.tmp / "a-file" / "below"

    @property
    def not_pem(self) -> Path:
        return self.tmp / "a-file"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    tmp = tmp_path_factory.mktemp("cli-errors")
    (tmp / "a-file").write_text("not a certificate, not a directory\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETID_")}
    cfg, factory, authority = tmp / "cfg", tmp / "factory", tmp / "authority"
    steps = [
        ("ceremony", "example", "--out", str(cfg)),
        ("ceremony", "init", "--config", str(cfg / "ceremony.toml"), "--data-dir", str(factory)),
    ]
    for step in steps:
        done = fleetid(*step, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    shares = sorted((factory / "shares").glob("*.toml"))[:3]
    activate = ["ceremony", "activate", "--data-dir", str(factory)]
    for share in shares:
        activate += ["--share", str(share)]
    keys = str(cfg / "transport-keys.toml")
    for step in (
        tuple(activate),
        ("line", "run", "--devices", "2", "--data-dir", str(factory), "--transport-keys", keys),
        (
            "line",
            "run",
            "--devices",
            "1",
            "--data-dir",
            str(factory),
            "--lot",
            "BAD",
            "--defect",
            "0:keygen-fails",
            "--transport-keys",
            keys,
        ),
        ("ca", "init", "--data-dir", str(authority)),
    ):
        done = fleetid(*step, env=env)
        assert done.returncode == 0, done.stdout + done.stderr
    return Site(tmp=tmp, factory=factory, authority=authority, cfg=cfg, env=env)


Case = Callable[[Site], list[str]]


def _device(verb: str, *extra: str) -> Case:
    def case(s: Site) -> list[str]:
        args = ["device", verb, "--wafer", str(s.factory / "wafer"), "--state"]
        return [*args, str(s.tmp / f"state-{verb}"), *extra]

    return case


_UNREACHABLE = "http://127.0.0.1:1"  # nothing listens on port 1

# Each leaf command: (what is wrong, the invocation).
CASES: dict[str, list[tuple[str, Case]]] = {
    "audit verify": [
        ("no data dir", lambda s: ["audit", "verify", "--data-dir", str(s.absent)]),
        (
            "published note missing",
            lambda s: (
                ["audit", "verify", "--data-dir", str(s.factory), "--published", str(s.absent)]
            ),
        ),
        (
            "vkey garbage",
            lambda s: ["audit", "verify", "--data-dir", str(s.factory), "--vkey", "garbage"],
        ),
    ],
    "audit prove": [
        ("no data dir", lambda s: ["audit", "prove", "X", "--data-dir", str(s.absent)]),
        ("unknown serial", lambda s: ["audit", "prove", "NOPE", "--data-dir", str(s.factory)]),
    ],
    "ca init": [
        ("data dir under a file", lambda s: ["ca", "init", "--data-dir", str(s.blocked)]),
        (
            "name too long",
            lambda s: ["ca", "init", "--data-dir", str(s.tmp / "ca-long"), "--name", "x" * 65],
        ),
        (
            "empty name",
            lambda s: ["ca", "init", "--data-dir", str(s.tmp / "ca-empty"), "--name", ""],
        ),
        ("CA exists", lambda s: ["ca", "init", "--data-dir", str(s.authority)]),
    ],
    "ca certs": [("no CA", lambda s: ["ca", "certs", "--data-dir", str(s.absent)])],
    "ca trust-manufacturer": [
        (
            "no CA",
            lambda s: ["ca", "trust-manufacturer", "--data-dir", str(s.absent), "--cert", "x"],
        ),
        (
            "cert missing",
            lambda s: [
                "ca",
                "trust-manufacturer",
                "--data-dir",
                str(s.authority),
                "--cert",
                str(s.absent),
            ],
        ),
        (
            "not PEM",
            lambda s: [
                "ca",
                "trust-manufacturer",
                "--data-dir",
                str(s.authority),
                "--cert",
                str(s.not_pem),
            ],
        ),
    ],
    "ca manufacturers": [("no CA", lambda s: ["ca", "manufacturers", "--data-dir", str(s.absent)])],
    "ca distrust-manufacturer": [
        (
            "unknown",
            lambda s: ["ca", "distrust-manufacturer", "--data-dir", str(s.authority), "ab" * 8],
        ),
    ],
    "ca import-manifest": [
        (
            "file missing",
            lambda s: ["ca", "import-manifest", "--data-dir", str(s.authority), str(s.absent)],
        ),
        (
            "not JSON",
            lambda s: ["ca", "import-manifest", "--data-dir", str(s.authority), str(s.not_pem)],
        ),
    ],
    "ceremony init": [
        (
            "config missing",
            lambda s: (
                ["ceremony", "init", "--config", str(s.absent), "--data-dir", str(s.tmp / "c1")]
            ),
        ),
        (
            "config not TOML",
            lambda s: (
                ["ceremony", "init", "--config", str(s.not_pem), "--data-dir", str(s.tmp / "c2")]
            ),
        ),
    ],
    "ceremony activate": [
        (
            "share missing",
            lambda s: (
                ["ceremony", "activate", "--data-dir", str(s.factory), "--share", str(s.absent)]
            ),
        ),
        (
            "no data dir",
            lambda s: (
                ["ceremony", "activate", "--data-dir", str(s.absent), "--share", str(s.not_pem)]
            ),
        ),
    ],
    "ceremony deactivate": [
        ("no data dir", lambda s: ["ceremony", "deactivate", "--data-dir", str(s.absent)]),
    ],
    "ceremony example": [
        ("out under a file", lambda s: ["ceremony", "example", "--out", str(s.blocked)]),
    ],
    "crl publish": [("no CA", lambda s: ["crl", "publish", "--data-dir", str(s.absent)])],
    "worker run": [
        ("SQLite: no job queue", lambda s: ["worker", "run", "--data-dir", str(s.authority)]),
        ("no data dir", lambda s: ["worker", "run", "--data-dir", str(s.absent)]),
    ],
    "worker defer": [
        ("unknown job", lambda s: ["worker", "defer", "nothing", "--data-dir", str(s.authority)]),
        ("no CA", lambda s: ["worker", "defer", "publish-revocation", "--data-dir", str(s.absent)]),
    ],
    "demo": [
        ("zero devices", lambda s: ["demo", "--devices", "0"]),
        ("negative devices", lambda s: ["demo", "--devices", "-3"]),
    ],
    "device enrol": [
        (
            "unreachable authority",
            _device("enrol", "--unit", "LOT1-000000", "--ca-url", _UNREACHABLE),
        ),
        ("unknown unit", _device("enrol", "--unit", "LOT9-000001", "--ca-url", _UNREACHABLE)),
        (
            "no wafer",
            lambda s: (
                [
                    "device",
                    "enrol",
                    "--wafer",
                    str(s.absent),
                    "--unit",
                    "LOT1-0",
                    "--state",
                    str(s.tmp / "st"),
                    "--ca-url",
                    _UNREACHABLE,
                ]
            ),
        ),
        (
            "root not PEM",
            lambda s: (
                [
                    *_device("enrol", "--unit", "LOT1-000001", "--ca-url")(s),
                    f"https://127.0.0.1:{free_port()}",
                    "--root",
                    str(s.not_pem),
                ]
            ),
        ),
        ("not a URL", _device("enrol", "--unit", "LOT1-000001", "--ca-url", "http://[x")),
    ],
    "device renew": [
        ("not enrolled", _device("renew", "--unit", "LOT1-000000", "--ca-url", _UNREACHABLE)),
    ],
    "device rekey": [
        ("not enrolled", _device("rekey", "--unit", "LOT1-000000", "--ca-url", _UNREACHABLE)),
    ],
    "device status": [
        ("unknown unit", _device("status", "--unit", "NOPE")),
        ("quarantined unit", _device("status", "--unit", "BAD-000000")),
    ],
    "line run": [
        ("no factory", lambda s: ["line", "run", "--devices", "2", "--data-dir", str(s.absent)]),
        (
            "new lot without keys",
            lambda s: (
                ["line", "run", "--devices", "2", "--data-dir", str(s.factory), "--lot", "LOT2"]
            ),
        ),
        (
            "lot name a path",
            lambda s: (
                ["line", "run", "--devices", "2", "--data-dir", str(s.factory), "--lot", "../up"]
            ),
        ),
        ("zero devices", lambda s: ["line", "run", "--devices", "0", "--data-dir", str(s.factory)]),
    ],
    "line status": [("no factory", lambda s: ["line", "status", "--data-dir", str(s.absent)])],
    "line export-manifest": [
        (
            "no factory",
            lambda s: ["line", "export-manifest", "--data-dir", str(s.absent), "--out", "x"],
        ),
        (
            "out dir missing",
            lambda s: [
                "line",
                "export-manifest",
                "--data-dir",
                str(s.factory),
                "--out",
                str(s.absent / "m.json"),
            ],
        ),
    ],
    "revoke": [
        (
            "no CA",
            lambda s: ["revoke", "--data-dir", str(s.absent), "ab", "--reason", "superseded"],
        ),
        (
            "unknown serial",
            lambda s: ["revoke", "--data-dir", str(s.authority), "ab", "--reason", "superseded"],
        ),
    ],
    "applet list": [("unknown flag", lambda s: ["applet", "list", "--bogus"])],
    "applet key": [("no data dir", lambda s: ["applet", "key", "--data-dir", str(s.absent)])],
    "applet status": [
        (
            "no card files",
            lambda s: [
                "applet",
                "status",
                "--card",
                f"{s.absent}:{s.absent}",
                "--keys",
                str(s.not_pem),
            ],
        ),
        ("card not SILICON:FLASH", lambda s: ["applet", "status", "--card", "x", "--keys", "k"]),
    ],
    "applet push": [
        (
            "unknown applet",
            lambda s: [
                "applet",
                "push",
                "nonesuch",
                "--data-dir",
                str(s.authority),
                "--card",
                f"{s.absent}:{s.absent}",
                "--keys",
                str(s.not_pem),
            ],
        ),
        (
            "keys not TOML",
            lambda s: [
                "applet",
                "push",
                "identity",
                "--data-dir",
                str(s.authority),
                "--card",
                f"{s.absent}:{s.absent}",
                "--keys",
                str(s.not_pem),
            ],
        ),
    ],
    "se pcsc": [
        (
            "no chip files",
            lambda s: ["se", "pcsc", "--silicon", str(s.absent), "--flash", str(s.absent)],
        ),
    ],
    "serve": [
        ("no listener", lambda s: ["serve", "--data-dir", str(s.authority)]),
        ("no CA", lambda s: ["serve", "--data-dir", str(s.absent), "--http", "127.0.0.1:9"]),
        ("bad listen", lambda s: ["serve", "--data-dir", str(s.authority), "--http", "nonsense"]),
    ],
    "token create": [
        (
            "ttl beyond any date",
            lambda s: (
                [
                    "token",
                    "create",
                    "--data-dir",
                    str(s.authority),
                    "--device-id",
                    "gw-1",
                    "--ttl",
                    "999999999999",
                ]
            ),
        ),
        (
            "negative ttl",
            lambda s: (
                [
                    "token",
                    "create",
                    "--data-dir",
                    str(s.authority),
                    "--device-id",
                    "gw-1",
                    "--ttl",
                    "-5",
                ]
            ),
        ),
        ("no CA", lambda s: ["token", "create", "--data-dir", str(s.absent), "--device-id", "x"]),
    ],
    "v2x init": [("no passphrase", lambda s: ["v2x", "init", "--data-dir", str(s.authority)])],
    "v2x publish": [("no passphrase", lambda s: ["v2x", "publish", "--data-dir", str(s.absent)])],
    "v2x stats": [("no passphrase", lambda s: ["v2x", "stats", "--data-dir", str(s.absent)])],
    "filter publish": [
        (
            "out dir missing",
            lambda s: (
                [
                    "filter",
                    "publish",
                    "--data-dir",
                    str(s.authority),
                    "--out",
                    str(s.absent / "filter.bin"),
                ]
            ),
        ),
        (
            "no CA",
            lambda s: (
                ["filter", "publish", "--data-dir", str(s.absent), "--out", str(s.tmp / "f.bin")]
            ),
        ),
    ],
    "threats list": [("unknown scenario", lambda s: ["threats", "list", "flash"])],
    "package order": [
        (
            "no authority",
            lambda s: [
                *("package", "order", "--data-dir", str(s.absent), "--device", "GW-0001"),
                *("--kind", "configuration", "--content", str(s.not_pem)),
            ],
        ),
        (
            "content missing",
            lambda s: [
                *("package", "order", "--data-dir", str(s.authority), "--device", "GW-0001"),
                *("--kind", "configuration", "--content", str(s.absent)),
            ],
        ),
    ],
    "package status": [
        ("no authority", lambda s: ["package", "status", "--data-dir", str(s.absent)]),
        (
            "unknown event",
            lambda s: ["package", "status", "--data-dir", str(s.authority), "NO-SUCH-EVENT"],
        ),
    ],
    "discovery list": [
        ("no authority", lambda s: ["discovery", "list", "--data-dir", str(s.absent)]),
    ],
    "threats run": [("unknown scenario", lambda s: ["threats", "run", "cloning"])],
    "filter check": [
        (
            "filter missing",
            lambda s: ["filter", "check", "--filter", str(s.absent), "--cert", str(s.not_pem)],
        ),
        (
            "cert not PEM",
            lambda s: ["filter", "check", "--filter", str(s.not_pem), "--cert", str(s.not_pem)],
        ),
    ],
    "fido init": [
        (
            "root not PEM",
            lambda s: [
                *("fido", "init", "--data-dir", str(s.authority), "--rp-id", "example.org"),
                *("--origin", "https://example.org", "--metadata-root", str(s.not_pem)),
            ],
        ),
        (
            "no authority",
            lambda s: [
                *("fido", "init", "--data-dir", str(s.absent), "--rp-id", "example.org"),
                *("--origin", "https://example.org", "--metadata-root", str(s.not_pem)),
            ],
        ),
    ],
    "fido load-metadata": [
        (
            "not set up",
            lambda s: ["fido", "load-metadata", "--data-dir", str(s.authority), str(s.not_pem)],
        ),
        (
            "BLOB missing",
            lambda s: ["fido", "load-metadata", "--data-dir", str(s.authority), str(s.absent)],
        ),
        (
            "CRL missing",
            lambda s: [
                *("fido", "load-metadata", "--data-dir", str(s.authority)),
                *("--crl", str(s.absent), str(s.not_pem)),
            ],
        ),
    ],
    "fido operators": [
        ("not set up", lambda s: ["fido", "operators", "--data-dir", str(s.absent), "alice"]),
    ],
    # The operator's commands (docs/operations.md).
    "cert list": [
        ("no data dir", lambda s: ["cert", "list", "--data-dir", str(s.absent)]),
        ("neither local nor remote", lambda s: ["cert", "list"]),
        ("remote without credential", lambda s: ["cert", "list", "--ca-url", "https://x"]),
        (
            "bad status",
            lambda s: ["cert", "list", "--data-dir", str(s.authority), "--status", "lost"],
        ),
        (
            "bad span",
            lambda s: ["cert", "list", "--data-dir", str(s.authority), "--expiring-within", "x"],
        ),
    ],
    "cert show": [
        ("unknown serial", lambda s: ["cert", "show", "ab", "--data-dir", str(s.authority)]),
        ("not hex", lambda s: ["cert", "show", "zz", "--data-dir", str(s.authority)]),
    ],
    "device list": [("no data dir", lambda s: ["device", "list", "--data-dir", str(s.absent)])],
    "device show": [
        ("unknown device", lambda s: ["device", "show", "nope", "--data-dir", str(s.authority)]),
    ],
    "token list": [
        ("no data dir", lambda s: ["token", "list", "--data-dir", str(s.absent)]),
        ("bad state", lambda s: ["token", "list", "--data-dir", str(s.authority), "--state", "x"]),
    ],
    "token revoke": [
        ("unknown token", lambda s: ["token", "revoke", "t-0", "--data-dir", str(s.authority)]),
    ],
    "operator create": [
        (
            "bad role",
            lambda s: ["operator", "create", "x", "--role", "god", "--data-dir", str(s.authority)],
        ),
        (
            "no CA",
            lambda s: ["operator", "create", "x", "--role", "viewer", "--data-dir", str(s.absent)],
        ),
    ],
    "operator list": [("no data dir", lambda s: ["operator", "list", "--data-dir", str(s.absent)])],
    "operator revoke": [
        ("unknown", lambda s: ["operator", "revoke", "ab", "--data-dir", str(s.authority)]),
    ],
    "ca rollover": [("no CA", lambda s: ["ca", "rollover", "--data-dir", str(s.absent)])],
    "ca bootstrap": [
        (
            "bad fingerprint",
            lambda s: ["ca", "bootstrap", "--ca-url", "https://127.0.0.1:1", "--fingerprint", "a"],
        ),
        (
            "unreachable",
            lambda s: [
                "ca",
                "bootstrap",
                "--ca-url",
                "https://127.0.0.1:1",
                "--fingerprint",
                "ab" * 32,
                "--out",
                str(s.tmp / "root.pem"),
            ],
        ),
    ],
    "completion": [("unknown shell", lambda s: ["completion", "tcsh"])],
    "doctor": [
        ("no data dir", lambda s: ["doctor", "--data-dir", str(s.absent)]),
        ("no public URL, no CRLs", lambda s: ["doctor", "--data-dir", str(s.authority)]),
    ],
    "backup": [
        ("no data dir", lambda s: ["backup", "--data-dir", str(s.absent), "--to", str(s.tmp)]),
        (
            "target not empty",
            lambda s: ["backup", "--data-dir", str(s.authority), "--to", str(s.factory)],
        ),
    ],
    "restore": [
        (
            "not a backup",
            lambda s: ["restore", "--from", str(s.factory), "--data-dir", str(s.absent)],
        ),
    ],
    "reload": [
        ("no server", lambda s: ["reload", "--data-dir", str(s.authority)]),
        ("no data dir", lambda s: ["reload", "--data-dir", str(s.absent)]),
    ],
}


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[str]:
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        yield " ".join(path)
        return
    for name, child in subparsers[0].choices.items():
        yield from _leaves(child, (*path, name))


def test_every_command_has_error_cases() -> None:
    assert sorted(_leaves(build_parser())) == sorted(CASES)


@pytest.mark.parametrize(
    ("command", "why", "case"),
    [(command, why, case) for command, cases in CASES.items() for why, case in cases],
    ids=[f"{command}: {why}" for command, cases in CASES.items() for why, _ in cases],
)
def test_an_error_is_one_line_on_stderr_and_a_non_zero_exit(
    site: Site, command: str, why: str, case: Case
) -> None:
    ran = fleetid(*case(site), env=site.env)
    assert ran.returncode != 0, f"{command} ({why}) succeeded: {ran.stdout}"
    assert "Traceback" not in ran.stderr + ran.stdout, ran.stderr
    lines = ran.stderr.splitlines()
    # ``audit verify`` states a bad log as its verdict on stdout; everything else on stderr.
    assert len(lines) == 1 or (not lines and ran.stdout.startswith("BAD")), ran.stderr
    if lines:
        assert lines[0].startswith(("fleetid: ", "ERROR: ")), lines[0]


def test_a_closed_pipe_ends_the_command_quietly(site: Site) -> None:
    """Regression: ``fleetid audit prove SERIAL | head`` printed a BrokenPipeError traceback."""
    serial = fleetid("line", "status", "--data-dir", str(site.factory), env=site.env)
    first = serial.stdout.split()[1]
    code = "import sys; from fleetid.cli import main; sys.exit(main())"
    args = [sys.executable, "-c", code, "audit", "prove", first, "--data-dir", str(site.factory)]
    read_end, write_end = os.pipe()
    prove = subprocess.Popen(args, stdout=write_end, stderr=subprocess.PIPE, env=site.env)
    os.close(write_end)
    os.close(read_end)  # the reader has gone before the proof is written, as `head` may
    _, err = prove.communicate(timeout=60)
    assert prove.returncode != 0
    assert err.decode() == ""


# -- one regression test per reported path -------------------------------------------------------


def test_token_ttl_beyond_any_date_is_refused_by_its_bound(site: Site) -> None:
    """Regression: ``--ttl 999999999999`` raised OverflowError (date value out of range)."""
    args = ["token", "create", "--data-dir", str(site.authority), "--device-id", "gw-1"]
    ran = fleetid(*args, "--ttl", "999999999999", env=site.env)
    assert ran.returncode == 1
    assert ran.stderr == (
        "fleetid: ConfigError: a token's lifetime is positive and at most 365 days (31536000 s)\n"
    )
    assert fleetid(*args, "--ttl", "31536000", env=site.env).returncode == 0


def test_filter_publish_to_a_missing_directory_publishes_nothing(site: Site) -> None:
    """Regression: the filter was signed and kept, then writing --out raised FileNotFoundError."""
    kept = site.authority / "revocation" / "filter"
    before = sorted(kept.iterdir()) if kept.exists() else []
    out = site.absent / "filter.bin"
    ran = fleetid("filter", "publish", "--data-dir", str(site.authority), "--out", str(out))
    assert ran.returncode == 1
    assert (
        ran.stderr == f"fleetid: ConfigError: no directory {out.parent} to write --out {out} into\n"
    )
    assert (sorted(kept.iterdir()) if kept.exists() else []) == before


def test_a_status_word_reaches_the_operator_as_a_sentence(site: Site) -> None:
    """Regression: ``device status`` of a unit the line quarantined printed a traceback ending
    in a bare ``SW 6A88``."""
    ran = _device_run(site, "status", "BAD-000000")
    assert ran.returncode == 1
    (line,) = ran.stderr.splitlines()
    assert "unit BAD-000000 holds no IDevID: the line did not secure it" in line
    assert "the referenced key or data object is not on the card" in line


def test_device_cli_on_a_tls_failure_says_so_in_one_line(site: Site) -> None:
    """Regression: a TLS handshake failure (here: a peer that answers plain text) printed an
    httpx traceback."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def answer() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        peer = threading.Thread(target=answer, daemon=True)
        peer.start()
        root = site.factory / "manufacturer-root.pem"
        ran = _device_run(
            site,
            "enrol",
            "LOT1-000001",
            "--ca-url",
            f"https://127.0.0.1:{port}",
            "--root",
            str(root),
        )
        peer.join(timeout=30)
    assert ran.returncode == 1
    assert ran.stderr.startswith(
        f"fleetid: UnreachableError: cannot reach https://127.0.0.1:{port}/"
    )
    assert len(ran.stderr.splitlines()) == 1


def test_device_cli_on_an_unknown_unit_names_it(site: Site) -> None:
    """Regression: an unknown unit raised KeyError with a traceback."""
    ran = _device_run(site, "status", "LOT1-999999")
    assert ran.returncode == 1
    assert ran.stderr == (
        f"fleetid: NotFoundError: no unit 'LOT1-999999' in the wafer lots under "
        f"{site.factory / 'wafer'}\n"
    )


def test_serve_says_serving_only_once_the_socket_is_bound(site: Site) -> None:
    """Regression: ``serve`` printed "serving on" before binding, then failed to bind."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for extra in ([], ["--workers", "2"]):
            args = ["serve", "--data-dir", str(site.authority), "--http", f"127.0.0.1:{port}",
                    "--allow-loopback-urls"]  # fmt: skip
            ran = fleetid(*args, *extra, env=site.env)
            assert ran.returncode != 0
            assert "serving on" not in ran.stdout, ran.stdout
            assert "Traceback" not in ran.stderr and len(ran.stderr.splitlines()) == 1
            assert "in use" in ran.stderr


def _device_run(site: Site, verb: str, unit: str, *extra: str) -> subprocess.CompletedProcess[str]:
    state = site.tmp / f"state-{verb}-{unit}"
    args = ["device", verb, "--wafer", str(site.factory / "wafer"), "--unit", unit]
    return fleetid(*args, "--state", str(state), *extra, env=site.env)
