"""Docker tags from branch names and versions (pure): every tag, prefix included, matches
``^[a-z0-9_][a-z0-9_.-]{0,127}$`` (Docker allows upper case too; these are lower case)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from packaging.version import Version

MAX_TAG = 128
LATEST = "latest"
LOCAL = "local"
#: What a branch name that could be taken for another tag gets in front of it.
ESCAPE = "branch-"
_HASH = 10
_INVALID = re.compile(r"[^a-z0-9_.-]+")


def is_reserved(name: str, prefixes: Iterable[str] = ("",)) -> bool:
    """Whether ``name`` is, or with one of the targets' prefixes removed is, a tag of a release
    or a local build: ``latest``, ``local``, a version (``rpi-latest`` is the arm ``latest``).

    >>> is_reserved("1.2.3"), is_reserved("v2"), is_reserved("feature-x")
    (True, True, False)
    """
    for rest in (name[len(prefix):] for prefix in prefixes if name.startswith(prefix)):
        if rest in {LATEST, LOCAL}:
            return True
        try:
            Version(rest)
        except ValueError:  # InvalidVersion, or digits past int()'s limit
            continue
        return True
    return False


def escaped_starts(prefixes: Iterable[str]) -> frozenset[str]:
    """The starts of a branch name that could make one target's tag another target's: every
    non-empty prefix, and for nested prefixes the rest of the longer one (docs/sessions.md).

    >>> sorted(escaped_starts(["", "rpi-", "rpi-arm64-"]))
    ['arm64-', 'rpi-', 'rpi-arm64-']
    """
    prefixes = set(prefixes)
    return frozenset(q[len(p):] for p in prefixes for q in prefixes
                     if q != p and q.startswith(p))


def branch_tag(branch: str, prefix: str = "", prefixes: Iterable[str] = ("",)) -> str:
    """The image tag of a dev release of ``branch`` for a target whose tags start with ``prefix``.

    A name that is reserved or starts with `escaped_starts` gets ``branch-`` (docs/sessions.md);
    a tag too long is cut and ends in a hash of the full branch name.

    >>> branch_tag("feature/Add_Doodad"), branch_tag("feature/Add_Doodad", "rpi-")
    ('feature-add_doodad', 'rpi-feature-add_doodad')
    >>> branch_tag("1.2.3"), branch_tag("latest", "rpi-")
    ('branch-1.2.3', 'rpi-branch-latest')
    >>> branch_tag("rpi-fix", "", ("", "rpi-")), branch_tag("rpi-fix", "rpi-", ("", "rpi-"))
    ('branch-rpi-fix', 'rpi-branch-rpi-fix')
    """
    digest = hashlib.sha256(branch.encode()).hexdigest()[:_HASH]
    name = _INVALID.sub("-", branch.lower()).lstrip(".-")
    if not name:
        name = f"branch-{digest}"
    # A name with a target's prefix (rpi-latest, rpi-x) is escaped whatever follows it, so
    # only the name itself needs the reserved check.
    if is_reserved(name) or name.startswith(tuple(escaped_starts(("", *prefixes)))):
        name = f"{ESCAPE}{name}"
    tag = prefix + name
    if len(tag) > MAX_TAG:
        tag = tag[: MAX_TAG - _HASH - 1] + "-" + digest
    return tag


def version_tags(version: str, prefix: str = "", *, latest: bool = False) -> tuple[str, ...]:
    """The tags of a release: the version, and ``latest`` when it moves.

    >>> version_tags("1.2.3", "rpi-", latest=True)
    ('rpi-1.2.3', 'rpi-latest')
    """
    return (prefix + version.lower(), prefix + LATEST) if latest else (prefix + version.lower(),)
