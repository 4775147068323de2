"""Adopting brewblox-release in a service (docs/adopting.md): what ``init`` adds, and nothing more.
It never overwrites what is there and differs, unless ``force``; a second run changes nothing."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import tomlkit
import tomlkit.exceptions
from tomlkit.items import Table

from ._config import DEFAULT_TARGETS, SECTION, _check_image, _confined, _table, static_name
from ._errors import ConfigError, ReleaseError
from ._project import read_pyproject, version_source
from ._run import run
from ._secret import display_url

Action = Literal["created", "updated", "unchanged", "skipped (exists; --force to overwrite)",
                 "skipped (a monorepo's service: the repository's root holds its CI definition)"]
SKIPPED: Action = "skipped (exists; --force to overwrite)"
MONOREPO: Action = "skipped (a monorepo's service: the repository's root holds its CI definition)"

#: Where each provider reads its CI definition, relative to the repository's root.
CI_PATHS = {"github": ".github/workflows/release.yml", "gitlab": ".gitlab-ci.yml",
            "travis": ".travis.yml", "azure": "azure-pipelines.yml"}
CI_TEMPLATES = {"github": "github.yml", "gitlab": "gitlab-ci.yml", "travis": "travis.yml",
                 "azure": "azure-pipelines.yml"}

NOXFILE_LINE = "from brewblox_release.sessions import *  # noqa: F403"
#: The line added after a noxfile's own code: it registers the sessions and binds no name.
APPENDED_LINE = "import brewblox_release.sessions  # noqa: E402, F401 (the release sessions)"
_NOXFILE_IMPORT = re.compile(r"^(from\s+brewblox_release\.sessions\s+import\s+\*|"
                             r"import\s+brewblox_release\.sessions\b)", re.MULTILINE)



@dataclass(frozen=True)
class Change:
    """What `init` did (or, in a dry run, would do) to one file: ``path`` relative to the
    service's root, with ``/`` separators; ``detail``, what was added."""

    path: str
    action: Action
    detail: str = ""

    def render(self, *, dry_run: bool = False) -> str:
        """One line for the user.

        >>> Change("docker/Dockerfile", "skipped (exists; --force to overwrite)").render()
        'skipped    docker/Dockerfile: (exists; --force to overwrite)'
        """
        word, _, why = self.action.partition(" ")
        word = f"would {word[:-1]}" if dry_run and word in ("created", "updated") else f"{word:<10}"
        detail = " ".join(d for d in (self.detail, why) if d)
        return f"{word} {self.path}: {detail}" if detail else f"{word} {self.path}"


def render(changes: Sequence[Change], *, dry_run: bool = False) -> str:
    """The lines `init` shows: one per file, then what to do next."""
    lines = [c.render(dry_run=dry_run) for c in changes]
    if any(c.action == SKIPPED for c in changes):
        lines.append("some files exist and differ from what init writes: compare them, or run "
                     "init again with --force to overwrite them")
    if not dry_run and any(c.action in ("created", "updated") for c in changes):
        lines.append("next: commit these files, then try a dev release on loopback with "
                     "`nox -s release -- --rehearse --ref refs/heads/try-it`")
    return "\n".join(lines)


def _parse_remote(url: str) -> tuple[str, str] | None:
    """Host and ``owner/name`` (Azure: organisation and repository) of a git remote, a URL or
    scp-like (``git@host:owner/name.git``); None for a local path."""
    url = url.strip()
    scp = re.fullmatch(r"(?:[^@/]+@)?([^:/]+):(?!//)(.+)", url)
    if "://" in url:
        split = urlsplit(url)
        host, path = split.hostname or "", split.path
    elif scp:
        host, path = scp.group(1), scp.group(2)
    else:
        return None
    host = host.lower()
    parts = [p for p in path.strip("/").removesuffix(".git").split("/") if p]
    if "_git" in parts:  # dev.azure.com/ORG/PROJECT/_git/REPO, ORG.visualstudio.com/...
        org = parts[0] if host.endswith("dev.azure.com") else host.partition(".")[0]
        parts = [org, parts[-1]]
    elif host.endswith("dev.azure.com") and len(parts) > 1 and parts[0] == "v3":  # ssh: v3/ORG/…
        parts = [parts[1], parts[-1]]
    return (host, "/".join(parts)) if host and parts else None


