"""`[tool.brewblox-release]` in pyproject.toml, read into frozen, validated dataclasses.

Every error names the key and the file, so that a typo is a one-line fix.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["DEFAULT_TARGETS", "Config", "Target", "load"]

SECTION = "tool.brewblox-release"

#: ``BREWBLOX_RELEASE_IMAGE`` overrides ``image`` (forks, local rehearsals).
IMAGE_ENV = "BREWBLOX_RELEASE_IMAGE"


@dataclass(frozen=True)
class Target:
    """One image: a Docker build context, a platform and the prefix of its tags."""

    name: str
    context: str
    platform: str
    prefix: str = ""
    build_args: Mapping[str, str] = field(default_factory=dict)


DEFAULT_TARGETS = (
    Target(name="amd64", context="docker", platform="linux/amd64", prefix=""),
    Target(name="arm", context="rpi-docker", platform="linux/arm/v7", prefix="rpi-"),
)


@dataclass(frozen=True)
class Config:
    """The release settings of one service.

    Attributes:
        root: the directory holding pyproject.toml.
        name: the distribution name from ``[project] name``.
        image: the image repository, e.g. ``brewblox/brewblox-devcon-spark``; None when unset
            (only the docker steps need it).
        dist_dir: where ``dist`` writes the sdist and wheel, relative to root.
        targets: one image per target.
        quiet_branches: a push to one of these publishes nothing.
        build_args: build args for every target (a target's own add to them).
        pypi: whether the package is published to the index at all.
        secret_vars: names of extra environment variables whose values are masked in all output.
        network: the network mode of ``RUN`` steps (``host`` reaches an index on loopback).
        index_url: the index's simple API (for the sha256 rule, ``latest`` and verification);
            None: derived from the upload URL where that is certain.
        check: ``twine check``: ``"errors"`` fails on what an index refuses, ``"strict"`` on
            warnings too.
        multi_arch: every tag is one manifest list over all targets' platforms (SPEC §11).
        builder: the buildx builder of every buildx call; None: ``BUILDX_BUILDER``, else the
            current builder.
    """

    root: Path
    name: str
    image: str | None = None
    dist_dir: str = "dist"
    targets: tuple[Target, ...] = DEFAULT_TARGETS
    quiet_branches: tuple[str, ...] = ("master", "main")
    build_args: Mapping[str, str] = field(default_factory=dict)
    pypi: bool = True
    secret_vars: tuple[str, ...] = ()
    network: str | None = None
    index_url: str | None = None
    check: str = "errors"
    multi_arch: bool = False
    builder: str | None = None

    @property
    def pyproject(self) -> Path:
        return self.root / "pyproject.toml"

    def target(self, name: str) -> Target:
        for target in self.targets:
            if target.name == name:
                return target
        names = ", ".join(t.name for t in self.targets)
        raise ConfigError(f"{self.pyproject}: no target named {name!r} in [{SECTION}] targets "
                          f"(there are: {names})")

    def require_image(self) -> str:
        if not self.image:
            raise ConfigError(
                f"{self.pyproject}: [{SECTION}] image is required to build images: set it to the "
                f"image repository (e.g. image = \"brewblox/my-service\"), or set {IMAGE_ENV}")
        return self.image

    @classmethod
    def from_data(cls, root: Path, data: Mapping[str, Any],
                  env: Mapping[str, str] | None = None) -> Config:
        """Validate the parsed pyproject.toml of the service at ``root``.

        >>> Config.from_data(Path("."), {"project": {"name": "svc"},
        ...                              "tool": {"brewblox-release": {"image": "org/svc"}}}).image
        'org/svc'
        """
        where = root / "pyproject.toml"
        from .project import distribution_name  # static [project] name, else the backend's

        name = distribution_name(root, data)
        tool = data.get("tool", {})
        section = tool.get("brewblox-release", {}) if isinstance(tool, Mapping) else {}
        if not isinstance(section, Mapping):
            raise ConfigError(f"{where}: [{SECTION}] must be a table")
        reader = _Reader(where, SECTION, section)
        image = reader.opt_str("image")
        if env is not None and env.get(IMAGE_ENV):
            image = env[IMAGE_ENV]
        config = cls(
            root=root,
            name=name,
            image=image,
            dist_dir=reader.string("dist-dir", "dist"),
            targets=_targets(where, section.get("targets")),
            quiet_branches=tuple(reader.str_list("quiet-branches", ["master", "main"])),
            build_args=reader.build_args(),
            pypi=reader.bool("pypi", default=True),
            secret_vars=tuple(reader.str_list("secret-vars", [])),
            network=reader.opt_str("network"),
            index_url=reader.opt_str("index-url"),
            check=reader.choice("check", ("errors", "strict"), "errors"),
            multi_arch=reader.bool("multi-arch", default=False),
            builder=reader.opt_str("builder") or (env or {}).get("BUILDX_BUILDER") or None,
        )
        reader.finish()
        return config


def load(root: Path | str = ".", env: Mapping[str, str] | None = None) -> Config:
    """Read the configuration of the service whose pyproject.toml is in ``root``."""
    root = Path(root).resolve()
    path = root / "pyproject.toml"
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; run from the service's root directory") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e
    return Config.from_data(root, data, env)


_TARGET_KEYS = {"name", "context", "platform", "prefix", "build-args"}
#: A prefix starts every tag of its target (see tags.py), so it must be a valid tag start.
_PREFIX = re.compile(r"([a-z0-9_][a-z0-9_.-]{0,63})?")


def _targets(where: Path, value: object) -> tuple[Target, ...]:
    if value is None:
        return DEFAULT_TARGETS
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: [{SECTION}] targets must be a non-empty list of tables "
                          "{name, context, platform, prefix}")
    targets = []
    for i, item in enumerate(value):
        key = f"{SECTION}.targets[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError(f"{where}: [{key}] must be a table")
        reader = _Reader(where, key, item)
        targets.append(Target(
            name=reader.required_str("name"),
            context=reader.required_str("context"),
            platform=reader.required_str("platform"),
            prefix=reader.string("prefix", ""),
            build_args=reader.build_args(),
        ))
        reader.finish()
        if not _PREFIX.fullmatch(targets[-1].prefix):
            raise ConfigError(f"{where}: [{key}] prefix {targets[-1].prefix!r} would make "
                              "invalid image tags: use up to 64 lower-case letters, digits, '_', "
                              "'.' and '-', not starting with '.' or '-' (e.g. \"rpi-\")")
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: [{SECTION}] targets: names must be unique, got {names}")
    prefixes = [t.prefix for t in targets]
    if len(set(prefixes)) != len(prefixes):
        raise ConfigError(f"{where}: [{SECTION}] targets: prefixes must differ, or the targets' "
                          f"tags would overwrite each other; got {prefixes}")
    return tuple(targets)


class _Reader:
    """Typed access to one TOML table that remembers which keys were read."""

    def __init__(self, where: Path, table: str, data: Mapping[str, Any]) -> None:
        self.where = where
        self.table = table
        self.data = data
        self.seen: set[str] = set()

    def _error(self, key: str, expected: str) -> ConfigError:
        got = type(self.data[key]).__name__
        return ConfigError(f"{self.where}: [{self.table}] {key} must be {expected}, got {got}")

    def _get(self, key: str) -> object:
        self.seen.add(key)
        return self.data.get(key)

    def opt_str(self, key: str) -> str | None:
        value = self._get(key)
        if value is not None and not isinstance(value, str):
            raise self._error(key, "a string")
        return value or None

    def string(self, key: str, default: str) -> str:
        value = self.opt_str(key)
        return default if value is None else value

    def required_str(self, key: str) -> str:
        value = self.opt_str(key)
        if value is None:
            raise ConfigError(f"{self.where}: [{self.table}] {key} is required")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.string(key, default)
        if value not in choices:
            raise ConfigError(f"{self.where}: [{self.table}] {key} must be one of "
                              f"{', '.join(repr(c) for c in choices)}, got {value!r}")
        return value

    def bool(self, key: str, *, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self._error(key, "true or false")
        return value

    def str_list(self, key: str, default: list[str]) -> list[str]:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._error(key, "a list of strings")
        return value

    def str_map(self, key: str) -> dict[str, str]:
        value = self._get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(isinstance(v, str) for v in value.values()):
            raise self._error(key, "a table of strings")
        return dict(value)

    def build_args(self) -> dict[str, str]:
        """``build-args``, which may not set the two that the release itself sets."""
        args = self.str_map("build-args")
        for name in sorted(set(args) & {"PACKAGE", "VERSION"}):
            raise ConfigError(f"{self.where}: [{self.table}] build-args sets {name}, which "
                              "brewblox-release sets to the distribution and the version it "
                              "publishes: remove it")
        return args

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if self.table == SECTION:
            unknown = [k for k in unknown if k != "targets"]
        if unknown:
            raise ConfigError(f"{self.where}: [{self.table}] unknown key {unknown[0]!r}; "
                              f"known keys: {', '.join(sorted(self.seen | _extra(self.table)))}")


def _extra(table: str) -> set[str]:
    return {"targets"} if table == SECTION else set()
