"""The project as it is declared: its distribution name, where its version comes from, its tags
(every kind of service docs/versions.md names is taken as it is)."""

from __future__ import annotations

import ast
import contextlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path
from typing import Any

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from . import _buildenv as buildenv, _config as config
from ._config import _table
from ._errors import ConfigError, VersionError
from ._run import step

#: setuptools_scm's default: ``1.2.3``, ``v1.2.3``, ``anything-1.2.3``; a ``+local`` part apart.
DEFAULT_TAG_REGEX = r"^(?:[\w-]+-)?(?P<version>[vV]?\d+(?:\.\d+){0,2}[^\+]*)(?:\+.*)?$"

#: setuptools_scm keys that write files or are set by brewblox-release itself.
_DROPPED_KEYS = {"write_to", "write_to_template", "version_file", "version_file_template",
                 "relative_to", "dist_name", "local_scheme"}


@dataclass(frozen=True)
class TagRule:
    """Which tags are a service's releases, and the version each one names."""

    regex: str = DEFAULT_TAG_REGEX
    #: setuptools_scm's ``tag.prefix``: a literal start of every tag, stripped before ``regex``.
    prefix: str = ""
    #: Where the service sets the rule, for the error that refuses it.
    declared_in: str = field(default="[tool.setuptools_scm]", compare=False)

    def __post_init__(self) -> None:
        where = f"fix it where the service sets it ({self.declared_in})"
        try:
            compiled = re.compile(self.regex)
        except re.error as e:
            raise ConfigError(f"tag_regex {self.regex!r} is not a regular expression ({e}): "
                              f"{where}") from None
        if compiled.groups != 1 and "version" not in compiled.groupindex:  # as setuptools_scm
            raise ConfigError(f"tag_regex {self.regex!r} has neither one group nor a group "
                              f"named 'version' to say which part of a tag is the version: "
                              f"{where}")

    @property
    def is_default(self) -> bool:
        return self.regex == DEFAULT_TAG_REGEX and not self.prefix

    def version(self, tag: str) -> Version | None:
        """The version ``tag`` releases; None when it is not the service's, a VersionError when it
        names no version an index takes (not PEP 440, local, epoch)."""
        if not tag.startswith(self.prefix):
            return None
        rest = tag.removeprefix(self.prefix)
        match = re.match(self.regex, rest)
        delete = "Delete it (git push --delete origin TAG; git tag -d TAG) and tag again"
        # Also a tag of the service but for its local part, which its regex may leave out.
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
        if version.epoch:
            raise VersionError(f"tag {tag!r} has an epoch ({version.epoch}!), which "
                               f"brewblox-release does not publish: release tags look like "
                               f"1.2.3. {delete}")
        return version


def read_pyproject(root: Path) -> dict[str, Any]:
    """The parsed pyproject.toml of the project at ``root`` (empty when there is none)."""
    return config.read(root) if (root / "pyproject.toml").exists() else {}


def build_backend(data: Mapping[str, Any]) -> str:
    """The build backend of a parsed pyproject.toml (PEP 517's default: setuptools' legacy one)."""
    backend = (_table(data, "build-system") or {}).get("build-backend")
    return backend if isinstance(backend, str) and backend else "setuptools.build_meta:__legacy__"


def _requires(data: Mapping[str, Any]) -> set[str]:
    requires = (_table(data, "build-system") or {}).get("requires")
    names: set[str] = set()
    for text in requires if isinstance(requires, list) else ["setuptools"]:
        with contextlib.suppress(InvalidRequirement):
            names.add(canonicalize_name(Requirement(str(text)).name))
    return names


#: dunamai's default tag pattern (poetry-dynamic-versioning's and uv-dynamic-versioning's
#: ``pattern = "default"``): ``v1.2.3``, ``v1.2.3rc1``.
DUNAMAI_DEFAULT_PATTERN = r"""(?x)
    ^v((?P<epoch>\d+)!)?(?P<base>\d+(\.\d+)*)
    ([-._]?((?P<stage>[a-zA-Z]+)[-._]?(?P<revision>\d+)?))?
    (\+(?P<tagged_metadata>.+))?$"""

