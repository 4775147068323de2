"""A prepared run: the options of a command, everything decided before anything is built
(`release.prepare` makes it), and the summary of what was done."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ._ci import CiContext
from ._config import Config
from ._identity import Identity
from ._plan import Plan
from ._version import VersionInfo

if TYPE_CHECKING:  # twine and pypi-simple load on use: --dry-run needs neither
    from ._index import Index


@dataclass(frozen=True)
class Options:
    """The options of a command, each named by its flag (``--dry-run`` is ``dry_run``):
    `commands.OPTIONS` says what each does, docs/sessions.md which command takes it."""

    dry_run: bool = False
    json: bool = False
    publish: bool = False
    ref: str | None = None
    allow_dirty: bool = False
    rehearse: bool = False
    target: str | None = None
    stage: str | None = None
    merge: str | None = None
    ci: str | None = None
    image: str | None = None
    force: bool = False
    verbose: bool = False


@dataclass(frozen=True)
class Run:
    """A prepared run: everything that was decided before anything is built."""

    config: Config
    context: CiContext
    info: VersionInfo
    plan: Plan
    options: Options
    env: Mapping[str, str] = field(repr=False)

    @functools.cached_property  # one identity for the run: its key is opened once
    def signer(self) -> Identity | None:
        return Identity.from_env(self.env, self.config.secret_vars)

    @functools.cached_property  # one value for the run (frozen: its fields never change)
    def index(self) -> Index:
        from ._index import Index

        # A workstation's run reads ~/.pypirc as twine does; CI's credentials are its own.
        pypirc = Path.home() / ".pypirc" if self.context.provider == "local" else None
        return Index.from_env(self.env, self.config.index_url, pypirc=pypirc)


@dataclass
class Summary:
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def add(self, where: str, what: str, result: str) -> None:
        self.rows.append((where, what, result))

    def render(self) -> str:
        if not self.rows:
            return "published nothing"
        widths = [max(len(r[i]) for r in self.rows) for i in range(3)]
        return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                         for row in self.rows)


@dataclass
class Pushed:
    """What this run pushed, for verification: each tag (``latest`` aside) and its digest; with
    manifest lists, each list's tag and the digest of each platform's image in it."""

    images: dict[str, str] = field(default_factory=dict)
    lists: dict[str, dict[str, str]] = field(default_factory=dict)
