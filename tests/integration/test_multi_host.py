"""Hosts simulated by network namespaces: batch workers in two namespaces and an API process in a
third, each reaching the one PostgreSQL only through its own veth link (a relay in the root
namespace forwards to the server's loopback port). Workers and the API process are killed with
SIGKILL at random while jobs are under way, and restarted: every job completes exactly once.

The namespaces need CAP_NET_ADMIN (root, as CI runs); elsewhere the test skips and says so."""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine
from tests.authority_server import fleetid, free_port
from tests.butterfly_fixtures import (
    BatchPki,
    check_every_certificate_once,
    inside_job,
    job_worker,
    queued_jobs,
)
from tests.optional import require_tool, unavailable

from fleetid.store.engine import open_engine
from fleetid.store.job_queue import job_counts

pytest_plugins = ["tests.db_fixtures"]
pytestmark = pytest.mark.slow  # about 30 s: three namespaces, a server and four kills

_CLONE_NEWNET = 0x40000000
_CLI = "import sys; from fleetid.cli import main; sys.exit(main())"
_VEHICLES = 6
_PER_PERIOD = 5
_KILLS = 4


@dataclass(frozen=True)
class _Host:
    namespace: str
    outside: str  # the root namespace's end of the link
    inside: str  # the host's address


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=10)


def _make_host(tag: str, index: int, subnet: tuple[int, int]) -> _Host:
    namespace, outer, inner = f"{tag}{index}", f"{tag}{index}h", f"{tag}{index}n"
    outside = f"10.{subnet[0]}.{subnet[1]}.{4 * index + 1}"
    inside = f"10.{subnet[0]}.{subnet[1]}.{4 * index + 2}"
    _ip("netns", "add", namespace)
    _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
    _ip("link", "set", inner, "netns", namespace)
    _ip("addr", "add", f"{outside}/30", "dev", outer)
    _ip("link", "set", outer, "up")
    _ip("-n", namespace, "addr", "add", f"{inside}/30", "dev", inner)
    _ip("-n", namespace, "link", "set", inner, "up")
    _ip("-n", namespace, "link", "set", "lo", "up")
    return _Host(namespace=namespace, outside=outside, inside=inside)


@pytest.fixture
def hosts() -> Iterator[list[_Host]]:
    require_tool("ip")
    tag = f"fid{secrets.token_hex(3)}"
    subnet = (random.randrange(100, 250), random.randrange(256))
    made: list[_Host] = []
    try:
        try:
            for index in range(3):
                made.append(_make_host(tag, index, subnet))
        except subprocess.CalledProcessError as exc:
            unavailable(f"cannot create network namespaces (needs CAP_NET_ADMIN): {exc.stderr!r}")
        yield made
    finally:
        for index in range(3):  # deleting a namespace deletes its end of the link, and so both
            subprocess.run(["ip", "netns", "del", f"{tag}{index}"], capture_output=True, timeout=10)


class _Relay:
    """TCP from ``listen`` (a root-namespace link address) to ``target``, one thread per
    direction per connection; ``close`` ends every connection."""

    def __init__(self, listen: str, target: tuple[str, int]) -> None:
        self._server = socket.create_server((listen, 0))
        self.port = self._server.getsockname()[1]
        self._target = target
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._open += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_RDWR)  # one side ended: end the other

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._server.shutdown(socket.SHUT_RDWR)
        self._server.close()
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