#: pdm-backend's default ``tag_regex``: any non-digit start, then a PEP 440 version.
PDM_DEFAULT_TAG_REGEX = (
    r"^(?:\D*)?(?P<version>([1-9][0-9]*!)?(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*"
    r"((a|b|c|rc)(0|[1-9][0-9]*))?(\.post(0|[1-9][0-9]*))?(\.dev(0|[1-9][0-9]*))?$)$")

#: How each build takes the version the tool computed: the backend's documented override.
OVERRIDES = {
    "poetry-dynamic-versioning": "POETRY_DYNAMIC_VERSIONING_BYPASS",
    "pdm-backend": "PDM_BUILD_SCM_VERSION",
    "uv-dynamic-versioning": "UV_DYNAMIC_VERSIONING_BYPASS",
}

#: setuptools_scm's ``git describe``, to which ``--match`` limits the tags it looks at.
_DESCRIBE = ["git", "describe", "--dirty", "--tags", "--long"]


def dunamai_tag_regex(pattern: object, prefix: object, where: str) -> str:
    """A dunamai tag ``pattern`` and ``pattern-prefix`` as a setuptools_scm ``tag.regex`` whose
    version is the text from dunamai's ``base`` group on.

    >>> re.match(dunamai_tag_regex("default-unprefixed", "svc-", "x"), "svc-2.0").group("version")
    '2.0'
    """
    if pattern is None or pattern == "default":
        text = DUNAMAI_DEFAULT_PATTERN
    elif pattern == "default-unprefixed":
        text = DUNAMAI_DEFAULT_PATTERN.replace("^v", "^v?", 1)
    elif isinstance(pattern, str):
        text = pattern
    else:
        raise ConfigError(f"{where} pattern must be a string")
    if prefix:
        if not isinstance(prefix, str):
            raise ConfigError(f"{where} pattern-prefix must be a string")
        text = text.replace("^", f"^{prefix}", 1)  # where dunamai puts it
    marker = "(?P<base>"
    if text.count(marker) != 1:
        raise ConfigError(f"{where} pattern {text!r} has no (?P<base>...) group, which "
                          "names where the version starts: add it, as dunamai asks")
    start = text.index(marker)
    regex = f"{text[:start]}(?P<version>{text[start:].rstrip()})"
    fix = f"{where} pattern {text!r}: its (?P<base>...) group must stand at the top level"
    try:
        compiled = re.compile(regex)
    except re.error as e:
        raise ConfigError(f"{fix} ({e})") from None
    if "version" not in compiled.groupindex:  # pragma: no cover (a "(?P<base>" in brackets)
        raise ConfigError(fix)
    return regex


@dataclass(frozen=True)
class VersionSource:
    """Where a build takes its version from: a plugin (``hatch-vcs``, ...) with setuptools_scm's
    ``settings``, or ``static``, stamped into a copy of the project in the table it names."""

    tool: str
    declared_in: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    static: str | None = None

    def __post_init__(self) -> None:
        _ = self.tags  # a tag rule that cannot be one is refused before any tool reads it

    @property
    def stamps(self) -> bool:
        return self.static is not None

    @property
    def tags(self) -> TagRule:
        tag = _table(self.settings, "tag") or {}
        regex, prefix = tag.get("regex"), tag.get("prefix")
        return TagRule(regex if isinstance(regex, str) else DEFAULT_TAG_REGEX,
                       prefix if isinstance(prefix, str) else "", self.declared_in)

    def build_env(self, name: str, version: str) -> dict[str, str]:
        """The variables that make the build use exactly ``version`` (docs/versions.md)."""
        if self.tool in OVERRIDES:
            return {OVERRIDES[self.tool]: version}
        if self.stamps:
            return {}
        # setuptools reads its distribution's variable, hatch-vcs only the plain one; the build
        # builds this one project, so the plain one cannot reach another.
        normalized = re.sub(r"[-_.]+", "_", name).upper()
        return {f"SETUPTOOLS_SCM_PRETEND_VERSION_FOR_{normalized}": version,
                "SETUPTOOLS_SCM_PRETEND_VERSION": version}


