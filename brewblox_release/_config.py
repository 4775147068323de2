"""`[tool.brewblox-release]` in pyproject.toml, read into frozen, validated dataclasses; every
error names the key and the file, so that a typo is a one-line fix."""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import ConfigError
from ._run import CommandError, run
from ._secret import display_url
from ._tags import ESCAPE, LATEST, escaped_starts

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


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


def normalise_platform(text: str) -> str | None:
    """A platform as containerd's ``platforms.Normalize`` writes it, and so docker and a
    registry's lists; an architecture alone is Linux's. None for no platform.

    >>> normalise_platform("linux/arm64/v8"), normalise_platform("Linux/ARM")
    ('linux/arm64', 'linux/arm/v7')
    """
    parts = text.lower().split("/")
    parts = ["linux", *parts] if len(parts) == 1 else parts
    if len(parts) > 3 or not all(parts):
        return None
    system, arch, variant = parts[0], parts[1], (parts[2:] or [""])[0]
    if arch in {"aarch64", "arm64"}:
        arch, variant = "arm64", {"8": "", "v8": "", "v8.0": "", "9": "v9", "9.0": "v9",
                                  "v9.0": "v9"}.get(variant, variant)
    elif arch in {"armhf", "armel"}:
        arch, variant = "arm", "v7" if arch == "armhf" else "v6"
    elif arch == "arm":
        variant = {"": "v7", "7": "v7", "5": "v5", "6": "v6", "8": "v8"}.get(variant, variant)
    elif arch in {"i386", "386"}:
        arch, variant = "386", "" if arch == "i386" else variant
    elif arch in {"x86_64", "x86-64", "amd64"}:
        arch, variant = "amd64", "" if variant == "v1" else variant
    return "/".join(part for part in (system, arch, variant) if part)


DEFAULT_TARGETS = (
    Target(name="amd64", context="docker", platform="linux/amd64", prefix=""),
    Target(name="arm", context="rpi-docker", platform="linux/arm/v7", prefix="rpi-"),
)


@dataclass(frozen=True)
class Config:
    """The release settings of one service: the keys of docs/configuration.md, snake-cased, and
    the distribution's ``name``."""

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
    stamp_version: bool = False
    sign: bool = False

    @property
    def pyproject(self) -> Path:
        return self.root / "pyproject.toml"

    @property
    def latest_tags(self) -> frozenset[str]:
        """Every target's ``latest`` tag (``latest``, ``rpi-latest``): moved last, forward only."""
        return frozenset(f"{target.prefix}{LATEST}" for target in self.targets)

    def target(self, name: str) -> Target:
        if found := next((t for t in self.targets if t.name == name), None):
            return found
        raise ConfigError(f"{self.pyproject}: no target named {name!r} in [{SECTION}] targets "
                          f"(there are: {', '.join(t.name for t in self.targets)})")

    def require_image(self) -> str:
        if not self.image:
            raise ConfigError(
                f"{self.pyproject}: [{SECTION}] image is required to build images: set it to the "
                f"image repository (e.g. image = \"brewblox/my-service\"), or set {IMAGE_ENV}")
        return self.image

    @classmethod
    def from_data(cls, root: Path, data: Mapping[str, Any], name: str,
                  env: Mapping[str, str] | None = None) -> Config:
        """Validate the parsed pyproject.toml of the service at ``root`` (pure: nothing is read).

        >>> Config.from_data(Path("."), {"tool": {"brewblox-release": {"image": "org/svc"}}},
        ...                  "svc").image
        'org/svc'
        """
        where = root / "pyproject.toml"
        env = env or {}
        section = (_table(data, "tool") or {}).get("brewblox-release", {})
        if not isinstance(section, Mapping):
            raise ConfigError(f"{where}: [{SECTION}] must be a table")
        reader = _Reader(where, SECTION, section)
        multi_arch = reader.get("multi-arch", _BOOL, False)
        image = reader.get("image", _STR) or None
        if "image" in section:
            _check_image(image or "", f"{where}: [{SECTION}] image")
        if forced := env.get(IMAGE_ENV):
            _check_image(forced, IMAGE_ENV)
            image = forced
        config = cls(
            root=root,
            name=name,
            image=image,
            dist_dir=reader.get("dist-dir", _STR, "dist"),  # "" is kept, and refused as a path
            targets=_targets(where, reader.get("targets"), multi_arch=multi_arch),
            quiet_branches=tuple(reader.get("quiet-branches", _STRS, ["master", "main"])),
            build_args=reader.build_args(),
            pypi=reader.get("pypi", _BOOL, True),
            secret_vars=tuple(reader.get("secret-vars", _STRS, [])),
            network=reader.get("network", _STR) or None,
            index_url=reader.get("index-url", _STR) or None,
            check=reader.choice("check", ("errors", "strict")),
            multi_arch=multi_arch,
            builder=reader.get("builder", _STR) or env.get("BUILDX_BUILDER") or None,
            stamp_version=reader.get("stamp-version", _BOOL, False),
            sign=reader.get("sign", _BOOL, False),
        )
        reader.finish()
        return config


