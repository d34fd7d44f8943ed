"""A bounded loopback load test: mixed enrolment, renewal-information, OCSP, CRL and filter
traffic against ``fleetid serve`` over HTTPS (two workers), held for ``--seconds`` (600 by
default) at 80 % of the capacity measured in the same run.

Traffic (two ``wrk`` processes at once, each with a Lua script that also counts 5xx answers):

* **enrolment**: ``POST /.well-known/est/simpleenroll`` with a one-time token (HTTP Basic) and
  a fresh P-256 CSR per request, as a stock EST client sends it (pre-made, single use);
* **reads**, one in five each, cycled: ``GET /ocsp/{request}`` (RFC 6960 A.1), the issuing CA's
  CRL, ``GET /revocation/filter/full``, ``GET /renewal-info/{id}`` (RFC 9773, the renewal query
  every device makes) and ``GET /.well-known/est/cacerts``.

First both run unpaced for ``--probe`` seconds: the throughput each reaches while the other
also runs is the capacity of this machine for the mix. Then both run for ``--seconds`` paced to
80 % of it (wrk's ``delay()``: each connection waits between requests). Throughput, p50/p99
latency, non-2xx and 5xx answers, socket errors and the load average are printed.

Run: ``.venv/bin/python benchmarks/load_mixed.py [--seconds 600] [--probe 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from enrol import _CLI, _free_port, _ms, _process, _token_lines

from fleetid.api import create_app
from fleetid.authority.fleet_ca import FleetCa
from fleetid.authority.provisioners.token import create_token
from fleetid.clock import SystemClock
from fleetid.config import Settings
from fleetid.formats.renewal_info import cert_id

_EST = "/.well-known/est/simpleenroll"
_DER = serialization.Encoding.DER

# One request per line: "<METHOD>\t<path>\t<Authorization or ->\t<body or empty>". A thread
# takes every nthreads-th line; ``cycle`` replays them, else a thread that runs out stops
# sending (wrk then idles that connection). ``delay_ms`` paces each connection.
_LUA = r"""
local counter = 0
local threads = {}
function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end
function init(args)
  local nthreads, cycle = tonumber(args[2]), args[3] == "cycle"
  pause, reqs, n, cycling, fivexx = tonumber(args[4]), {}, 0, cycle, 0
  local i = 0
  for line in io.lines(args[1]) do
    if i % nthreads == id then
      local method, path, auth, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = {}
      if auth ~= "-" then headers["Authorization"] = auth end
      if method == "POST" then
        headers["Content-Type"] = "application/pkcs10"
        table.insert(reqs, wrk.format("POST", path, headers, body))
      else
        table.insert(reqs, wrk.format("GET", path, headers))
      end
    end
    i = i + 1
  end
end
function delay()
  return pause
