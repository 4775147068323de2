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


def as_version(text: str) -> Version | None:
    """``text`` as a version, or None (InvalidVersion, or digits past int()'s limit)."""
    try:
        return Version(text)
    except ValueError:
        return None


def is_reserved(name: str, prefixes: Iterable[str] = ("",)) -> bool:
    """Whether ``name`` is, or with one of the targets' prefixes removed is, a tag of a release
    or a local build: ``latest``, ``local``, a version (``rpi-latest`` is the arm ``latest``)."""
    rests = [name[len(prefix):] for prefix in prefixes if name.startswith(prefix)]
    return any(rest in {LATEST, LOCAL} or as_version(rest) is not None for rest in rests)


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
    """The tag of ``branch``'s dev release for a target whose tags start with ``prefix``: a name
    reserved or starting with `escaped_starts` gets ``branch-``; a long one ends in a hash."""
    # surrogateescape: a name git gave as bytes that are not UTF-8 is hashed as those bytes
    digest = hashlib.sha256(branch.encode(errors="surrogateescape")).hexdigest()[:_HASH]
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
    """The tags of a release: the version, and ``latest`` when it moves."""
    return (prefix + version.lower(), prefix + LATEST) if latest else (prefix + version.lower(),)