def normalise(settings: Mapping[str, Any]) -> dict[str, Any]:
    """setuptools_scm keys, with the deprecated spellings in their new places (setuptools_scm
    warns about the old ones, and the tag regex is read from one place)."""
    data = {k: v for k, v in settings.items() if k not in _DROPPED_KEYS}
    tag = dict(data.pop("tag", None) or {})
    if (regex := data.pop("tag_regex", None)) is not None:
        tag.setdefault("regex", regex)
    if tag:
        data["tag"] = tag
    if (describe := data.pop("git_describe_command", None)) is not None:
        scm = dict(data.pop("scm", None) or {})
        scm["git"] = {"describe_command": describe, **(scm.get("git") or {})}
        data["scm"] = scm
    return data


def _setup_py_scm(root: Path) -> dict[str, Any] | None:
    """The literal settings of ``use_scm_version`` in setup.py (keys whose values are code are
    left to setuptools_scm's defaults), or None when setup.py does not have git decide."""
    path = root / "setup.py"
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except FileNotFoundError:
        return None
    except (SyntaxError, ValueError) as e:
        raise ConfigError(f"{path}: not valid Python: {e}") from e
    value = next((keyword.value for node in ast.walk(tree) if isinstance(node, ast.Call)
                  for keyword in node.keywords if keyword.arg == "use_scm_version"), None)
    if value is None or (isinstance(value, ast.Constant) and not value.value):
        return None
    settings: dict[str, Any] = {}
    pairs = zip(value.keys, value.values, strict=True) if isinstance(value, ast.Dict) else ()
    for key, item in pairs:  # a value that is code, not a literal, is left to the default
        with contextlib.suppress(ValueError, TypeError, SyntaxError, RecursionError):
            name = ast.literal_eval(key) if key is not None else None
            settings[str(name)] = ast.literal_eval(item)
    return settings


#: The repository found from a service's subdirectory (a monorepo), as dunamai and pdm-backend's
#: scm source find it: only where `git describe` reads the service's own tags (a tag prefix or
#: filter), so that no other service's tag is taken. setuptools_scm and hatch-vcs (and a static
#: version) take ``root`` and ``tag.prefix`` from [tool.setuptools_scm] instead.
_FROM_SUBDIRECTORY = {"search_parent_directories": True}