end
function request()
  n = n + 1
  if n > #reqs and not cycling then
    n = #reqs  -- out of single-use requests: resend the last (refused 401, counted non-2xx)
  end
  return reqs[(n - 1) % #reqs + 1]
end
function response(status, headers, body)
  if status >= 500 then fivexx = fivexx + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("fivexx") end
  io.write(string.format("5xx: %d\n", total))
end
"""


@dataclass(frozen=True)
class Result:
    requests: int
    seconds: float
    non_2xx: int
    fivexx: int
    socket_errors: str
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        """Answered requests a second (a refused single-use replay is not capacity)."""
        return (self.requests - self.non_2xx) / self.seconds


def _wrk_command(
    base: str, lines: Path, script: Path, *, seconds: float, connections: int, pause_ms: int
) -> list[str]:
    cycle = "once" if lines.name.startswith("enrol") else "cycle"
    return [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds:.0f}s",
        "--latency",
        "--timeout",
        "30s",
        "-s",
        str(script),
        base,
        "--",
        str(lines),
        "1",
        cycle,
        str(pause_ms),
    ]


def _parse(out: str) -> Result:
    done = re.search(r"(\d+) requests in ([\d.]+)(s|m)", out)
    p50 = re.search(r"^\s+50%[ \t]+(\S+)[ \t]*$", out, re.MULTILINE)
    p99 = re.search(r"^\s+99%[ \t]+(\S+)[ \t]*$", out, re.MULTILINE)
    if done is None or p50 is None or p99 is None:
        raise RuntimeError(f"unexpected wrk output:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    fivexx = re.search(r"^5xx: (\d+)", out, re.MULTILINE)
    return Result(
        requests=int(done.group(1)),
        seconds=float(done.group(2)) * (60 if done.group(3) == "m" else 1),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        fivexx=int(fivexx.group(1)) if fivexx else -1,
        socket_errors=errors.group(1) if errors else "none",
        p50_ms=_ms(p50.group(1)),
        p99_ms=_ms(p99.group(1)),
    )


def _run(commands: dict[str, list[str]]) -> dict[str, Result]:
    """The wrk processes at once; each one's result."""
    running = {
        name: subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        for name, command in commands.items()
    }
    return {name: _parse(process.communicate()[0]) for name, process in running.items()}


def _reads(ca: FleetCa, work: Path) -> list[str]:
    """The read requests: one certificate enrolled in this process names them all."""
    app = create_app(ca.settings, clock=ca.clock, ca=ca)
    with ca.store.transaction() as tx:
        token = create_token(tx, device_id="load-reader", clock=ca.clock, ttl=timedelta(hours=1))
    from enrol import _plain_csr

    body = base64.b64encode(_plain_csr("load-reader").public_bytes(_DER))

    async def enrol() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://load.test") as client:
            return await client.post(
                _EST,
                content=body,
                headers={"Content-Type": "application/pkcs10"},
                auth=(token.username, token.password),
            )

    response = asyncio.run(enrol())
    response.raise_for_status()
    from cryptography.hazmat.primitives.serialization import pkcs7

    (certificate,) = pkcs7.load_der_pkcs7_certificates(base64.b64decode(response.content))
    issuer = ca.issuing.certificate
    request = ocsp.OCSPRequestBuilder().add_certificate(certificate, issuer, hashes.SHA1())  # noqa: S303
    ocsp_path = "/ocsp/" + base64.b64encode(request.build().public_bytes(_DER)).decode()
    points = certificate.extensions.get_extension_for_class(x509.CRLDistributionPoints)
    crl_url = points.value[0].full_name[0].value  # type: ignore[index]
    crl_path = "/" + crl_url.split("/", 3)[3]
    return [
        f"GET\t{ocsp_path}\t-\t",
        f"GET\t{crl_path}\t-\t",
        "GET\t/revocation/filter/full\t-\t",
        f"GET\t/renewal-info/{cert_id(certificate)}\t-\t",
        "GET\t/.well-known/est/cacerts\t-\t",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=600)
    parser.add_argument("--probe", type=float, default=20)
    parser.add_argument("--share", type=float, default=0.8, help="of the capacity, held")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8, help="per wrk process")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fleetid-load-") as tmp:
        work = Path(tmp)
        data_dir = work / "authority"
        port = _free_port()
        public = {
            "FLEETID_PUBLIC_URL": f"http://127.0.0.1:{port}",
            "FLEETID_ALLOW_LOOPBACK_URLS": "1",
        }
        settings = Settings.load(data_dir, environ=public)
        ca = FleetCa.init(settings, clock=SystemClock(), name="Load Fleet")
        reads = _reads(ca, work)
        # Single-use enrolments: for the probe, more than two cores answer (150 a second); for
        # the held run, 60 a second (above 80 % of the enrolment capacity measured here).
        probe_count = int(150 * args.probe)
        tokens = probe_count + int(60 * args.seconds)
        print(f"making {tokens} one-time tokens and CSRs …", flush=True)
        _token_lines(ca, tokens, work / "tokens.lines")
        ca.close()
        subprocess.run(
            [sys.executable, "-c", _CLI, "filter", "publish", "--data-dir", str(data_dir),
             "--out", str(work / "filter.bin")],
            check=True, capture_output=True,
        )  # fmt: skip
        probe_lines = work / "enrol-probe.lines"
        held_lines = work / "enrol-held.lines"
        all_tokens = (work / "tokens.lines").read_text().splitlines()
        for path, chosen in (
            (probe_lines, all_tokens[:probe_count]),
            (held_lines, all_tokens[probe_count:]),
        ):
            path.write_text("".join(f"POST\t{_EST}\t{line}\n" for line in chosen))
        (work / "reads.lines").write_text("".join(line + "\n" for line in reads))
        script = work / "load.lua"
        script.write_text(_LUA)
        serve = [sys.executable, "-c", _CLI, "serve", "--data-dir", str(data_dir)]
        serve += ["--https", f"127.0.0.1:{port}", "--workers", str(args.workers)]
        serve += ["--allow-loopback-urls"]
        base = f"https://127.0.0.1:{port}"
        print(f"load before: {os.getloadavg()}, cores: {os.cpu_count()}", flush=True)
        with _process(serve, port, work / "serve.log", env={**os.environ, **public}):
            conns = args.connections
            # Warm-up, unmeasured: the workers' first requests compile SQL and ASN.1.
            _run(
                {
                    "reads": _wrk_command(
                        base, work / "reads.lines", script, seconds=3, connections=conns,
                        pause_ms=0,
                    )
                }
            )  # fmt: skip
            probe = _run(
                {
                    "enrolment": _wrk_command(
                        base, probe_lines, script, seconds=args.probe, connections=conns,
                        pause_ms=0,
                    ),
                    "reads": _wrk_command(
                        base, work / "reads.lines", script, seconds=args.probe,
                        connections=conns, pause_ms=0,
                    ),
                }
            )  # fmt: skip
            _print("capacity (unpaced)", probe)
            pauses = {
                # Each connection waits this long between requests, on top of the answer's own
                # latency: the rate held is at most the share asked for.
                name: round(1000 * conns / (args.share * result.rate))
                for name, result in probe.items()
            }
            held = _run(
                {
                    "enrolment": _wrk_command(
                        base, held_lines, script, seconds=args.seconds, connections=conns,
                        pause_ms=pauses["enrolment"],
                    ),
                    "reads": _wrk_command(
                        base, work / "reads.lines", script, seconds=args.seconds,
                        connections=conns, pause_ms=pauses["reads"],
                    ),
                }
            )  # fmt: skip
            _print(f"held for {args.seconds:.0f} s at {args.share:.0%} (paced)", held)
            for name in held:
                share = held[name].rate / probe[name].rate
                print(f"  {name}: {share:.0%} of its capacity")
        print(f"load after: {os.getloadavg()}", flush=True)


def _print(title: str, results: dict[str, Result]) -> None:
    print(f"\n{title}")
    print(f"  {'traffic':<10} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8} {'5xx':>5}")
    for name, r in results.items():
        print(
            f"  {name:<10} {r.rate:>8.1f} {r.p50_ms:>8.1f} {r.p99_ms:>8.1f} {r.non_2xx:>8}"
            f" {r.fivexx:>5}  socket errors: {r.socket_errors}"
        )


if __name__ == "__main__":
    main()
