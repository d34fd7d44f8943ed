"""A software TPM 2.0 process: Debian's ``swtpm`` (libtpms), started and stopped here.

``swtpm socket --tpm2`` serves the TPM command interface on a TCP port and its control channel on
the next port, which is what the TSS's ``swtpm`` TCTI speaks (``swtpm:host=…,port=…``). Its
state (the endorsement and storage seeds, persistent objects, NV) lives in a directory of its
own. fleetid never emulates a TPM itself: this only runs the emulator the Linux distributions ship.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from fleetid.errors import TpmError

__all__ = ["Swtpm", "swtpm_available"]

_HOST = "127.0.0.1"
_START_ATTEMPTS = 5
_READY_POLLS = 100
_READY_POLL_SECONDS = 0.05


def swtpm_available() -> str | None:
    """Why no software TPM can run here (``None`` if one can)."""
    if shutil.which("swtpm") is None:
        return "swtpm is not installed (Debian: apt-get install swtpm swtpm-tools)"
    return None


def _free_port_pair() -> int:
    """A port whose successor was free too a moment ago (swtpm binds both)."""
    with socket.socket() as probe:
        probe.bind((_HOST, 0))
        port = int(probe.getsockname()[1])
    with socket.socket() as second:
        try:
            second.bind((_HOST, port + 1))
        except OSError:
            return _free_port_pair()
    return port


class Swtpm:
    """One ``swtpm`` process with its state in ``state_dir`` (a fresh temporary directory unless
    given: a new TPM with new seeds). A context manager; ``tcti`` is what ``TpmDevice`` opens."""

    def __init__(self, state_dir: Path | None = None) -> None:
        binary = shutil.which("swtpm")
        if binary is None:
            raise TpmError(str(swtpm_available()))
        self._binary = binary
        self._own_dir = state_dir is None
        self.state_dir = (
            Path(tempfile.mkdtemp(prefix="fleetid-swtpm-")) if state_dir is None else state_dir
        )
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def tcti(self) -> str:
        return f"swtpm:host={_HOST},port={self.port}"

    def start(self) -> Swtpm:
        for _ in range(_START_ATTEMPTS):  # another process may take the ports in between
            self.port = _free_port_pair()
            self._process = subprocess.Popen(  # noqa: S603 - fixed arguments, no shell
                [
                    self._binary,
                    "socket",
                    "--tpm2",
                    "--tpmstate",
                    f"dir={self.state_dir}",
                    "--server",
                    f"type=tcp,bindaddr={_HOST},port={self.port}",
                    "--ctrl",
                    f"type=tcp,bindaddr={_HOST},port={self.port + 1}",
                    "--flags",
                    "not-need-init,startup-clear",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if self._wait_ready():
                return self
        raise TpmError(f"swtpm did not start: {self._stderr()}")

    def _wait_ready(self) -> bool:
        assert self._process is not None  # noqa: S101 - start set it
        for _ in range(_READY_POLLS):
            if self._process.poll() is not None:
                return False
            try:
                with socket.create_connection((_HOST, self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(_READY_POLL_SECONDS)
        self.stop()
        return False

    def _stderr(self) -> str:
        if self._process is None or self._process.stderr is None or self._process.poll() is None:
            return "no answer on its port"
        return self._process.stderr.read().decode(errors="replace").strip() or "no message"

    def stop(self) -> None:
        """Stop the process (the state directory stays, unless it is this object's own)."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            if self._process.stderr is not None:
                self._process.stderr.close()
            self._process = None
        if self._own_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Swtpm:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