def _enter(namespace: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(f"/var/run/netns/{namespace}", os.O_RDONLY)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns into {namespace}")
    os.close(fd)


def _worker_on(namespace: str, url: str, batch: BatchPki, marks: Path) -> None:
    _enter(namespace)
    job_worker(url, batch, marks)


def _through(url: str, relay: _Relay, host: _Host) -> str:
    return url.replace("@127.0.0.1:5432/", f"@{host.outside}:{relay.port}/", 1)


def _api(data: Path, host: _Host, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    serve = [sys.executable, "-c", _CLI, "serve", "--data-dir", str(data)]
    # --http on the host's own loopback; the public listener on its link (CRLs and OCSP)
    serve += ["--http", f"127.0.0.1:{port}", "--public-http", f"{host.inside}:{port}"]
    with (data / "serve.log").open("a") as log:
        return subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                host.namespace,
                *serve,
                "--public-http",
                f"{host.inside}:{port}",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _answers(http: httpx.Client) -> bool:
    try:
        return http.get("/crl/root-1.crl").status_code == 200
    except httpx.HTTPError:
        return False


def test_workers_and_api_processes_on_three_hosts_killed_at_random(
    tmp_path: Path, database_url_for: Any, hosts: list[_Host]
) -> None:
    url = database_url_for("postgresql")
    assert url.count("@127.0.0.1:5432/") == 1
    relays = [_Relay(h.outside, ("127.0.0.1", 5432)) for h in hosts]
    engines: list[Engine] = []
    processes: list[Any] = []
    clients: list[httpx.Client] = []
    try:
        # The namespaces are separate stacks: the server's loopback port is not there.
        probe = "import socket; socket.create_connection(('127.0.0.1', 5432), timeout=2)"
        isolated = subprocess.run(
            ["ip", "netns", "exec", hosts[0].namespace, sys.executable, "-c", probe],
            capture_output=True,
            timeout=30,
        )
        assert isolated.returncode != 0

        data = tmp_path / "authority"
        api_url = _through(url, relays[2], hosts[2])
        env = {
            **os.environ,
            "FLEETID_DATABASE_URL": api_url,
            "FLEETID_PUBLIC_URL": "https://ca.example.net",
        }
        assert fleetid("ca", "init", "--data-dir", str(data), env=env).returncode == 0
        engine = open_engine(url)
        engines.append(engine)
        batch, queue, asked = queued_jobs(
            url, engine, vehicles=_VEHICLES, per_period=_PER_PERIOD, prefix="H"
        )

        port = free_port()
        api = _api(data, hosts[2], port, env)
        processes.append(api)
        http = httpx.Client(base_url=f"http://{hosts[2].inside}:{port}", timeout=10)
        clients.append(http)
        deadline = time.monotonic() + 60
        while not _answers(http):
            assert time.monotonic() < deadline, "the API process never answered"
            assert api.poll() is None, (data / "serve.log").read_text()
            time.sleep(0.1)

        context = multiprocessing.get_context("fork")
        marks = tmp_path / "marks"
        marks.mkdir()
        worker_urls = [_through(url, relays[i], hosts[i]) for i in range(2)]

        def start_worker(i: int) -> Any:
            process = context.Process(
                target=_worker_on, args=(hosts[i].namespace, worker_urls[i], batch, marks)
            )
            process.start()
            return process

        workers = {0: start_worker(0), 1: start_worker(1)}
        processes += workers.values()
        rng = random.Random()
        kills = {"worker": 0, "api": 0}
        while sum(kills.values()) < _KILLS:
            assert time.monotonic() < deadline, f"kills: {kills}, jobs: {job_counts(engine)}"
            time.sleep(rng.uniform(0, 0.1))
            busy = [i for i, w in workers.items() if inside_job(marks, w.pid)]
            if not busy:  # every kill lands while a worker is inside a job
                continue
            missing = [k for k, n in kills.items() if n == 0]
            last = sum(kills.values()) == _KILLS - 1
            kind = missing[0] if last and missing else rng.choice(["api", "worker"])  # both, once
            if kind == "api":
                os.kill(api.pid, signal.SIGKILL)
                api.wait()
                kills["api"] += 1
                api = _api(data, hosts[2], port, env)
                processes.append(api)
            else:
                i = rng.choice(busy)
                victim = workers[i]
                os.kill(victim.pid, signal.SIGKILL)
                victim.join()
                assert victim.exitcode == -signal.SIGKILL
                kills["worker"] += 1
                workers[i] = start_worker(i)
                processes.append(workers[i])
        while job_counts(engine)["succeeded"] < _VEHICLES:
            assert time.monotonic() < deadline + 30, f"jobs left: {job_counts(engine)}"
            time.sleep(0.1)
        while not _answers(http):  # the restarted API process serves again
            assert time.monotonic() < deadline + 30, "the restarted API process never answered"
            time.sleep(0.1)
        assert kills["api"] >= 1 and kills["worker"] >= 1, kills
        assert job_counts(engine) == {"succeeded": _VEHICLES}
        check_every_certificate_once(queue, asked, _PER_PERIOD)
    finally:
        for process in processes:
            if isinstance(process, subprocess.Popen):
                process.kill()
                process.wait()
            elif process.is_alive():
                process.kill()
                process.join()
        for client in clients:
            client.close()
        for relay in relays:
            relay.close()
        for engine in engines:
            engine.dispose()