def detect_provider(url: str) -> str | None:
    """The CI provider a remote URL suggests: github, gitlab or azure (Travis CI builds
    GitHub repositories, so it is never guessed)."""
    host = (_parse_remote(url) or ("", ""))[0]
    labels = host.split(".")
    if host.endswith(("dev.azure.com", "visualstudio.com")):
        return "azure"
    if "github" in labels:
        return "github"
    if any("gitlab" in label for label in labels):
        return "gitlab"
    return None


def _image_name(text: str) -> str:
    """``text`` as a valid repository path: ``BrewBlox/My Svc`` -> ``brewblox/my-svc``."""
    dashed = (re.sub(r"[^a-z0-9._-]+", "-", part) for part in text.lower().split("/"))
    components = (re.sub(r"[._-]*([._-])[._-]*", r"\1", part).strip("._-") for part in dashed)
    return "/".join(c for c in components if c)


#: A file's `Change`, and what to write into it (none when nothing is written).
_Plan = tuple[Change, tuple[Path, str] | None]


def _whole_file(root: Path, rel: str, template: str, *, force: bool) -> _Plan:
    """A file init owns whole (a Dockerfile, a CI definition): created, or left alone."""
    path = root / rel
    text = (resources.files("brewblox_release") / "templates" / template).read_text()
    if not path.exists():
        return Change(rel, "created"), (path, text)
    if path.read_text() == text:
        return Change(rel, "unchanged"), None
    if force:
        return Change(rel, "updated", "overwritten (--force)"), (path, text)
    return Change(rel, SKIPPED), None


def _noxfile(root: Path) -> _Plan:
    path = root / "noxfile.py"
    if not path.exists():
        return Change("noxfile.py", "created"), (path, NOXFILE_LINE + "\n")
    text = path.read_text()
    if _NOXFILE_IMPORT.search(text):
        return Change("noxfile.py", "unchanged"), None
    # After the service's own code: a session of its own named like one of the library's is
    # registered first and stays its own (the library's is not registered beside it), and no
    # name of the noxfile's is bound anew.
    new = f"{text.rstrip()}\n\n{APPENDED_LINE}\n" if text.strip() else f"{NOXFILE_LINE}\n"
    return Change("noxfile.py", "updated", "imports the sessions"), (path, new)


def ignored_entries(lines: Sequence[str], entry: str) -> bool:
    """Whether a ``.gitignore`` line ignores ``entry`` (a directory): ``dist``, ``/dist/``, and
    ``pkg/`` for every ``pkg``; a wildcard is not interpreted, so the entry is added beside it."""
    want = entry.strip("/")
    leaf = want.rsplit("/", 1)[-1]
    patterns = (line.strip() for line in lines)
    # A pattern with no slash but a trailing one matches at any depth (the leaf).
    return any(p.strip("/") == want or (p.strip("/") == leaf and "/" not in p.rstrip("/"))
               for p in patterns if not p.startswith(("#", "!")))


def _contexts(root: Path) -> list[str]:
    """The image contexts of the targets the service lists, else of the default targets; not
    the root (``.``), whose Dockerfile is the service's own and builds from the dist dir."""
    table = _table(read_pyproject(root), *SECTION.split(".")) or {}
    targets = table.get("targets")
    listed = [t.get("context") for t in targets if isinstance(t, Mapping)] \
        if isinstance(targets, list) else []
    if not listed:
        return [t.context for t in DEFAULT_TARGETS]
    contexts = [_confined(root, c, f"[{SECTION}] targets context").relative_to(root).as_posix()
                for c in listed if isinstance(c, str) and c not in {"", ".", "./"}]
    return list(dict.fromkeys(contexts))


