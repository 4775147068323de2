"""The project as it is declared: its distribution name, where its version comes from, its tags.

Services are taken as they are (SPEC §2, §4): a PEP 621 ``[project]``; a ``setup.py`` of the
2018 kind (``use_scm_version={...}``, no ``[project]``); a ``setup.cfg``; hatchling with
hatch-vcs; a service in a subdirectory of a monorepo whose tags carry its name
(``[tool.setuptools_scm] root = "../.."``, ``tag_regex = "^svc-(?P<version>...)$"``).

- The **name** is read from a static ``[project] name``; otherwise the build backend is asked
  (PEP 517 ``prepare_metadata_for_build_wheel``, in dist.py's kept build environment), and the
  answer is cached under the hash of the files that decide it (pyproject.toml, setup.py,
  setup.cfg), so ``version`` and ``--dry-run`` pay for it once.
- The **version source** is where the build takes its version from git: setuptools_scm's
  settings (``[tool.setuptools_scm]``, a setup.py's ``use_scm_version``, its literal keys where
  they can be read) or hatch-vcs's (``[tool.hatch.version] source = "vcs"``, its
  ``raw-options`` and ``tag-pattern``), as the setuptools_scm keywords they amount to. A build
  that would not take its version from git is refused before anything is built.
- The **tags** of the service are the ones its tag regex matches (setuptools_scm's default one
  takes ``1.2.3``, ``v1.2.3`` and ``name-1.2.3``); a tag with a local part or an epoch is refused.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from .errors import ConfigError, VersionError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["DEFAULT_TAG_REGEX", "LEGACY_BACKEND", "TagRule", "VersionSource", "build_backend",
           "cache_dir", "distribution_name", "files_key", "normalise", "read_pyproject",
           "version_source"]

#: setuptools_scm's default: ``1.2.3``, ``v1.2.3``, ``anything-1.2.3``; a ``+local`` part apart.
DEFAULT_TAG_REGEX = r"^(?:[\w-]+-)?(?P<version>[vV]?\d+(?:\.\d+){0,2}[^\+]*)(?:\+.*)?$"

#: What a project without ``[build-system]`` is built with (PEP 517, pypa/build).
LEGACY_BACKEND = "setuptools.build_meta:__legacy__"

#: The files whose contents decide the name and the version source.
DECIDING_FILES = ("pyproject.toml", "setup.py", "setup.cfg")

#: setuptools_scm keys that write files or are set by brewblox-release itself.
_DROPPED_KEYS = {"write_to", "write_to_template", "version_file", "version_file_template",
                 "relative_to", "dist_name", "local_scheme"}


@dataclass(frozen=True)
class TagRule:
    """Which tags are a service's releases, and the version each one names.

    >>> TagRule(r"^svc-(?P<version>.+)$").version("svc-2.0.0")
    <Version('2.0.0')>
    >>> TagRule(r"^svc-(?P<version>.+)$").version("other-2.0.0") is None
    True
    """

    regex: str = DEFAULT_TAG_REGEX
    #: setuptools_scm's ``tag.prefix``: a literal start of every tag, stripped before ``regex``.
    prefix: str = ""

    def __post_init__(self) -> None:
        try:
            re.compile(self.regex)
        except re.error as e:
            raise ConfigError(f"tag_regex {self.regex!r} is not a regular expression ({e}): "
                              "fix it where the service sets it ([tool.setuptools_scm], or "
                              "[tool.hatch.version] raw-options)") from None

    @property
    def is_default(self) -> bool:
        return self.regex == DEFAULT_TAG_REGEX and not self.prefix

    def version(self, tag: str) -> Version | None:
        """The version ``tag`` releases; None when it is not one of the service's tags.

        Raises:
            VersionError: the tag is the service's but names no version a package index takes
                (not PEP 440, a local part, an epoch).
        """
        if not tag.startswith(self.prefix):
            return None
        rest = tag[len(self.prefix):]
        match = re.match(self.regex, rest)
        delete = "Delete it (git push --delete origin TAG; git tag -d TAG) and tag again"
        # A tag of the service but for its local part (which its regex may leave out) too.
        if "+" in rest and (match or re.match(self.regex, rest.partition("+")[0])):
            raise VersionError(f"tag {tag!r} has a local part (+...), which package indexes "
                               f"refuse: release tags look like 1.2.3. {delete}")
        if match is None:
            return None
        text = match.group(1 if len(match.groups()) == 1 else "version")  # as setuptools_scm
        try:
            version = Version(text or "")
        except InvalidVersion:
            raise VersionError(
                f"tag {tag!r} is not a version: release tags look like 1.2.3 or v1.2.3 "
                f"(PEP 440). {delete}") from None
        if version.local is not None:
            raise VersionError(f"tag {tag!r} has a local part (+...), which package indexes "
                               f"refuse: release tags look like 1.2.3. {delete}")
        if version.epoch:
            raise VersionError(f"tag {tag!r} has an epoch ({version.epoch}!), which "
                               f"brewblox-release does not publish: release tags look like "
                               f"1.2.3. {delete}")
        return version


@dataclass(frozen=True)
class VersionSource:
    """Where a build takes its version from git, as setuptools_scm configuration.

    Attributes:
        tool: ``"setuptools_scm"`` or ``"hatch-vcs"``.
        declared_in: where the settings were read, for messages.
        settings: setuptools_scm's configuration keys (``root``, ``tag``, ``scm``,
            ``version_scheme``, ...), relative to the project's directory, with the deprecated
            spellings (``tag_regex``, ``git_describe_command``) moved to their new places and
            file writing left out.
    """

    tool: str
    declared_in: str
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def tags(self) -> TagRule:
        tag = self.settings.get("tag") or {}
        regex = tag.get("regex") if isinstance(tag, Mapping) else None
        prefix = tag.get("prefix") if isinstance(tag, Mapping) else None
        return TagRule(regex if isinstance(regex, str) else DEFAULT_TAG_REGEX,
                       prefix if isinstance(prefix, str) else "")


def read_pyproject(root: Path) -> dict[str, Any]:
    """The parsed pyproject.toml of the project at ``root`` (empty when there is none)."""
    path = root / "pyproject.toml"
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from e


def build_backend(data: Mapping[str, Any]) -> str:
    """The build backend of a parsed pyproject.toml (setuptools' legacy one by default)."""
    system = data.get("build-system")
    backend = system.get("build-backend") if isinstance(system, Mapping) else None
    return backend if isinstance(backend, str) and backend else LEGACY_BACKEND


def _requires(data: Mapping[str, Any]) -> set[str]:
    system = data.get("build-system")
    requires = system.get("requires") if isinstance(system, Mapping) else None
    names: set[str] = set()
    for text in requires if isinstance(requires, list) else ["setuptools"]:
        try:
            names.add(canonicalize_name(Requirement(str(text)).name))
        except InvalidRequirement:
            continue
    return names


def _table(data: Mapping[str, Any], *keys: str) -> Mapping[str, Any] | None:
    value: object = data
    for key in keys:
        value = value.get(key) if isinstance(value, Mapping) else None
    return value if isinstance(value, Mapping) else None


# --- the version source ------------------------------------------------------------------------

def normalise(settings: Mapping[str, Any]) -> dict[str, Any]:
    """setuptools_scm keys, with the deprecated spellings in their new places (setuptools_scm
    warns about the old ones, and the tag regex is read from one place)."""
    data = {k: v for k, v in settings.items() if k not in _DROPPED_KEYS}
    tag = dict(data.pop("tag", None) or {})
    regex = data.pop("tag_regex", None)
    if regex is not None and "regex" not in tag:
        tag["regex"] = regex
    if isinstance(tag.get("regex"), re.Pattern):
        tag["regex"] = tag["regex"].pattern
    if tag:
        data["tag"] = tag
    describe = data.pop("git_describe_command", None)
    if describe is not None:
        scm = dict(data.pop("scm", None) or {})
        git = dict(scm.get("git") or {})
        git.setdefault("describe_command", describe)
        scm["git"] = git
        data["scm"] = scm
    return data


def _setup_py_scm(root: Path) -> tuple[bool, dict[str, Any]] | None:
    """``use_scm_version`` in setup.py: (whether git decides, its literal settings), or None
    when setup.py does not pass it. Keys whose values are code (a ``local_scheme`` lambda, a
    ``relative_to=__file__``) cannot be read; setuptools_scm's defaults stand for them."""
    path = root / "setup.py"
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except FileNotFoundError:
        return None
    except (SyntaxError, ValueError) as e:
        raise ConfigError(f"{path}: not valid Python: {e}") from e
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg != "use_scm_version":
                continue
            value = keyword.value
            if isinstance(value, ast.Constant):
                return bool(value.value), {}
            settings: dict[str, Any] = {}
            if isinstance(value, ast.Dict):
                for key, item in zip(value.keys, value.values, strict=True):
                    try:
                        name = ast.literal_eval(key) if key is not None else None
                        settings[str(name)] = ast.literal_eval(item)
                    except (ValueError, TypeError, SyntaxError, RecursionError):
                        continue  # code, not a literal: setuptools_scm's default stands
            return True, settings
    return None


def version_source(root: Path, data: Mapping[str, Any] | None = None) -> VersionSource:
    """Where the build of the project at ``root`` takes its version from git.

    Raises:
        VersionError: the build would not take its version from git (no setuptools_scm or
            hatch-vcs, or a static version); the message says what to add.
    """
    data = read_pyproject(root) if data is None else data
    where = root / "pyproject.toml"
    backend = build_backend(data)
    requires = _requires(data)
    project = data.get("project")
    if isinstance(project, Mapping) and "version" in project:
        raise VersionError(
            f"{where}: [project] version = {project['version']!r} is static, so the build would "
            "not take its version from git: remove it, add dynamic = [\"version\"] and "
            "[tool.setuptools_scm] (setuptools) or [tool.hatch.version] source = \"vcs\" "
            "(hatchling)")
    if backend.startswith("hatchling"):
        hatch = _table(data, "tool", "hatch", "version")
        if hatch is None or hatch.get("source") != "vcs" or "hatch-vcs" not in requires:
            raise VersionError(
                f"{where}: hatchling would not take the version from git: add "
                "[tool.hatch.version] source = \"vcs\" and \"hatch-vcs\" to [build-system] "
                "requires")
        raw = hatch.get("raw-options") or {}
        if not isinstance(raw, Mapping):
            raise VersionError(f"{where}: [tool.hatch.version] raw-options must be a table")
        settings = dict(raw)
        if isinstance(hatch.get("tag-pattern"), str) and hatch["tag-pattern"]:
            settings["tag_regex"] = hatch["tag-pattern"]
        if isinstance(hatch.get("fallback-version"), str) and hatch["fallback-version"]:
            settings["fallback_version"] = hatch["fallback-version"]
        return VersionSource("hatch-vcs", "[tool.hatch.version]", normalise(settings))
    if not backend.startswith("setuptools"):
        raise VersionError(
            f"{where}: the build backend {backend} is neither setuptools with setuptools_scm "
            "nor hatchling with hatch-vcs, whose versions brewblox-release computes from git: "
            "switch [build-system] to one of them")
    section = _table(data, "tool", "setuptools_scm")
    if section is None:
        section = _table(data, "tool", "vcs-versioning")
    from_setup_py = _setup_py_scm(root)
    if from_setup_py is not None and not from_setup_py[0]:
        from_setup_py = None
    if section is None and from_setup_py is None:
        raise VersionError(
            f"{where}: the build would not take its version from git: add [tool.setuptools_scm] "
            "to pyproject.toml and \"setuptools-scm\" to [build-system] requires (or "
            "use_scm_version=True with setup_requires=[\"setuptools_scm\"] in setup.py)")
    mentioned = "setuptools-scm" in requires or any(
        "setuptools_scm" in text or "setuptools-scm" in text
        for text in (_read(root / "setup.py"), _read(root / "setup.cfg")))
    if not mentioned:
        raise VersionError(
            f"{where}: setuptools_scm is configured but the build does not install it, so the "
            "version would not come from git: add \"setuptools-scm\" to [build-system] requires")
    settings = dict(section or {})
    declared = "[tool.setuptools_scm]" if section is not None else "setup.py"
    if from_setup_py is not None:
        settings.update(from_setup_py[1])
        declared = "setup.py use_scm_version" + (
            " and [tool.setuptools_scm]" if section is not None else "")
    return VersionSource("setuptools_scm", declared, normalise(settings))


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return ""


# --- the distribution name ---------------------------------------------------------------------

def cache_dir() -> Path:
    """brewblox-release's cache: ``BREWBLOX_RELEASE_CACHE``, else ~/.cache/brewblox-release."""
    cache = os.environ.get("BREWBLOX_RELEASE_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "brewblox-release")
    return Path(cache)


def files_key(root: Path) -> str:
    """A hash of the files that decide the name, the version source and the build
    requirements: the same key means the same answers."""
    digest = hashlib.sha256()
    for name in DECIDING_FILES:
        path = root / name
        digest.update(name.encode() + b"\0")
        try:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
        except (FileNotFoundError, IsADirectoryError):
            digest.update(b"-")
    return digest.hexdigest()[:32]


def distribution_name(root: Path, data: Mapping[str, Any]) -> str:
    """The distribution name of the project at ``root`` (``data``: its parsed pyproject.toml).

    A static ``[project] name`` is read as it is; without a ``[project]`` table the build
    backend says it (a setup.py, a setup.cfg, another backend's own table), once per state of
    the deciding files.

    Raises:
        ConfigError: nothing declares the name, or the backend cannot say it; the message says
            to add ``[project] name``.
    """
    where = root / "pyproject.toml"
    add = f"add [project] name = \"...\" to {where}"
    project = data.get("project")
    if project is not None:
        if not isinstance(project, Mapping):
            raise ConfigError(f"{where}: [project] name is required: [project] must be a table")
        name = project.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: [project] name is required: PEP 621 names the "
                              "distribution statically; set it to a non-empty string")
        return name
    declared = _table(data, "build-system") is not None and "build-backend" in data["build-system"]
    if not (declared or (root / "setup.py").is_file() or (root / "setup.cfg").is_file()):
        raise ConfigError(f"{where}: [project] name is required: no [project] table, setup.py "
                          f"or setup.cfg declares the distribution's name; {add}")
    key = files_key(root)
    cached = cache_dir() / "names" / f"{key}.json"
    try:
        return str(json.loads(cached.read_text())["name"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    name = _ask_backend(root, data, add)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"name": name, "root": str(root)}))
        tmp.replace(cached)
    except OSError:
        pass  # a read-only cache costs time, not correctness
    return name


