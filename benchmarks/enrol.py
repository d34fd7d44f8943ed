"""Enrolments per second over HTTPS, side by side with cfssl's sign endpoint, in one run.

What each row measures (all driven by ``wrk -t2 -c16`` with a Lua script that posts pre-made
requests, against servers on 127.0.0.1, on the same 2 cores as wrk itself):

* **cfssl sign** (Debian ``golang-cfssl``): ``POST /api/v1/cfssl/sign`` with one P-256 CSR in
  JSON, replayed; ``cfssl serve`` with a generated P-256 CA. No authentication, no attestation,
  no database: parse the CSR, sign, answer. Over HTTPS (``-tls-cert``) and plain HTTP.
* **cfssl sign + certdb**: the same, with ``cfssl serve -db-config`` naming a certdb, so each
  signed certificate is also stored (one INSERT per request): the fair peer of our token path,
  and the row the headline ratios are against. The certdb's tables are cfssl's documented
  schema (``certdb/sqlite/migrations/001_CreateCertificates.sql``, and the ``pg`` one), made
  here: a SQLite file by default, a schema of its own on the PostgreSQL server with
  ``--backend postgresql``. Over HTTPS, like ours; the rows it gained are counted.
* **fleetid EST token enrol**: ``POST /.well-known/est/simpleenroll``, the RFC 7030 route as a
  stock EST client uses it: HTTP Basic with a one-time token (pre-made, one per request),
  base64 PKCS#10 body (a distinct key per request). The server checks and spends the token,
  verifies the CSR signature, signs under the issuing CA (software HSM) and writes the
  certificate row, all in one SQL transaction; answers certs-only CMS. This is our "plain
  CSR-sign endpoint": no attestation, but the SQL write.
* **fleetid challenge**: ``POST /enrol/challenge``: a 32-byte nonce, one INSERT.
* **fleetid attested enrol**: ``simpleenroll`` with no credential and a CSR carrying the
  draft-ietf-lamps-csr-attestation bundle (key attestation + IDevID chain) made by an emulated
  secure element, one distinct device per request, each bound to its own challenge, issued
  beforehand by the authority's provisioner into its database (what ``POST /enrol/challenge``
  does; that route has its own row). The server verifies the CSR, the attestation certificate,
  the IDevID chain to the manufacturer root, the line manifest, the challenge (spent), clone and
  revocation state, signs, and writes the device and certificate rows, in one transaction.
* **fleetid health**: ``GET /health`` on the same server: the floor of a request on this stack
  (uvicorn with uvloop and httptools, TLS, FastAPI), doing no work.
* **fleetid full enrolment (derived)**: a device needs one challenge and one enrol; the server's
  capacity for both is ``1 / (1/challenge + 1/attested)``.

Each row reports the server's CPU per answered request and, with several workers, each
worker's share of it (``CPU %``). wrk opens its connections once per row and the workers accept
them as they race for them; a row whose connections landed mostly on one worker ran on fewer
cores than it had, and is flagged.

The run also measures P-256 ECDSA signs and verifications per second on one core (pyca, OpenSSL)
and prints, for the token and the attested paths, the floor their design sets: the stack's
floor plus the ECDSA each must do (the CSR's proof of possession, the CA's signature and its
check before use; an attested enrolment adds the key attestation and the IDevID).

Before each fleetid enrol row, its first 32 requests are sent unmeasured: a fresh worker compiles
its ASN.1 modules and SQL statements on first use. Every pre-made fleetid request is usable once;
a run that exhausts them (the server refuses a replay) is reported as such. After each fleetid
row the script counts the certificate rows the database gained and prints them beside the 2xx
responses: the SQL write did happen.

    .venv/bin/python benchmarks/enrol.py --workers 1             # SQLite, 8 s per row
    .venv/bin/python benchmarks/enrol.py --backend postgresql --workers 2
    .venv/bin/python benchmarks/enrol.py --profile                # py-spy on two rows
    .venv/bin/python benchmarks/enrol.py --metrics                # with the metrics listener

``--profile`` records the token and the attested rows with py-spy (``pip install py-spy``) on
every worker, while they are measured, and prints for each the share of samples spent in the HTTP
stack (uvicorn, h11/httptools, starlette, FastAPI, anyio, asyncio), TLS, the database (SQLAlchemy
and its driver), cryptography and fleetid's own code.

The last line names the two headline ratios, by server CPU per answered request against
cfssl+certdb in the same run (what the server spends, whatever else loads the machine), for
tools: ``enrol: token <x>x cfssl+certdb, attested <y>x cfssl+certdb``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import create_engine, func, make_url, select, text

from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.lifecycle import lifecycle_service
from fleetid.authority.provisioners.attestation import import_manifest, trust_manufacturer
from fleetid.authority.provisioners.token import create_token
from fleetid.clock import SystemClock
from fleetid.config import Settings
from fleetid.formats.attestation import KeyUsage
from fleetid.formats.csr_attestation import (
    FLEETID_SE_KEY_ATTESTATION_OID,
    AttestationBundle,
    AttestationStatement,
    build_attested_csr,
)
from fleetid.se.client import SecureElementSigner
from fleetid.se.state import Curve
from fleetid.sim.software_line import LineDevice, SoftwareLine
from fleetid.store.engine import open_engine
from fleetid.store.schema import certificates

_CLI = "import sys; from fleetid.cli import main; sys.exit(main())"
_DER = serialization.Encoding.DER
_PEM = serialization.Encoding.PEM
_EST = "/.well-known/est/simpleenroll"

# One request per line: "<Authorization value or ->\t<body>" (a content type of "-" sends a GET
# without a body). Each wrk thread takes every
# nthreads-th line (so a replayed request is written once per thread: a thread with no line
# would send nothing and count write errors). ``cycle`` replays the list; otherwise a thread
# that runs out replays its first request, which the server refuses (counted by wrk as a
# non-2xx response).
_LUA = r"""
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  local nthreads, ctype, target, cycle = tonumber(args[2]), args[3], args[4], args[5] == "cycle"
  reqs, n, cycling = {}, 0, cycle
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == id then
      local auth, body = line:match("^([^\t]*)\t(.*)$")
      local headers = {}
      if ctype ~= "-" then headers["Content-Type"] = ctype end
      if auth ~= "-" then headers["Authorization"] = auth end
      if ctype == "-" then
        table.insert(reqs, wrk.format("GET", target, headers))
      else
        table.insert(reqs, wrk.format("POST", target, headers, body))
      end
    end
    i = i + 1
  end