def _gitignore(root: Path, contexts: Sequence[str]) -> _Plan:
    """What must never be committed: the dist dir, what distcopy puts into the contexts, nox's
    virtualenvs (the sessions run without one, a service's own sessions may not)."""
    path = root / ".gitignore"
    text = path.read_text() if path.exists() else ""
    entries = ("dist/", *(f"{c}/pkg/" for c in contexts), ".nox/", "*.egg-info/")
    missing = [e for e in entries if not ignored_entries(text.splitlines(), e)]
    if not missing:
        return Change(".gitignore", "unchanged"), None
    block = "# brewblox-release: built files\n" + "".join(f"{e}\n" for e in missing)
    if not text:
        return Change(".gitignore", "created"), (path, block)
    return (Change(".gitignore", "updated", ", ".join(missing)),
            (path, text.removesuffix("\n") + "\n\n" + block))


def _wanted_table(image: str, base_images: Mapping[str, str] | None, *,
                  stamps: bool) -> dict[str, object]:
    """The keys init writes into ``[tool.brewblox-release]``; ``stamps``: the service declares
    a static version, which its releases stamp (``stamp-version``)."""
    wanted: dict[str, object] = {"image": image}
    if stamps:
        wanted["stamp-version"] = True
    if not base_images:
        return wanted
    names = {t.name for t in DEFAULT_TARGETS}
    if unknown := sorted(set(base_images) - names):
        raise ConfigError(f"base image for target {unknown[0]!r}: init writes the default "
                          f"targets, {' and '.join(sorted(names))}; name one of them")
    if len(set(base_images.values())) == 1 and set(base_images) == names:
        # One (multi-platform) image for both targets: one build arg for all.
        wanted["build-args"] = {"BASE_IMAGE": next(iter(base_images.values()))}
        return wanted
    # An image per platform (a registry without multi-platform images, 2018's arm32v7/python):
    # each target names its own, and the build host (amd64) installs with the amd64 one.
    if "amd64" in base_images:
        wanted["build-args"] = {"BUILD_BASE_IMAGE": base_images["amd64"]}
    wanted["targets"] = [
        {"name": t.name, "context": t.context, "platform": t.platform, "prefix": t.prefix,
         **({"build-args": {"BASE_IMAGE": base_images[t.name]}} if t.name in base_images else {})}
        for t in DEFAULT_TARGETS]
    return wanted


def _toml_value(value: object) -> object:
    """Small tables inline (``build-args = { ... }``), lists of tables as ``[[...]]``."""
    if isinstance(value, Mapping):
        inline = tomlkit.inline_table()
        inline.update(value)
        return inline
    if isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
        array = tomlkit.aot()
        for item in value:
            table = tomlkit.table()
            table.update({key: _toml_value(sub) for key, sub in item.items()})
            array.append(table)
        return array
    return value


def _document(root: Path) -> tomlkit.TOMLDocument:
    path = root / "pyproject.toml"
    if path.exists():
        try:
            return tomlkit.parse(path.read_text())
        except tomlkit.exceptions.TOMLKitError as e:
            raise ConfigError(f"{path}: not valid TOML ({e}); fix it, then run init again") from e
    if (root / "setup.py").exists() or (root / "setup.cfg").exists():
        return tomlkit.document()  # a setup.py service of the 2018 kind: a pyproject of its own
    raise ConfigError(f"{root}: no pyproject.toml, setup.py or setup.cfg; run init in the "
                      "root directory of a Python project")