def version_source(root: Path, data: Mapping[str, Any] | None = None, *,
                   stamp: bool = False) -> VersionSource:
    """Where the build of the project at ``root`` (``data``: its parsed pyproject.toml) takes
    its version from (docs/versions.md); a static version only with ``stamp``."""
    data = read_pyproject(root) if data is None else data
    where = root / "pyproject.toml"
    backend = build_backend(data)
    requires = _requires(data)

    def plugin(tool: str, table: str, backend_hint: str) -> VersionSource:
        settings = _table(data, *table.split(".")) or {}
        if tool not in requires:
            raise VersionError(f"{where}: [{table}] is set but the build does not install "
                               f"{tool}, so the version would not come from git: add "
                               f"\"{tool}\" to [build-system] requires{backend_hint}")
        if settings.get("from-file") or settings.get("vcs", "git") not in ("git", "any"):
            raise VersionError(f"{where}: [{table}] takes the version from somewhere else than "
                               "git's tags (from-file, vcs): brewblox-release's versions come "
                               "from git (docs/versions.md); remove that setting")
        pattern, prefix = settings.get("pattern"), settings.get("pattern-prefix")
        regex = dunamai_tag_regex(pattern, prefix, f"{where}: [{table}]")
        # A tag the pattern does not match is no tag of the service's: dunamai looks past it,
        # and so does setuptools_scm's strict tag reading.
        found: dict[str, Any] = {"tag": {"regex": regex, "strict": True}}
        # dunamai's preset patterns begin with a literal we know (the prefix, then "v"):
        # `git describe` looks at those tags only, as dunamai does.
        starts = {None: ["v"], "default": ["v"], "default-unprefixed": ["v", ""]}.get(pattern)
        if starts is not None:
            match = [arg for start in starts for arg in ("--match", f"{prefix or ''}{start}[0-9]*")]
            found["scm"] = {"git": {"describe_command": [*_DESCRIBE, *match]}}
            if isinstance(prefix, str) and prefix:  # git describe reads the service's tags only
                found |= _FROM_SUBDIRECTORY
        return VersionSource(tool, f"[{table}]", found)

    if (_table(data, "tool", "poetry-dynamic-versioning") or {}).get("enable") is True:
        return plugin("poetry-dynamic-versioning", "tool.poetry-dynamic-versioning",
                      " and build-backend = \"poetry_dynamic_versioning.backend\"")
    static = _static_version(data, backend)
    pdm = _table(data, "tool", "pdm", "version") or {}
    if backend.startswith("pdm.") and pdm.get("source") == "scm":
        found: dict[str, Any] = {"tag": {"regex": pdm.get("tag_regex") or PDM_DEFAULT_TAG_REGEX}}
        if isinstance(pdm.get("tag_filter"), str):  # git describe reads the service's tags only
            found["scm"] = {"git": {"describe_command": [*_DESCRIBE, "--match", pdm["tag_filter"]]}}
            found |= _FROM_SUBDIRECTORY
        if isinstance(pdm.get("fallback_version"), str):
            found["fallback_version"] = pdm["fallback_version"]
        return VersionSource("pdm-backend", "[tool.pdm.version]", found)
    if backend.startswith("hatchling"):
        hatch = _table(data, "tool", "hatch", "version") or {}
        if hatch.get("source") == "uv-dynamic-versioning":
            return plugin("uv-dynamic-versioning", "tool.uv-dynamic-versioning", "")
        if hatch.get("source") == "vcs":
            return _hatch_vcs(where, hatch, requires)
    elif (backend.startswith("setuptools") and static is None  # a static version stands
          and (scm := _setuptools_scm(root, data, requires))):
        return scm
    if static is not None:
        if stamp:
            # setuptools_scm's rules compute it, with its settings where the service gives them
            # (a monorepo's root and tag prefix).
            settings = normalise(_table(data, "tool", "setuptools_scm") or {})
            return VersionSource("static", f"[{static}] version", settings, static=static)
        version = _table(data, *static.split("."))["version"]  # type: ignore[index]
        raise VersionError(f"{where}: [{static}] version = {version!r} is static, so the "
                           "build would not take its version from git: set stamp-version = true "
                           "in [tool.brewblox-release] (the version from git is written into a "
                           "copy the package is built from; the checkout is never written)")
    if backend.startswith("hatchling"):
        raise VersionError(
            f"{where}: hatchling would not take the version from git: add "
            "[tool.hatch.version] source = \"vcs\" and \"hatch-vcs\" to [build-system] "
            "requires (or source = \"uv-dynamic-versioning\")")
    if backend.startswith("setuptools"):
        raise VersionError(
            f"{where}: the build would not take its version from git: add [tool.setuptools_scm] "
            "to pyproject.toml and \"setuptools-scm\" to [build-system] requires (or "
            "use_scm_version=True with setup_requires=[\"setuptools_scm\"] in setup.py)")
    raise VersionError(
        f"{where}: the build backend {backend} takes its version neither from git through a "
        "plugin brewblox-release knows (setuptools_scm, hatch-vcs, poetry-dynamic-versioning, "
        "pdm-backend's scm source, uv-dynamic-versioning) nor from a static version: see "
        "docs/versions.md")


def _static_version(data: Mapping[str, Any], backend: str) -> str | None:
    """The table that holds a static version (``project``, ``tool.poetry``), or None."""
    project = _table(data, "project")
    if project is not None and "version" in project:
        return "project"
    poetry = _table(data, "tool", "poetry") or {}
    dynamic = project.get("dynamic") if project is not None else None
    if (project is None or (isinstance(dynamic, list) and "version" in dynamic)) and \
            backend.startswith("poetry") and "version" in poetry:
        return "tool.poetry"
    return None


def _hatch_vcs(where: Path, hatch: Mapping[str, Any], requires: set[str]) -> VersionSource:
    if "hatch-vcs" not in requires:
        raise VersionError(f"{where}: [tool.hatch.version] source = \"vcs\" but the build does "
                           "not install hatch-vcs: add \"hatch-vcs\" to [build-system] requires")
    raw = hatch.get("raw-options") or {}
    if not isinstance(raw, Mapping):
        raise VersionError(f"{where}: [tool.hatch.version] raw-options must be a table")
    settings = dict(raw)
    for key, setting in (("tag-pattern", "tag_regex"), ("fallback-version", "fallback_version")):
        if isinstance(hatch.get(key), str) and hatch[key]:
            settings[setting] = hatch[key]
    return VersionSource("hatch-vcs", "[tool.hatch.version]", normalise(settings))


