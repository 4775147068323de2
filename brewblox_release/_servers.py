"""Throwaway servers on 127.0.0.1, a free port each: an OCI registry (``docker-registry``) and a
package index (pypiserver), see docs/how-it-works.md."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from ._errors import ReleaseError

_S = TypeVar("_S", bound="_Server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class _Server:
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log(self) -> Path:
        return self.workdir / f"{type(self).__name__.lower()}.log"

    def _spawn(self, argv: list[str], probe: str) -> None:
        """Start ``argv`` (``start`` made ``workdir``), and wait until ``probe`` answers."""
        with self.log.open("ab") as out:
            self.proc = proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ReleaseError(f"{proc.args!r} exited with {proc.returncode}: "
                                   f"{self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(probe, timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                time.sleep(0.1)
        proc.terminate()
        raise ReleaseError(f"{probe} did not answer within 30 s; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self: _S) -> _S:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError


@dataclass
class RegistryServer(_Server):
    """``docker-registry serve`` with its data in ``workdir/registry``; with ``htpasswd``,
    every request needs its credentials."""

    htpasswd: Path | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        program = shutil.which("docker-registry") or shutil.which("registry")
        if program is None:
            raise ReleaseError("no registry program: install Debian's docker-registry package "
                               "(apt-get install docker-registry), or put the `registry` "
                               "binary of the distribution project on PATH")
        config = self.workdir / "registry.yml"
        self.workdir.mkdir(parents=True, exist_ok=True)
        config.write_text(
            "version: 0.1\n"
            "log: {level: warn}\n"
            f"storage: {{filesystem: {{rootdirectory: {self.workdir / 'registry'}}}, "
            "delete: {enabled: true}}\n"
            f"http: {{addr: '{self.address}'}}\n"
            + (f"auth: {{htpasswd: {{realm: brewblox-release, path: {self.htpasswd}}}}}\n"
               if self.htpasswd else ""))
        self._spawn([program, "serve", str(config)], f"http://{self.address}/v2/")


@dataclass
class IndexServer(_Server):
    """pypiserver serving (and accepting uploads into) ``workdir/packages``; with
    ``password_file``, the actions in ``authenticate`` (its ``-a``) need its credentials."""

    password_file: Path | None = None
    authenticate: str = "update"
    hash_algo: str = "sha256"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def simple_url(self) -> str:
        return f"{self.url}simple/"

    @property
    def packages(self) -> Path:
        return self.workdir / "packages"

    def start(self) -> None:
        self.packages.mkdir(parents=True, exist_ok=True)
        auth = (["-P", str(self.password_file), "-a", self.authenticate] if self.password_file
                else ["-P", ".", "-a", "."])
        self._spawn([sys.executable, "-m", "pypiserver", "run", "-i", "127.0.0.1",
                     "-p", str(self.port), *auth, "--disable-fallback", "--hash-algo",
                     self.hash_algo, "--backend", "simple-dir", str(self.packages)],
                    self.simple_url)
