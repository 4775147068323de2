"""brewblox-release's own sessions: it releases itself with its own sessions."""

from __future__ import annotations

import nox

from brewblox_release.sessions import *  # noqa: F403

nox.options.sessions = ["lint", "tests"]


@nox.session(python=False)
def tests(session: nox.Session) -> None:
    """Run the test suite (engine tests fail under CI=true when the engine is missing)."""
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session(python=False)
def demo(session: nox.Session) -> None:
    """Rehearse a whole release of a sample service on loopback (after .ci/provision.sh)."""
    session.run("python", "-m", "tests.demo", *session.posargs)


@nox.session(python=False)
def lint(session: nox.Session) -> None:
    """ruff, mypy strict and the import layers (import-linter) over the package and its tests."""
    session.run("ruff", "check", ".")
    session.run("mypy")
    session.run("lint-imports")


@nox.session(python=False)
def bench(session: nox.Session) -> None:
    """Benchmark `nox -s release` against the seed's pipeline (bench/bench.py; -- --runs 3)."""
    session.run("python", "bench/bench.py", *session.posargs)
