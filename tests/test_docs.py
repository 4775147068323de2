"""The docs name everything a user can set: every key of ``[tool.brewblox-release]`` and of its
targets, and every environment variable the library reads (docs/configuration.md); the README
stays short, and nothing in the repository cites a document that is not in it."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from brewblox_release._config import Config
from brewblox_release._errors import ConfigError

ROOT = Path(__file__).parent.parent
DOCS = "\n".join(path.read_text() for path in sorted((ROOT / "docs").glob("*.md")))
REFERENCE = (ROOT / "docs" / "configuration.md").read_text()
#: Upper-case names the library reads that are not environment variables: the target Python's
#: sysconfig (the image template reads them from files), build args named in docs/image.md, and
#: the word SBOM (signing's table of what it attaches).
NOT_VARIABLES = {"BINDIR", "LDVERSION", "LIBDEST", "SOABI", "SBOM"}


def _known_keys(data: dict[str, object]) -> list[str]:
    """The keys the reader knows, as its error for an unknown key lists them."""
    with pytest.raises(ConfigError, match="unknown key") as refused:
        Config.from_data(Path("/srv/svc"), {"tool": {"brewblox-release": data}}, "svc")
    return str(refused.value).split("known keys: ")[1].split(", ")


def test_every_key_is_in_the_reference() -> None:
    keys = _known_keys({"image": "org/svc", "no-such-key": 1})
    target = _known_keys({"image": "org/svc", "targets": [
        {"name": "amd64", "context": "docker", "platform": "linux/amd64", "no-such-key": 1}]})
    assert {"image", "sign", "stamp-version", "targets"} <= set(keys)
    assert {"name", "context", "platform", "prefix", "build-args"} <= set(target)
    missing = [key for key in {*keys, *target} if f"`{key}`" not in REFERENCE
               and f"\n{key} = " not in REFERENCE]
    assert not missing, f"docs/configuration.md names no {missing}"


def _read_variables() -> dict[str, set[str]]:
    """Every upper-case name the library asks a mapping for (``.get``, ``.pop``, ``[...]``),
    compares with, or lists in a ``*_VARS`` tuple, and the modules that do."""
    name = re.compile(r"^[A-Z][A-Z0-9_]{2,}$")
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / "brewblox_release").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            candidates: list[ast.AST] = []
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in {"get", "pop"} and node.args:
                candidates.append(node.args[0])
            elif isinstance(node, ast.Subscript):
                candidates.append(node.slice)
            elif isinstance(node, ast.Assign) and any(
                    (isinstance(t, ast.Name) and t.id.endswith("VARS")) or isinstance(t, ast.Tuple)
                    for t in node.targets):
                candidates += list(ast.walk(node.value))
            elif isinstance(node, ast.Compare):
                candidates += [node.left, *node.comparators]
            for candidate in candidates:
                if isinstance(candidate, ast.Constant) and isinstance(candidate.value, str) \
                        and name.match(candidate.value):
                    found.setdefault(candidate.value, set()).add(path.name)
    return found


def test_every_variable_the_library_reads_is_in_the_docs() -> None:
    read = _read_variables()
    assert {"TWINE_PASSWORD", "COSIGN_PRIVATE_KEY", "BREWBLOX_RELEASE_CACHE", "GITHUB_SHA",
            "GIT_DIR"} <= set(read), "the scan finds the variables it must"
    missing = sorted(f"{name} ({', '.join(sorted(where))})" for name, where in read.items()
                     if name not in NOT_VARIABLES and f"`{name}`" not in DOCS)
    assert not missing, f"docs/ names no {missing}"


def test_every_toml_example_reads() -> None:
    """Each ``toml`` block of the docs and the README, its commented lines uncommented too, is
    TOML a user can paste; where it holds a ``[tool.brewblox-release]`` table, one the reader
    takes."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib

    paths = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
    blocks = [b for path in paths
              for b in re.findall(r"```toml\n(.*?)```", path.read_text(), re.DOTALL)]
    assert len(blocks) >= 5
    commented = re.compile(r"^# ?(?=\s*([\w-]+\s*=|\[|\{|\]))", re.MULTILINE)  # a key, a table
    for block in blocks:
        for text in (block, commented.sub("", block)):
            data = tomllib.loads(text)
            if "brewblox-release" in data.get("tool", {}):
                Config.from_data(Path("/srv/svc"), data, "svc")


def test_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) < 200


def test_nothing_cites_a_document_outside_the_repository() -> None:
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()
    cites = re.compile(r"\bSPEC\b|§|\b[Ii]ssue #?\d+|this round")
    found = [f"{path}:{number}" for path in files
             if not path.startswith("tests/") and (ROOT / path).is_file()
             and (ROOT / path).suffix in {".py", ".md", ".toml", ".yml", ".sh", ".txt", ""}
             for number, line in enumerate((ROOT / path).read_text(errors="replace")
                                           .splitlines(), 1) if cites.search(line)]
    assert not found, found


def test_no_other_package_s_private_name() -> None:
    """What ruff's PLC2701 checks in the library, for the tests and the benchmark, which import
    the library's own private modules: never another package's private name (they change in any
    release of that package)."""
    found = []
    for path in sorted([*(ROOT / "tests").glob("*.py"), *(ROOT / "bench").glob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found += [f"{path.relative_to(ROOT)}:{node.lineno}: {name}" for name in names
                      if name.split(".")[0] not in {"brewblox_release", "tests"}
                      and any(part.startswith("_") and not part.startswith("__")
                              for part in name.split("."))]
    assert not found, f"another package's private names: {found}"