def _section(doc: tomlkit.TOMLDocument, path: Path) -> Table:
    """``[tool.brewblox-release]`` of the document, added (empty) where there is none."""
    tool = doc.get("tool")
    if tool is None:
        tool = tomlkit.table(is_super_table=True)
        doc.add("tool", tool)
    elif not isinstance(tool, MutableMapping):  # a Table, or [tool.*] tables split up by
        raise ConfigError(f"{path}: [tool] must be a table")  # others: tomlkit's proxy
    if "brewblox-release" not in tool:
        tool["brewblox-release"] = tomlkit.table()
    table = tool["brewblox-release"]
    if not isinstance(table, Table):
        raise ConfigError(f"{path}: [{SECTION}] must be a table")
    return table


def _static(root: Path, doc: tomlkit.TOMLDocument) -> bool:
    """Whether the service declares a static version (poetry-core, flit, hatchling)."""
    try:
        return version_source(root, doc.unwrap(), stamp=True).stamps
    except ReleaseError:  # no version source at all: the next run says what to add
        return False


def _packagelike(contexts: Sequence[str]) -> list[str]:
    """The contexts setuptools' discovery takes for a package: a name Python could import."""
    return [c for c in contexts if c.split("/")[0].isidentifier()]


def _flat_layout(root: Path, doc: tomlkit.TOMLDocument, contexts: Sequence[str]) -> str | None:
    """The service's own package, where setuptools' automatic discovery in a flat layout would
    also take a context (``docker/``) for one and refuse to build; ``""`` where it cannot be told
    which package is the service's; None where discovery is not in the way."""
    data = doc.unwrap()
    backend = (_table(data, "build-system") or {}).get("build-backend", "setuptools.build_meta")
    told, project = _table(data, "tool", "setuptools") or {}, _table(data, "project")
    if backend != "setuptools.build_meta" or project is None or "packages" in told or \
            "py-modules" in told or (root / "src").is_dir() or (root / "setup.py").exists() or \
            (root / "setup.cfg").exists() or not _packagelike(contexts):  # setup.cfg: [options]
        return None
    name = re.sub(r"[-_.]+", "_", str(project.get("name", ""))).lower()
    return name if name and (root / name / "__init__.py").is_file() else ""


def _pyproject(root: Path, contexts: Sequence[str], *, image: str | None, image_from: str | None,
               base_images: Mapping[str, str] | None, force: bool) -> _Plan:
    path = root / "pyproject.toml"
    doc = _document(root)
    derived = image is None  # a default only: never a reason to replace the service's own
    if image is None:
        image = _image_name(image_from or static_name(doc) or root.name)
    _check_image(image, "image")  # what config would refuse on the next run
    wanted = _wanted_table(image, base_images, stamps=_static(root, doc))
    table = _section(doc, path)
    if (package := _flat_layout(root, doc, contexts)) == "":
        raise ConfigError(
            f"setuptools' automatic discovery would take {_packagelike(contexts)[0]}/ for a "
            "package of the service and refuse to build: name the service's packages in "
            "[tool.setuptools] packages (docs/adopting.md), then run init again")
    added, conflicts = [], []
    for key, value in wanted.items():
        if key not in table:
            table.add(key, _toml_value(value))
            if key == "image":
                item = table["image"]
                item.comment("the image repository (BREWBLOX_RELEASE_IMAGE overrides it)")
                item.trivia.comment_ws = "  "
            added.append(key)
        elif table.unwrap()[key] != value and not (derived and key == "image"):
            conflicts.append(key)
            if force:
                table[key] = _toml_value(value)
    if package:  # the service's package alone, as discovery found it before the contexts
        tool = doc["tool"]
        assert isinstance(tool, MutableMapping)
        tool.setdefault("setuptools", tomlkit.table())["packages"] = {
            "find": {"include": [package, f"{package}.*"]}}
        added.append("and [tool.setuptools] packages (not the image contexts)")
    text = tomlkit.dumps(doc)
    if not path.exists():
        return Change("pyproject.toml", "created"), (path, text)
    if conflicts and not force:
        detail = f"[{SECTION}] {', '.join(conflicts)} set otherwise"
        return Change("pyproject.toml", SKIPPED, detail), None
    if not added and not conflicts:
        return Change("pyproject.toml", "unchanged"), None
    keys = ", ".join(added + conflicts)
    return Change("pyproject.toml", "updated", f"[{SECTION}] {keys}"), (path, text)