#: An image repository (distribution's reference grammar, without tag or digest): optional
#: ``host[:port]/``, then lower-case path components.
_HOST = r"(?:localhost|\[[0-9a-fA-F:]+\]|[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?" \
        r"(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)(?::[0-9]{1,5})?"
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = rf"{_COMPONENT}(?:/{_COMPONENT})*"
_IMAGE = re.compile(rf"(?:{_HOST}/)?{_PATH}")


def _check_image(image: str, where: str) -> None:
    """Refuse what buildx would refuse only after the package was built."""
    fix = ("an image repository such as \"brewblox/my-service\", \"ghcr.io/org/svc\" or "
           "\"127.0.0.1:5000/demo/svc\": lower case, no scheme, no tag, no digest")
    shown = display_url(image)  # a user name or password before an @ is never shown
    if "@" in image and not re.search(r"@[a-z0-9]+(?:[+._-][a-z0-9]+)*:[0-9a-fA-F]{32,}$",
                                      image):
        raise ConfigError(f"{where} = {shown!r} has a user name or password: credentials go "
                          f"in DOCKER_USERNAME and DOCKER_PASSWORD; write {fix}")
    if "://" in image:
        raise ConfigError(f"{where} = {shown!r} has a scheme: write {fix}")
    if "@" in image:
        raise ConfigError(f"{where} = {shown!r} has a digest: write {fix}")
    if ":" in image.rsplit("/", 1)[-1]:
        raise ConfigError(f"{where} = {image!r} has a tag: tags come from the plan; write {fix}")
    first, _, rest = image.partition("/")
    path = rest if rest and ("." in first or ":" in first or first == "localhost") else image
    if not _IMAGE.fullmatch(image) or not re.fullmatch(_PATH, path) or len(image) > 255:
        raise ConfigError(f"{where} = {image!r} is not a valid image repository: write {fix}")


def _confined(root: Path, value: str, where: str) -> Path:
    """``value`` resolved inside ``root`` (symlinks followed), or a ConfigError."""
    if not value or Path(value).is_absolute():
        raise ConfigError(f"{where} = {value!r}: give a directory inside the service, relative "
                          f"to {root}")
    path = (root / value).resolve()
    if root in path.parents and ".git" in path.relative_to(root).parts:
        raise ConfigError(f"{where} = {value!r} is inside .git: give a directory of the "
                          "service's own, such as \"dist\"")
    if path == root or root not in path.parents:
        raise ConfigError(f"{where} = {value!r} resolves to {path}, which is not a directory "
                          f"inside the service {root}: give one such as \"dist\"")
    for name in (".git", "pyproject.toml", "setup.py", "setup.cfg"):
        if (path / name).exists():
            raise ConfigError(f"{where} = {value!r} holds {name}: it is part of a project, not "
                              "an output directory; give a directory of its own")
    return path