def _setuptools_scm(root: Path, data: Mapping[str, Any],
                    requires: set[str]) -> VersionSource | None:
    """setuptools_scm's settings, or None where it is not configured."""
    section = _table(data, "tool", "setuptools_scm")
    section = _table(data, "tool", "vcs-versioning") if section is None else section
    from_setup_py = _setup_py_scm(root)
    if section is None and from_setup_py is None:
        return None

    def mentions(name: str) -> bool:
        with contextlib.suppress(OSError):
            return bool(re.search("setuptools[_-]scm", (root / name).read_text(errors="replace")))
        return False

    if not ("setuptools-scm" in requires or mentions("setup.py") or mentions("setup.cfg")):
        raise VersionError(
            f"{root / 'pyproject.toml'}: setuptools_scm is configured but the build does not "
            "install it, so the version would not come from git: add \"setuptools-scm\" to "
            "[build-system] requires")
    settings = {**(section or {}), **(from_setup_py or {})}
    declared = "[tool.setuptools_scm]" if from_setup_py is None else "setup.py use_scm_version" + (
        " and [tool.setuptools_scm]" if section is not None else "")
    return VersionSource("setuptools_scm", declared, normalise(settings))


def distribution_name(root: Path, data: Mapping[str, Any]) -> str:
    """The distribution name: the static one, else the build backend's metadata, cached per
    `buildenv.files_key` so that ``version`` and ``--dry-run`` pay for it once."""
    where = root / "pyproject.toml"
    add = (f"declare it in {where}: [project] name = \"...\" with dynamic = [\"version\", ...] "
           "naming each field the build backend fills in")
    project = data.get("project")
    if project is not None:
        if not isinstance(project, Mapping):
            raise ConfigError(f"{where}: [project] name is required: [project] must be a table")
        name = project.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}: [project] name is required: PEP 621 names the "
                              "distribution statically; set it to a non-empty string")
        return name
    if static := config.static_name(data):  # poetry's [tool.poetry] name
        return static
    declared = "build-backend" in (_table(data, "build-system") or {})
    if not (declared or (root / "setup.py").is_file() or (root / "setup.cfg").is_file()):
        raise ConfigError(f"{where}: [project] name is required: no [project] table, setup.py "
                          f"or setup.cfg declares the distribution's name; {add}")
    cached = buildenv.cache_dir() / "names" / f"{buildenv.files_key(root)}.json"
    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
        return str(json.loads(cached.read_text())["name"])
    from build import BuildBackendException, BuildException

    backend = build_backend(data)
    try:
        with step(f"name: asking the build backend ({backend})"), \
                tempfile.TemporaryDirectory() as tmp:
            path = Path(buildenv.builder(root).metadata_path(tmp))
            name = HeaderParser().parsestr(
                (path / "METADATA").read_text(errors="replace")).get("Name")
    except (BuildBackendException, BuildException) as e:
        raise ConfigError(f"the build backend ({backend}) could not say the distribution's name "
                          f"(its last lines are above): fix what it reports, or {add}") from e
    if not name or canonicalize_name(name) == "unknown":
        raise ConfigError(f"the build backend ({backend}) does not say the distribution's name: "
                          f"{add}")
    with contextlib.suppress(OSError):  # a read-only cache costs time, not correctness
        cached.parent.mkdir(parents=True, exist_ok=True)
        part = cached.with_suffix(f".{os.getpid()}.tmp")
        part.write_text(json.dumps({"name": name, "root": str(root)}))
        part.replace(cached)
    return str(name)


def configuration(root: Path | str = ".", env: Mapping[str, str] | None = None) -> config.Config:
    """The service's configuration (`config.load`), with its `distribution_name`."""
    root = Path(root).resolve()
    data = config.read(root)
    return config.load(root, env, name=config.static_name(data) or distribution_name(root, data))