def init(root: Path, *, ci: str | None = None, force: bool = False, dry_run: bool = False,
         image: str | None = None, base_images: Mapping[str, str] | None = None) -> list[Change]:
    """Add brewblox-release to the service at ``root``; return what changed, file by file.
    Nothing is written unless every file could be decided: an error leaves the service as it was.

    ``ci`` and ``image`` default to what the ``origin`` remote says (its host, its ``owner/name``;
    else the project's name); ``base_images``, each default target's non-multi-platform one."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise ConfigError(f"{root}: not a directory; run init in the service's root directory")
    if ci is not None and ci not in CI_PATHS:
        raise ConfigError(f"--ci {ci!r}: unknown CI provider; choose one of "
                          f"{', '.join(CI_PATHS)}")
    url = None
    if ci is None or image is None:
        origin = run(["git", "remote", "get-url", "origin"], cwd=root, check=False, echo=False,
                     stream=False)
        url = origin.output.strip() if origin.returncode == 0 else None
    remote = _parse_remote(url) if url else None
    if ci is None and (ci := detect_provider(url or "")) is None:
        seen = f"the origin remote {display_url(url)!r}" if url else "no origin remote"
        raise ConfigError(f"cannot tell the CI provider from {seen}: give --ci "
                          f"{'|'.join(CI_PATHS)}")

    top = run(["git", "rev-parse", "--show-toplevel"], cwd=root, check=False, echo=False,
              stream=False)
    # Its last line: a warning of git's may come first (its output is stdout and stderr).
    found = Path(top.lines[-1]).resolve() if top.returncode == 0 and top.lines else root
    monorepo = root != found and found in root.parents
    image_from = remote[1] if remote else None
    if monorepo and image_from:  # a repository of services: an image each, of the owner's
        image_from = f"{image_from.split('/')[0]}/{static_name(_document(root)) or root.name}"
    contexts = _contexts(root)
    pyproject = _pyproject(root, contexts, image=image, image_from=image_from,
                           base_images=base_images, force=force)
    ci_file: _Plan = (Change(CI_PATHS[ci], MONOREPO, (
        f"add a job that runs `nox -s release` in {root.relative_to(found)} to it "
        "(docs/adopting.md)")), None) if monorepo else \
        _whole_file(root, CI_PATHS[ci], f"ci/{CI_TEMPLATES[ci]}", force=force)
    planned = [pyproject,
               _noxfile(root),
               *(_whole_file(root, f"{c}/Dockerfile", "Dockerfile", force=force)
                 for c in contexts),
               _gitignore(root, contexts),
               ci_file]
    if not dry_run:
        _write([write for _, write in planned if write is not None])
    return [change for change, _ in planned]


def _write(writes: Sequence[tuple[Path, str]]) -> None:
    """Write each file; one that cannot be written undoes the others (and their directories)."""
    done: list[tuple[Path, bytes | None, list[Path]]] = []
    try:
        for path, text in writes:
            made = [d for d in (path.parent, *path.parent.parents) if not d.exists()]
            old = path.read_bytes() if path.is_file() else None
            done.append((path, old, made))
            path.parent.mkdir(parents=True, exist_ok=True)
            # A file with Windows line ends keeps them (it was read with newlines as "\n").
            crlf = old is not None and b"\r\n" in old
            path.write_bytes((text.replace("\n", "\r\n") if crlf else text).encode())
    except BaseException:  # Ctrl-C too
        for path, old, made in reversed(done):
            with contextlib.suppress(OSError):
                if old is None:
                    path.unlink(missing_ok=True)
                else:
                    path.write_bytes(old)
                for directory in made:
                    directory.rmdir()
        raise