def check_paths(config: Config, *, contexts: bool) -> None:
    """``dist-dir`` and every target's ``context`` are directories of the service's own, and with
    ``contexts`` each context holds a Dockerfile (docs/configuration.md)."""
    where = config.pyproject
    dist = _confined(config.root, config.dist_dir, f"{where}: [{SECTION}] dist-dir")
    tracked: list[str] = []
    with contextlib.suppress(CommandError):  # no git: nothing is tracked
        found = run(["git", "ls-files", "-z", "--", str(dist)], cwd=config.root, check=False,
                    echo=False, stream=False, timeout=30)
        tracked = [f for f in found.output.split("\0") if f] if found.returncode == 0 else []
    if tracked:
        raise ConfigError(f"{where}: [{SECTION}] dist-dir = {config.dist_dir!r} holds files "
                          f"that git tracks ({tracked[0]}, ...): dist writes there, so give a "
                          "directory of its own, such as \"dist\"")
    for i, target in enumerate(config.targets):
        key = f"{where}: [{SECTION}.targets[{i}]] context" if config.targets != DEFAULT_TARGETS \
            else f"{where}: the {target.name} target's context"
        # The service's root itself (a root Dockerfile of BrewBlox's 2024 kind builds from
        # dist-dir); any other context is a directory of its own (docs/configuration.md).
        path = config.root if target.context in {".", "./"} else \
            _confined(config.root, target.context, key)
        if path != config.root and (path == dist or dist in path.parents or path in dist.parents):
            raise ConfigError(f"{key} = {target.context!r} overlaps dist-dir "
                              f"{config.dist_dir!r}: give each a directory of its own")
        if contexts and not (path / "Dockerfile").is_file():
            raise ConfigError(
                f"{key} = {target.context!r}: {path / 'Dockerfile'} does not exist; copy the "
                "template (brewblox_release/templates/Dockerfile) there or run `nox -s init`, "
                f"or set [{SECTION}] targets to the contexts the service has")


def _table(data: Mapping[str, Any], *keys: str) -> Mapping[str, Any] | None:
    """The table at ``keys`` (``"tool", "poetry"``), or None where there is no such table."""
    value: object = data
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, Mapping) else None


def declared_secret_vars(root: Path | str = ".") -> tuple[str, ...]:
    """``secret-vars``, read leniently before anything else (`load` validates it): they are set
    apart before any code of the service's runs."""
    with contextlib.suppress(ConfigError, OSError):
        names = (_table(read(Path(root)), "tool", "brewblox-release") or {}).get("secret-vars")
        return tuple(n for n in names if isinstance(n, str)) if isinstance(names, list) else ()
    return ()


def read(root: Path) -> dict[str, Any]:
    path = root / "pyproject.toml"
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; run from the service's root directory") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a directory: a service's pyproject.toml is a file") from None
    except PermissionError:
        raise ConfigError(f"{path}: not readable: give the user running the release read "
                          "access to it") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e


def static_name(data: Mapping[str, Any]) -> str | None:
    """The distribution's name where the file says it: ``[project]`` or ``[tool.poetry]``."""
    for keys in (("project",), ("tool", "poetry")):
        name = (_table(data, *keys) or {}).get("name")
        if isinstance(name, str) and name:
            return name
    return None


def load(root: Path | str = ".", env: Mapping[str, str] | None = None, *,
         name: str | None = None) -> Config:
    """Read the configuration of the service at ``root`` and check its paths; ``name`` is the
    distribution's where the file does not say it (`project.distribution_name`)."""
    root = Path(root).resolve()
    data = read(root)
    name = name or static_name(data)
    if name is None:
        raise ConfigError(f"{root / 'pyproject.toml'}: [project] name is required: add "
                          "[project] name = \"...\"")
    config = Config.from_data(root, data, name, env)
    check_paths(config, contexts=config.image is not None)
    return config


#: A prefix starts every tag of its target (see tags.py), so it must be a valid tag start.
_PREFIX = re.compile(r"([a-z0-9_][a-z0-9_.-]{0,63})?")