end
function request()
  n = n + 1
  if n > #reqs then
    if cycling then return reqs[(n - 1) % #reqs + 1] end
    return reqs[1]
  end
  return reqs[n]
end
"""


@dataclass(frozen=True, kw_only=True)
class WrkResult:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: str | None
    p50_ms: float
    p99_ms: float
    server_cpu_s: float = 0.0  # user + system CPU of the server's processes during the run
    # Each server process's share of that CPU, largest first (wrk keeps its connections for the
    # whole row, and the workers accept them as they race for them).
    cpu_shares: tuple[float, ...] = ()

    @property
    def ok_per_second(self) -> float:
        return (self.requests - self.non_2xx) / self.seconds

    @property
    def cpu_ms_per_ok(self) -> float:
        """Server CPU per answered request: what the server spends, whatever else runs."""
        ok = self.requests - self.non_2xx
        return 1000 * self.server_cpu_s / ok if ok else float("nan")


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def _wrk(
    url: str,
    path: str,
    lines_file: Path,
    content_type: str,
    *,
    seconds: int,
    threads: int,
    connections: int,
    cycle: bool,
    script: Path,
) -> WrkResult:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "30s",  # wrk's default (2 s) would drop slow answers instead of timing them
        "-s",
        str(script),
        url,
        "--",
        str(lines_file),
        str(threads),
        content_type,
        path,
        "cycle" if cycle else "once",
    ]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    done = re.search(r"(\d+) requests in ([\d.]+)(s|m)", out)
    if done is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    # The "Latency Distribution" lines ("     50%    4.10ms"), not a "+/- Stdev" percentage.
    p50 = re.search(r"^\s+50%[ \t]+(\S+)[ \t]*$", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%[ \t]+(\S+)[ \t]*$", out, re.MULTILINE)
    if p50 is None or p99 is None:
        raise RuntimeError(f"no latency distribution in wrk's output:\n{out}")
    elapsed = float(done.group(2)) * (60 if done.group(3) == "m" else 1)
    return WrkResult(
        requests=int(done.group(1)),
        seconds=elapsed,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=errors.group(1) if errors else None,
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
    )


# --- processes ----------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()}")
        with suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after 60 s:\n{log.read_text()}")


@contextmanager
def _process(
    command: Sequence[str], port: int, log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_listening(port, process, log)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live children (uvicorn workers), from /proc."""
    return sum(_cpu_by_process(pid).values())


def _cpu_by_process(pid: int) -> dict[int, float]:
    """User + system CPU of ``pid`` and of each of its live children, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for each in (pid, *_children(pid)):
        with suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            found[each] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime (proc(5))
    return found


def _workers(server_pid: int) -> list[int]:
    """The uvicorn worker processes of a server (multiprocessing's spawned children, not its
    resource tracker), or the server itself when it has none."""
    return [
        pid
        for pid in _children(server_pid)
        if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace")
    ] or [server_pid]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path("/proc").glob("[0-9]*"):
        with suppress(OSError):
            stat = (task / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(task.name))
    return found


# --- cfssl --------------------------------------------------------------------------------------


def _self_signed(key: ec.EllipticCurvePrivateKey, name: str, *, ca: bool) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
    return builder.sign(key, hashes.SHA256())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            _PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)


def _cfssl_files(directory: Path) -> list[str]:
    """A P-256 CA for cfssl to sign with and a TLS certificate for its listener (benchmark only)."""
    directory.mkdir()
    ca_key, tls_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    _write_key(directory / "ca-key.pem", ca_key)
    (directory / "ca.pem").write_bytes(
        _self_signed(ca_key, "cfssl bench CA", ca=True).public_bytes(_PEM)
    )
    _write_key(directory / "tls-key.pem", tls_key)
    (directory / "tls.pem").write_bytes(
        _self_signed(tls_key, "localhost", ca=False).public_bytes(_PEM)
    )
    return ["-ca", str(directory / "ca.pem"), "-ca-key", str(directory / "ca-key.pem")]


def _plain_csr(common_name: str) -> x509.CertificateSigningRequest:
    return (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .sign(ec.generate_private_key(ec.SECP256R1()), hashes.SHA256())
    )


# --- fleetid ------------------------------------------------------------------------------------


@contextmanager
def _database(backend: str) -> Iterator[str | None]:
    if backend == "sqlite":
        yield None
        return
    server = os.environ.get(
        "FLEETID_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    )
    schema = f"fleetid_bench_{secrets.token_hex(4)}"
    admin = create_engine(server)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{server}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


# cfssl's certdb schema as its sources document it (certdb/{sqlite,pg}/migrations/
# 001_CreateCertificates.sql); cfssl 1.2 writes every column but created_at, which may be null.
_CFSSL_CERTDB = """
CREATE TABLE certificates (
  serial_number            {blob} NOT NULL,
  authority_key_identifier {blob} NOT NULL,
  ca_label                 {blob},
  status                   {blob} NOT NULL,
  reason                   int,
  created_at               {time},
  expiry                   {time},
  revoked_at               {time},
  pem                      {blob} NOT NULL,
  PRIMARY KEY(serial_number, authority_key_identifier)
);
CREATE INDEX certificates_created_at ON certificates (created_at);
CREATE INDEX certificates_revoked_at ON certificates (revoked_at);
CREATE TABLE ocsp_responses (
  serial_number            {blob} NOT NULL,
  authority_key_identifier {blob} NOT NULL,
  body                     {blob} NOT NULL,
  expiry                   {time},
  PRIMARY KEY(serial_number, authority_key_identifier),
  FOREIGN KEY(serial_number, authority_key_identifier)
    REFERENCES certificates(serial_number, authority_key_identifier)
);
"""


@dataclass(frozen=True)
class CfsslCertdb:
    """A certdb for ``cfssl serve -db-config``: the config file, and how to count its rows."""

    config: Path
    engine_url: str

    def rows(self) -> int:
        engine = create_engine(self.engine_url)
        try:
            with engine.connect() as connection:
                return int(
                    connection.execute(text("SELECT count(*) FROM certificates")).scalar_one()
                )
        finally:
            engine.dispose()


@contextmanager
def _cfssl_certdb(backend: str, work: Path) -> Iterator[CfsslCertdb]:
    """cfssl's certdb on the run's backend: a SQLite file, or a fresh PostgreSQL schema."""
    config = work / "cfssl-db.json"
    if backend == "sqlite":
        path = work / "cfssl-certdb.sqlite"
        engine = create_engine(f"sqlite:///{path}")
        with engine.begin() as connection:
            for statement in _CFSSL_CERTDB.format(blob="blob", time="timestamp").split(";"):
                if statement.strip():
                    connection.execute(text(statement))
        engine.dispose()
        config.write_text(json.dumps({"driver": "sqlite3", "data_source": str(path)}))
        yield CfsslCertdb(config, f"sqlite:///{path}")
        return
    server = make_url(
        os.environ.get("FLEETID_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    )
    schema = f"cfssl_bench_{secrets.token_hex(4)}"
    admin = create_engine(server)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        connection.execute(text(f'SET LOCAL search_path TO "{schema}"'))
        ddl = _CFSSL_CERTDB.format(blob="bytea", time="timestamptz")
        for statement in ddl.split(";"):
            if statement.strip():
                connection.execute(text(statement))
    # lib/pq passes unknown URL parameters on as run-time parameters (search_path).
    dsn = (
        f"postgres://{quote(server.username or 'postgres')}"
        f"{':' + quote(server.password) if server.password else ''}"
        f"@{server.host or '127.0.0.1'}:{server.port or 5432}/{server.database}"
        f"?sslmode=disable&search_path={schema}"
    )
    config.write_text(json.dumps({"driver": "postgres", "data_source": dsn}))
    try:
        yield CfsslCertdb(
            config,
            server.render_as_string(hide_password=False)
            + f"?options={quote(f'-csearch_path={schema}')}",
        )
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _certificate_rows(database: str | Path) -> int:
    engine = open_engine(database)
    try:
        with engine.connect() as connection:
            return int(
                connection.execute(select(func.count()).select_from(certificates)).scalar_one()
            )
    finally:
        engine.dispose()


def _token_lines(ca: FleetCa, count: int, path: Path) -> None:
    with ca.store.transaction() as tx, path.open("w") as out:
        for i in range(count):
            token = create_token(
                tx, device_id=f"bench-gw-{i}", clock=ca.clock, ttl=timedelta(hours=1)
            )
            basic = base64.b64encode(str(token).encode()).decode()
            body = base64.b64encode(_plain_csr(f"bench-gw-{i}").public_bytes(_DER)).decode()
            out.write(f"Basic {basic}\t{body}\n")


def _challenges(ca: FleetCa, device_ids: list[str]) -> list[bytes]:
    """One challenge per device, issued by the authority's own attestation provisioner into its
    database, as ``POST /enrol/challenge`` does (that route has its own row); one Python HTTP
    client would take longer to fetch them (about 8 ms each) than the server to answer."""
    provisioner = lifecycle_service(ca).attestation
    assert provisioner is not None  # the data dir trusts the line's root
    with ca.store.transaction() as tx:
        return [provisioner.issue_challenge(tx, device_id).nonce for device_id in device_ids]


def _attested_lines(devices: list[LineDevice], nonces: list[bytes], path: Path) -> None:
    with path.open("w") as out:
        for device, nonce in zip(devices, nonces, strict=True):
            client = device.client()
            info = client.generate_key(Curve.P256, KeyUsage.SIGN)
            attestation = client.attest(info.handle, nonce)
            bundle = AttestationBundle(
                statements=(
                    AttestationStatement(
                        type=FLEETID_SE_KEY_ATTESTATION_OID,
                        statement=attestation.public_bytes(_DER),
                    ),
                ),
                certificates=tuple(client.attestation_chain()),
            )
            subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, device.serial)])
            csr = build_attested_csr(
                subject=subject, signer=SecureElementSigner(client, info.handle), bundle=bundle
            )
            out.write("-\t" + base64.b64encode(csr.public_bytes(_DER)).decode() + "\n")


_WARM_UP = 32


def _warm_up(base: str, lines: Path, content_type: str, connections: int) -> None:
    """Spend the first ``_WARM_UP`` requests of ``lines`` before wrk measures: every worker has
    then compiled its ASN.1 modules and SQL statements (one-time costs of a fresh process), and
    wrk replays only the rest."""
    requests = lines.read_text().splitlines()
    warm, rest = requests[:_WARM_UP], requests[_WARM_UP:]
    lines.write_text("".join(line + "\n" for line in rest))

    async def post_all() -> None:
        limits = httpx.Limits(max_connections=connections)
        async with httpx.AsyncClient(
            base_url=base,
            limits=limits,
            timeout=60,
            verify=False,  # noqa: S501 - loopback, our own server's certificate made moments ago
        ) as client:

            async def one(line: str) -> None:
                auth, _, body = line.partition("\t")
                headers = {"Content-Type": content_type}
                if auth != "-":
                    headers["Authorization"] = auth
                response = await client.post(_EST, content=body, headers=headers)
                response.raise_for_status()

            await asyncio.gather(*(one(line) for line in warm))

    asyncio.run(post_all())


# --- profile ------------------------------------------------------------------------------------

_BUCKETS = (
    ("TLS (ssl module)", ("ssl.py", "sslproto.py")),
    (
        "HTTP stack (uvicorn, h11, starlette, fastapi, anyio, asyncio, pydantic)",
        (
            "uvicorn/",
            "h11/",
            "httptools",
            "starlette/",
            "fastapi/",
            "anyio/",
            "asyncio/",
            "pydantic",
        ),
    ),
    ("database (SQLAlchemy, sqlite3/psycopg)", ("sqlalchemy/", "sqlite3", "psycopg")),
    ("asn1crypto / pyca called from libraries", ("cryptography/", "asn1crypto/", "asn1tools/")),
    ("fleetid code, with the pyca/OpenSSL calls it makes", ("fleetid/",)),
)


def _profile_summary(raw: Path) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """Shares of samples (py-spy ``--gil``: Python holding the GIL) by the innermost frame's
    package, and the ten innermost frames that took most."""
    buckets: collections.Counter[str] = collections.Counter()
    leaves: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = stack.split(";")
        leaves[frames[-1]] += samples
        bucket = "other (interpreter, stdlib)"
        for frame in reversed(frames):
            matched = next((name for name, keys in _BUCKETS if any(k in frame for k in keys)), None)
            if matched is not None:
                bucket = matched
                break
        buckets[bucket] += samples
    if not total:
        return [], []
    return (
        [(name, 100 * n / total) for name, n in buckets.most_common()],
        [(name, 100 * n / total) for name, n in leaves.most_common(10)],
    )


def _py_spy() -> str:
    found = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if found is None:
        sys.exit("--profile needs py-spy (pip install py-spy)")
    return found


def _start_profilers(server_pid: int, seconds: int, out: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy on every uvicorn worker (or the server itself when it has none)."""
    workers = _workers(server_pid)
    command = [_py_spy(), "record", "-d", str(seconds), "-f", "raw", "--nonblocking", "--gil"]
    return [
        subprocess.Popen(
            [*command, "-p", str(pid), "-o", f"{out}.{pid}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in workers
    ]


# --- the ECDSA baseline -------------------------------------------------------------------------


@dataclass(frozen=True)
class EcdsaRates:
    """P-256 ECDSA with SHA-256 through pyca (OpenSSL) on one core, measured in this run."""

    sign_per_s: float
    verify_per_s: float

    def ms(self, *, signatures: int, verifications: int) -> float:
        return 1000 * (signatures / self.sign_per_s + verifications / self.verify_per_s)


def _ecdsa_rates(seconds: float = 1.0) -> EcdsaRates:
    key = ec.generate_private_key(ec.SECP256R1())
    public, message, algorithm = (
        key.public_key(),
        secrets.token_bytes(300),
        ec.ECDSA(hashes.SHA256()),
    )
    signature = key.sign(message, algorithm)

    def rate(operation: Callable[[], object]) -> float:
        count, started = 0, time.process_time()
        while (elapsed := time.process_time() - started) < seconds:
            for _ in range(100):
                operation()
            count += 100
        return count / elapsed

    return EcdsaRates(
        sign_per_s=rate(lambda: key.sign(message, algorithm)),
        verify_per_s=rate(lambda: public.verify(signature, message, algorithm)),
    )


# --- the run ------------------------------------------------------------------------------------

CFSSL_HTTPS = "cfssl sign (HTTPS)"
CFSSL_CERTDB = "cfssl sign + certdb (HTTPS, SQL write)"
PLAIN_ROW = "fleetid EST simpleenroll, one-time token (HTTPS, SQL write)"
CHALLENGE = "fleetid POST /enrol/challenge (HTTPS, SQL write)"
HEALTH = "fleetid GET /health (HTTPS, the stack's floor: no work)"
ATTESTED = "fleetid EST simpleenroll, attestation-gated (HTTPS, SQL write)"


@dataclass
class Run:
    args: argparse.Namespace
    work: Path
    script: Path
    rows: list[tuple[str, WrkResult, str]]
    profiles: list[tuple[str, tuple[list[tuple[str, float]], list[tuple[str, float]]]]] = field(
        default_factory=list
    )
    ecdsa: EcdsaRates | None = None

    def wrk(
        self,
        url: str,
        path: str,
        lines: Path,
        content_type: str,
        *,
        cycle: bool,
        server: int,
        profile: str | None = None,
    ) -> WrkResult:
        """One row; with ``--profile``, py-spy records the server during it (named ``profile``)."""
        raw = self.work / f"profile-{len(self.profiles)}.txt"
        profilers = (
            _start_profilers(server, self.args.seconds, raw)
            if profile is not None and self.args.profile
            else []
        )
        before = _cpu_by_process(server)
        result = _wrk(
            url,
            path,
            lines,
            content_type,
            seconds=self.args.seconds,
            threads=self.args.threads,
            connections=self.args.connections,
            cycle=cycle,
            script=self.script,
        )
        after = _cpu_by_process(server)
        spent = {pid: after[pid] - before.get(pid, 0.0) for pid in after}
        total = sum(spent.values())
        workers = [spent.get(pid, 0.0) for pid in _workers(server)]  # not the supervisor's
        used = sum(workers)
        shares = sorted((100 * cpu / used for cpu in workers), reverse=True) if used else []
        result = replace(result, server_cpu_s=total, cpu_shares=tuple(shares))
        for process in profilers:
            process.wait()
        if profilers and profile is not None:
            raw.write_text("".join(p.read_text() for p in self.work.glob(f"{raw.name}.*")))
            self.profiles.append((profile, _profile_summary(raw)))
            if self.args.profile_out is not None:
                with self.args.profile_out.open("a") as out:
                    out.write(raw.read_text())
        return result


def _run_cfssl(run: Run) -> None:
    """cfssl keeps no state: the same CSR is replayed, over HTTPS then plain HTTP."""
    work = run.work
    ca_args = _cfssl_files(work / "cfssl")
    csr_pem = _plain_csr("bench").public_bytes(_PEM).decode()
    line = "-\t" + json.dumps({"certificate_request": csr_pem}) + "\n"
    (work / "cfssl.lines").write_text(line * run.args.threads)  # one for each wrk thread
    tls = ["-tls-cert", str(work / "cfssl/tls.pem"), "-tls-key", str(work / "cfssl/tls-key.pem")]
    for scheme in ("https", "http"):
        port = _free_port()
        command = ["cfssl", "serve", "-address", "127.0.0.1", "-port", str(port), "-loglevel", "5"]
        command += ca_args + (tls if scheme == "https" else [])
        with _process(command, port, work / f"cfssl-{scheme}.log") as cfssl:
            url = f"{scheme}://127.0.0.1:{port}"
            result = run.wrk(
                url,
                "/api/v1/cfssl/sign",
                work / "cfssl.lines",
                "application/json",
                cycle=True,
                server=cfssl.pid,
            )
        run.rows.append((f"cfssl sign ({scheme.upper()})", result, "-"))
    # The same over HTTPS, storing each certificate in its certdb (the fair peer).
    with _cfssl_certdb(run.args.backend, work) as certdb:
        port = _free_port()
        command = ["cfssl", "serve", "-address", "127.0.0.1", "-port", str(port), "-loglevel", "5"]
        command += [*ca_args, *tls, "-db-config", str(certdb.config)]
        with _process(command, port, work / "cfssl-certdb.log") as cfssl:
            before = certdb.rows()
            result = run.wrk(
                f"https://127.0.0.1:{port}",
                "/api/v1/cfssl/sign",
                work / "cfssl.lines",
                "application/json",
                cycle=True,
                server=cfssl.pid,
            )
            gained = certdb.rows() - before
        run.rows.append((CFSSL_CERTDB, result, f"{gained} rows"))


def _est_row(
    run: Run, label: str, base: str, lines: Path, database: str | Path, server: int
) -> None:
    """One ``simpleenroll`` row of single-use requests: warmed up, measured (and profiled with
    ``--profile``), and the certificate rows the database gained counted beside the answers."""
    _warm_up(base, lines, "application/pkcs10", run.args.connections)
    before = _certificate_rows(database)
    result = run.wrk(
        base, _EST, lines, "application/pkcs10", cycle=False, server=server, profile=label
    )
    run.rows.append((label, result, f"{_certificate_rows(database) - before} rows"))


def _run_fleetid(run: Run, url: str | None) -> None:
    args, work = run.args, run.work
    env = dict(os.environ)
    if url is not None:
        env["FLEETID_DATABASE_URL"] = url
    data_dir = work / "authority"
    settings = Settings.load(data_dir, environ={"FLEETID_DATABASE_URL": url} if url else {})
    clock = SystemClock()
    line = SoftwareLine(clock=clock)
    print(f"making {args.attested} devices and {args.tokens} tokens …", flush=True)
    ca = FleetCa.init(settings, clock=clock, name="Bench Fleet")
    trust_manufacturer(data_dir, line.root)
    devices = [line.make_device() for _ in range(args.attested)]
    import_manifest(ca.store, [d.manifest_record() for d in devices], clock.now())
    _token_lines(ca, args.tokens, work / "tokens.lines")
    print(f"issuing {len(devices)} challenges, building attested CSRs …", flush=True)
    started = time.perf_counter()
    nonces = _challenges(ca, [d.serial for d in devices])
    ca.close()
    _attested_lines(devices, nonces, work / "attested.lines")
    print(f"  done in {time.perf_counter() - started:.1f} s", flush=True)
    database: str | Path = url or data_dir

    port = _free_port()
    serve = [sys.executable, "-c", _CLI, "serve", "--data-dir", str(data_dir)]
    serve += ["--https", f"127.0.0.1:{port}", "--workers", str(args.workers)]
    serve += ["--allow-loopback-urls"]  # a benchmark on loopback: no relying party fetches
    if args.metrics:  # the Prometheus listener on, as an operator would run it
        serve += ["--metrics", f"127.0.0.1:{_free_port()}"]
    base = f"https://127.0.0.1:{port}"
    with _process(serve, port, work / "serve.log", env=env) as server:
        # The stack's floor: a route that does nothing (no body, no database), same server.
        # A second of it first, unmeasured: the workers' first requests warm them.
        health = work / "health.lines"
        health.write_text("-\t\n" * args.threads)  # one per wrk thread
        _wrk(
            base,
            "/health",
            health,
            "-",
            seconds=1,
            threads=args.threads,
            connections=args.connections,
            cycle=True,
            script=run.script,
        )
        result = run.wrk(base, "/health", health, "-", cycle=True, server=server.pid)
        run.rows.append((HEALTH, result, "-"))

        _est_row(run, PLAIN_ROW, base, work / "tokens.lines", database, server.pid)

        # The route issues challenges only to known devices, at most 8 unused each: one line per
        # manifest device (each holds one already), cycled, stays under that for 7 x 16000 requests.
        lines = work / "challenge.lines"
        lines.write_text("".join(f'-\t{{"device_id": "{d.serial}"}}\n' for d in devices))
        result = run.wrk(
            base, "/enrol/challenge", lines, "application/json", cycle=True, server=server.pid
        )
        run.rows.append((CHALLENGE, result, "-"))

        _est_row(run, ATTESTED, base, work / "attested.lines", database, server.pid)


# The ECDSA operations each path cannot skip: the CSR's proof of possession, the CA's signature
# and the HSM's check of it before use; an attested enrolment adds the key attestation's and the
# IDevID's signatures (the IDevID's issuer is remembered, so its path costs no more).
_ECDSA_WORK = {PLAIN_ROW: (1, 2), ATTESTED: (1, 4)}  # (signatures, verifications)


def _floors(ecdsa: EcdsaRates, cpu: dict[str, float], cores: int) -> None:
    """What parity with cfssl would leave: the stack's floor plus the ECDSA each path must do."""
    print(
        f"ECDSA P-256 on one core this run: {ecdsa.sign_per_s:,.0f} signs/s, "
        f"{ecdsa.verify_per_s:,.0f} verifications/s"
    )
    stack = cpu[HEALTH]
    print(
        f"the stack's floor (GET /health): {stack:.2f} ms; cfssl's whole sign: "
        f"{cpu[CFSSL_HTTPS]:.2f} ms"
    )
    for label, (signs, verifications) in _ECDSA_WORK.items():
        crypto = ecdsa.ms(signatures=signs, verifications=verifications)
        floor = stack + crypto
        print(
            f"{label}: floor {stack:.2f} + {crypto:.2f} ms ECDSA ({signs} sign, "
            f"{verifications} verify) = {floor:.2f} ms, at most {1000 * cores / floor:,.0f}/s "
            f"on {cores} cores; measured {cpu[label]:.2f} ms"
        )


def _split(result: WrkResult) -> str:
    """The server processes' shares of the row's CPU, largest first ("51/49")."""
    return "/".join(f"{share:.0f}" for share in result.cpu_shares) or "-"


def _report(run: Run) -> None:
    args = run.args
    print(f"\nload after: {os.getloadavg()}")
    print(
        f"\nbackend {args.backend}, fleetid workers {args.workers}, "
        f"wrk -t{args.threads} -c{args.connections} -d{args.seconds}s\n"
    )
    header = ("endpoint", "ok/s", "p50 ms", "p99 ms", "non-2xx", "DB rows", "CPU ms/ok", "CPU %")
    print(
        f"| {header[0]:<64} | {header[1]:>7} | {header[2]:>7} | {header[3]:>7} | "
        f"{header[4]:>7} | {header[5]:>10} | {header[6]:>9} | {header[7]:>7} |"
    )
    print(f"|{'-' * 66}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 12}|{'-' * 11}|{'-' * 9}|")
    for label, r, db in run.rows:
        print(
            f"| {label:<64} | {r.ok_per_second:>7,.0f} | {r.p50_ms:>7.1f} | {r.p99_ms:>7.1f} | "
            f"{r.non_2xx:>7} | {db:>10} | {r.cpu_ms_per_ok:>9.2f} | {_split(r):>7} |"
        )
    rates = {label: r.ok_per_second for label, r, _ in run.rows}
    full = 1 / (1 / rates[CHALLENGE] + 1 / rates[ATTESTED])
    print(f"\nfull attested enrolment (challenge + enrol), derived: {full:,.0f}/s")
    cpu = {label: r.cpu_ms_per_ok for label, r, _ in run.rows}
    cores = os.cpu_count() or 1
    for peer in (CFSSL_HTTPS, CFSSL_CERTDB):
        for label in (PLAIN_ROW, ATTESTED):
            print(
                f"{label} / {peer}: {rates[label] / rates[peer]:.3f} by rate, "
                f"{cpu[peer] / cpu[label]:.3f} by server CPU per request"
            )
    if run.ecdsa is not None:
        _floors(run.ecdsa, cpu, cores)
    print(f"server-CPU bound on {cores} idle cores (no client, no other load):")
    for label, ms in cpu.items():
        print(f"  {label}: {1000 * cores / ms:,.0f}/s")
    for label, r, _ in run.rows:
        if r.cpu_shares and min(r.cpu_shares) < 50 / len(r.cpu_shares):
            print(
                f"NOTE: {label}: the workers' CPU split {_split(r)} %: wrk's connections (kept "
                "for the whole row) landed unevenly, so less than every core served them"
            )
        if r.socket_errors:
            print(f"socket errors, {label}: {r.socket_errors}")
        if r.non_2xx and label in (PLAIN_ROW, ATTESTED):
            print(f"NOTE: {label}: {r.non_2xx} refusals: the pre-made requests ran out")
    for label, (buckets, leaves) in run.profiles:
        print(f"\nserver profile, {label} (py-spy --gil, innermost known package):")
        for name, share in buckets:
            print(f"  {share:5.1f}%  {name}")
        print("innermost frames:")
        for name, share in leaves:
            print(f"  {share:5.1f}%  {name}")
    # The headline, last, for tools: server CPU per request against cfssl+certdb, same run.
    print(
        f"enrol: token {cpu[CFSSL_CERTDB] / cpu[PLAIN_ROW]:.2f}x cfssl+certdb, "
        f"attested {cpu[CFSSL_CERTDB] / cpu[ATTESTED]:.2f}x cfssl+certdb"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--workers", type=int, default=1, help="fleetid serve --workers")
    parser.add_argument("--seconds", type=int, default=8, help="wrk -d per row")
    parser.add_argument("--threads", type=int, default=2, help="wrk -t")
    parser.add_argument("--connections", type=int, default=16, help="wrk -c")
    parser.add_argument("--attested", type=int, default=16000, help="pre-made attested requests")
    parser.add_argument("--tokens", type=int, default=20000, help="pre-made token requests")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy on the token and attested rows"
    )
    parser.add_argument("--profile-out", type=Path, help="append py-spy's raw stacks here")
    parser.add_argument(
        "--metrics", action="store_true", help="fleetid serve --metrics (a listener of its own)"
    )
    args = parser.parse_args()
    for tool in ("wrk", "cfssl"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (Debian: apt-get install -y wrk golang-cfssl)")
    if args.profile:
        _py_spy()
    with tempfile.TemporaryDirectory(prefix="fleetid-bench-") as tmp:
        work = Path(tmp)
        script = work / "post.lua"
        script.write_text(_LUA)
        run = Run(args=args, work=work, script=script, rows=[])
        print(f"load before: {os.getloadavg()}, cores: {os.cpu_count()}", flush=True)
        _run_cfssl(run)
        run.ecdsa = _ecdsa_rates()
        with _database(args.backend) as url:
            _run_fleetid(run, url)
    _report(run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