def _ask_backend(root: Path, data: Mapping[str, Any], add: str) -> str:
    """PEP 517 ``prepare_metadata_for_build_wheel`` in the kept build environment (or, where
    there is none, in a fresh isolated one that pypa/build makes, in a subprocess)."""
    from build import BuildBackendException, BuildException, ProjectBuilder

    from .dist import kept_build_env
    from .run import CommandError, log, run

    backend = build_backend(data)

    def runner(cmd: Any, cwd: str | None = None,
               extra_environ: Mapping[str, str] | None = None) -> None:
        run(list(cmd), cwd=cwd, env=dict(extra_environ or {}), echo=False)

    log(f"asking the build backend ({backend}) for the distribution's name")
    try:
        try:
            python = kept_build_env(root, runner)
        except (BuildException, CommandError, OSError) as e:
            why = (str(e).splitlines() or [type(e).__name__])[0]
            log(f"no kept build environment ({why}): reading the metadata in a fresh one")
            script = ("import sys; from build.util import project_wheel_metadata as m; "
                      "print('Name: ' + (m(sys.argv[1]).get_all('Name') or [''])[0])")
            output = run([sys.executable, "-c", script, str(root)], cwd=root, echo=False).output
            lines = [line for line in output.splitlines() if line.startswith("Name: ")]
            name = lines[-1].removeprefix("Name: ").strip() if lines else None
        else:
            with tempfile.TemporaryDirectory() as tmp:
                builder = ProjectBuilder(root, python_executable=str(python), runner=runner)
                path = Path(builder.metadata_path(tmp))
                name = HeaderParser().parsestr(
                    (path / "METADATA").read_text(errors="replace")).get("Name")
    except (BuildBackendException, BuildException, CommandError) as e:
        raise ConfigError(f"the build backend ({backend}) could not say the distribution's name "
                          f"(its output is above): {add}") from e
    if not name or canonicalize_name(name) == "unknown":
        raise ConfigError(f"the build backend ({backend}) does not say the distribution's name: "
                          f"{add}")
    return str(name)