def _targets(where: Path, value: object, *, multi_arch: bool) -> tuple[Target, ...]:
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
        platform = reader.required("platform")
        if (normal := normalise_platform(platform)) is None:
            raise ConfigError(f"{where}: [{key}] platform = {platform!r} is no platform: write "
                              "os/architecture[/variant], e.g. \"linux/arm/v7\"")
        target = Target(name=reader.required("name"), context=reader.required("context"),
                        platform=normal, prefix=reader.get("prefix", _STR) or "",
                        build_args=reader.build_args())
        reader.finish()
        if not _PREFIX.fullmatch(target.prefix):
            raise ConfigError(f"{where}: [{key}] prefix {target.prefix!r} would make "
                              "invalid image tags: use up to 64 lower-case letters, digits, '_', "
                              "'.' and '-', not starting with '.' or '-' (e.g. \"rpi-\")")
        targets.append(target)
    names = [t.name for t in targets]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: [{SECTION}] targets: names must be unique, got {names}")
    prefixes = [t.prefix for t in targets]
    for start in sorted(escaped_starts(("", *prefixes))):
        if ESCAPE.startswith(start) or start.startswith(ESCAPE):
            raise ConfigError(f"{where}: [{SECTION}] targets: prefix {start!r} would clash with "
                              f"the {ESCAPE!r} that escapes branch names (docs/how-it-works.md): "
                              "choose prefixes that do not begin with it, such as \"rpi-\"")
    if len(set(prefixes)) != len(prefixes) and not multi_arch:
        raise ConfigError(f"{where}: [{SECTION}] targets: prefixes must differ, or the targets' "
                          f"tags would overwrite each other; got {prefixes} (with multi-arch = "
                          "true, targets that share a prefix share one list under each tag)")
    return tuple(targets)


#: The types a key may have, by the words its error uses.
_STR, _BOOL = "a string", "true or false"
_STRS, _STR_MAP = "a list of strings", "a table of strings"
_TYPES: dict[str, Callable[[Any], bool]] = {
    _STR: lambda v: isinstance(v, str),
    _BOOL: lambda v: isinstance(v, bool),
    _STRS: lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
    _STR_MAP: lambda v: isinstance(v, Mapping) and all(isinstance(s, str) for s in v.values()),
}


class _Reader:
    """Typed access to one TOML table that remembers which keys were read."""

    def __init__(self, where: Path, table: str, data: Mapping[str, Any]) -> None:
        self.where, self.table, self.data = where, table, data
        self.seen: set[str] = set()

    def get(self, key: str, expected: str | None = None, default: Any = None) -> Any:
        """``key``'s value (``default`` when unset), of the type ``expected`` names."""
        self.seen.add(key)
        value = self.data.get(key)
        if value is None:
            return default
        if expected is not None and not _TYPES[expected](value):
            wrong = next((f"{k} = {v!r}" for k, v in value.items() if not isinstance(v, str)),
                         None) if isinstance(value, Mapping) else None
            raise ConfigError(f"{self.where}: [{self.table}] {key} must be {expected}, "
                              f"got {wrong or type(value).__name__}")
        return value

    def required(self, key: str) -> str:
        value = self.get(key, _STR)
        if not value:
            raise ConfigError(f"{self.where}: [{self.table}] {key} is required")
        return str(value)

    def choice(self, key: str, choices: tuple[str, ...]) -> str:
        """One of ``choices``, the first by default."""
        value = str(self.get(key, _STR) or choices[0])
        if value not in choices:
            raise ConfigError(f"{self.where}: [{self.table}] {key} must be one of "
                              f"{', '.join(repr(c) for c in choices)}, got {value!r}")
        return value

    def build_args(self) -> dict[str, str]:
        """``build-args``, which may not set the two that the release itself sets."""
        args = dict(self.get("build-args", _STR_MAP, {}))
        for name in sorted(set(args) & {"PACKAGE", "VERSION"}):
            raise ConfigError(f"{self.where}: [{self.table}] build-args sets {name}, which "
                              "brewblox-release sets to the distribution and the version it "
                              "publishes: remove it")
        return args

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.seen)
        if unknown:
            raise ConfigError(f"{self.where}: [{self.table}] unknown key {unknown[0]!r}; "
                              f"known keys: {', '.join(sorted(self.seen))}")
