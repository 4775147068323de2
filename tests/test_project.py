"""The project as it is declared (docs/versions.md): the name from whatever declares it, the version
from the service's own setuptools_scm or hatch-vcs settings, tags by its tag regex, and
`twine check` at the level of ``check``. Real git repositories and real build backends (in the
kept build environment)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from brewblox_release import (
    _buildenv as buildenv,
    _dist as dist,
    _project as project,
    _version as version,
)
from brewblox_release._errors import BuildError, ConfigError, VersionError
from brewblox_release._project import TagRule
from tests import samples
from tests.service import GitRepo, make_service, nox

# --- the name ------------------------------------------------------------------------------------


def test_a_static_name_is_read_without_the_backend(tmp_path: Path) -> None:
    repo = samples.hatch_service(tmp_path / "svc")
    assert project.distribution_name(repo.path, project.read_pyproject(repo.path)) == "hatch-svc"


@pytest.mark.parametrize(("make", "name"), [
    (samples.setup_py_service, "legacy-svc"),
    (samples.setup_cfg_service, "cfg-svc"),
])
def test_the_backend_says_the_name(tmp_path: Path, make: object, name: str) -> None:
    assert callable(make)
    repo: GitRepo = make(tmp_path / "svc")
    assert project.configuration(repo.path).name == name


def test_the_name_is_cached_by_the_files_that_decide_it(tmp_path: Path) -> None:
    repo = samples.setup_py_service(tmp_path / "svc", name="cached-svc")
    assert project.configuration(repo.path).name == "cached-svc"
    cached = buildenv.cache_dir() / "names" / f"{buildenv.files_key(repo.path)}.json"
    assert json.loads(cached.read_text())["name"] == "cached-svc"
    try:
        # What the cache says is what is used: the backend is not asked again...
        cached.write_text(json.dumps({"name": "from-the-cache"}))
        assert project.configuration(repo.path).name == "from-the-cache"
        # ...until a deciding file changes.
        setup_py = repo.path / "setup.py"
        setup_py.write_text(setup_py.read_text().replace("cached-svc", "renamed-svc"))
        assert project.configuration(repo.path).name == "renamed-svc"
        (repo.path / "README.md").write_text("another readme\n")  # not a deciding file
        assert project.configuration(repo.path).name == "renamed-svc"
    finally:
        cached.unlink(missing_ok=True)


@pytest.mark.parametrize("setup_call", [
    # No name and nothing to infer one from: setuptools says UNKNOWN.
    "setup(packages=[], py_modules=[], use_scm_version=True)",
    # No name and two top-level packages: setuptools' discovery fails.
    "setup(use_scm_version=True)",
])
def test_a_backend_that_cannot_say_the_name(tmp_path: Path, setup_call: str) -> None:
    repo = samples.setup_py_service(tmp_path / "svc")
    repo.write("setup.py", "from setuptools import setup\n"
                           f"{setup_call}  # setup_requires=['setuptools_scm']\n")
    repo.write("other_pkg/__init__.py", "")
    with pytest.raises(ConfigError, match=r"(does not|could not) say the distribution's name.*"
                                          r"declare it in .*: \[project\] name = \"...\" with "
                                          r"dynamic = \[\"version\", ...\]") as info:
        project.configuration(repo.path)
    assert "\n" not in str(info.value)


def test_a_project_that_declares_no_name_anywhere(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.brewblox-release]\nimage = "org/svc"\n')
    with pytest.raises(ConfigError, match=r"no \[project\] table, setup.py or setup.cfg"):
        project.configuration(tmp_path)


# --- the version source --------------------------------------------------------------------------


POETRY = '[build-system]\nrequires = ["poetry-core"]\nbuild-backend = "poetry.core.masonry.api"\n'
FLIT = '[build-system]\nrequires = ["flit_core"]\nbuild-backend = "flit_core.buildapi"\n'
HATCH = '[build-system]\nrequires = ["hatchling"]\nbuild-backend = "hatchling.build"\n'
PDV = ('[build-system]\nrequires = ["poetry-core", "poetry-dynamic-versioning"]\n'
       'build-backend = "poetry_dynamic_versioning.backend"\n'
       '[tool.poetry]\nname = "s"\nversion = "0.0.0"\n')
PDM = '[build-system]\nrequires = ["pdm-backend"]\nbuild-backend = "pdm.backend"\n'
UVDV = ('[build-system]\nrequires = ["hatchling", "uv-dynamic-versioning"]\n'
        'build-backend = "hatchling.build"\n[project]\nname = "s"\ndynamic = ["version"]\n'
        '[tool.hatch.version]\nsource = "uv-dynamic-versioning"\n')


# Each source: the pyproject.toml, the tool, the override the build gets, a tag that is the
# service's and the version it names, and a tag that is not.
@pytest.mark.parametrize(("pyproject", "tool", "override", "tag", "version", "other"), [
    (PDV + '[tool.poetry-dynamic-versioning]\nenable = true\n', "poetry-dynamic-versioning",
     "POETRY_DYNAMIC_VERSIONING_BYPASS", "v1.2.3rc1", "1.2.3rc1", "1.2.3"),
    (PDV + '[tool.poetry-dynamic-versioning]\nenable = true\npattern = "default-unprefixed"\n',
     "poetry-dynamic-versioning", "POETRY_DYNAMIC_VERSIONING_BYPASS", "1.2.3", "1.2.3",
     "x1.2.3"),
    (PDV + '[tool.poetry-dynamic-versioning]\nenable = true\npattern-prefix = "svc-"\n',
     "poetry-dynamic-versioning", "POETRY_DYNAMIC_VERSIONING_BYPASS", "svc-v2.0", "2.0",
     "v2.0"),
    (PDV + '[tool.poetry-dynamic-versioning]\nenable = true\n'
     'pattern = "^rel/(?P<base>\\\\d+(\\\\.\\\\d+)*)$"\n', "poetry-dynamic-versioning",
     "POETRY_DYNAMIC_VERSIONING_BYPASS", "rel/3.1", "3.1", "v3.1"),
    (PDM + '[project]\nname = "s"\ndynamic = ["version"]\n[tool.pdm.version]\nsource = "scm"\n',
     "pdm-backend", "PDM_BUILD_SCM_VERSION", "v1.2.3", "1.2.3", "v1.2.3-x"),
    (PDM + '[project]\nname = "s"\ndynamic = ["version"]\n[tool.pdm.version]\nsource = "scm"\n'
     'tag_regex = "^svc@(?P<version>.+)$"\n', "pdm-backend", "PDM_BUILD_SCM_VERSION",
     "svc@1.0", "1.0", "1.0"),
    (UVDV, "uv-dynamic-versioning", "UV_DYNAMIC_VERSIONING_BYPASS", "v0.4.0", "0.4.0", "0.4.0"),
    (UVDV + '[tool.uv-dynamic-versioning]\npattern = "default-unprefixed"\n',
     "uv-dynamic-versioning", "UV_DYNAMIC_VERSIONING_BYPASS", "0.4.0", "0.4.0", "r0.4.0"),
    (HATCH.replace('"hatchling"]', '"hatchling", "hatch-vcs"]') +
     '[project]\nname = "s"\ndynamic = ["version"]\n[tool.hatch.version]\nsource = "vcs"\n',
     "hatch-vcs", "SETUPTOOLS_SCM_PRETEND_VERSION", "v1.0", "1.0", "x"),
    ('[build-system]\nrequires = ["setuptools", "setuptools-scm"]\n'
     'build-backend = "setuptools.build_meta"\n[project]\nname = "s"\n'
     'dynamic = ["version"]\n[tool.setuptools_scm]\ntag = { prefix = "svc-" }\n',
     "setuptools_scm", "SETUPTOOLS_SCM_PRETEND_VERSION_FOR_S", "svc-1.0", "1.0", "1.0"),
])
def test_each_version_source_its_tags_and_its_override(
        tmp_path: Path, *, pyproject: str, tool: str, override: str, tag: str, version: str,
        other: str) -> None:
    (tmp_path / "pyproject.toml").write_text(pyproject)
    found = project.version_source(tmp_path)
    assert found.tool == tool
    assert not found.stamps
    assert found.build_env("s", "1.2.4.dev5")[override] == "1.2.4.dev5"
    assert str(found.tags.version(tag)) == version
    assert found.tags.version(other) is None


@pytest.mark.parametrize(("pyproject", "table"), [
    (POETRY + '[tool.poetry]\nname = "s"\nversion = "1.0.0"\n', "tool.poetry"),
    (POETRY + '[project]\nname = "s"\ndynamic = ["version"]\n'
     '[tool.poetry]\nversion = "1.0.0"\n', "tool.poetry"),
    (POETRY + '[project]\nname = "s"\nversion = "1.0.0"\n', "project"),
    (FLIT + '[project]\nname = "s"\nversion = "1.0.0"\n', "project"),
    (HATCH + '[project]\nname = "s"\nversion = "1.0.0"\n', "project"),
    (PDM + '[project]\nname = "s"\nversion = "1.0.0"\n', "project"),
    ('[build-system]\nrequires = ["uv_build"]\nbuild-backend = "uv_build"\n'
     '[project]\nname = "s"\nversion = "1.0.0"\n', "project"),
    ('[project]\nname = "s"\nversion = "1.0"\n[tool.setuptools_scm]\n', "project"),
])
def test_a_static_version_is_stamped_only_when_asked(tmp_path: Path, pyproject: str,
                                                     table: str) -> None:
    (tmp_path / "pyproject.toml").write_text(pyproject)
    with pytest.raises(VersionError, match=rf"\[{table}\] version = '1.0(.0)?' is static.*"
                                           r"set stamp-version = true") as info:
        project.version_source(tmp_path)
    assert "\n" not in str(info.value)
    found = project.version_source(tmp_path, stamp=True)
    assert (found.tool, found.static, found.stamps) == ("static", table, True)
    assert found.build_env("s", "1.2.4.dev5") == {}
    assert found.tags.is_default


@pytest.mark.parametrize(("pyproject", "expected"), [
    (HATCH + '[project]\nname = "s"\ndynamic = ["version"]\n',
     r'hatchling would not take the version from git: add \[tool.hatch.version\] source = "vcs"'),
    (HATCH + '[project]\nname = "s"\ndynamic = ["version"]\n[tool.hatch.version]\nsource = "vcs"\n',
     r'does not install hatch-vcs: add "hatch-vcs" to \[build-system\] requires'),
    (FLIT + '[project]\nname = "s"\ndynamic = ["version"]\n',
     r"flit_core.buildapi takes its version neither from git .* nor from a static version"),
    ('[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
     '[project]\nname = "s"\ndynamic = ["version"]\n',
     r"would not take its version from git: add \[tool.setuptools_scm\]"),
    ('[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n'
     '[project]\nname = "s"\ndynamic = ["version"]\n[tool.setuptools_scm]\n',
     r'does not install it.*add "setuptools-scm" to \[build-system\] requires'),
    (PDV.replace(', "poetry-dynamic-versioning"', "") +
     '[tool.poetry-dynamic-versioning]\nenable = true\n',
     r'does not install poetry-dynamic-versioning.*poetry_dynamic_versioning.backend'),
    (PDV + '[tool.poetry-dynamic-versioning]\nenable = true\npattern = "^v(?P<x>.+)$"\n',
     r"has no \(\?P<base>...\) group"),
    (PDV + '[tool.poetry-dynamic-versioning]\nenable = true\npattern = "(a|(?P<base>\\\\d+)"\n',
     r"must stand at the top level"),
])
def test_a_build_that_would_not_take_its_version_from_git(
        tmp_path: Path, pyproject: str, expected: str) -> None:
    (tmp_path / "pyproject.toml").write_text(pyproject)
    with pytest.raises((VersionError, ConfigError), match=expected) as info:
        project.version_source(tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("dynamic", ["5", "true", '"version"'])
def test_a_malformed_dynamic_is_no_static_version(tmp_path: Path, dynamic: str) -> None:
    # Found in review: `"version" in 5` ended in a TypeError, not the backend's source.
    (tmp_path / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools", "setuptools-scm"]\n'
        f'build-backend = "setuptools.build_meta"\n[project]\nname = "s"\ndynamic = {dynamic}\n'
        "[tool.setuptools_scm]\n")
    assert project.version_source(tmp_path).tool == "setuptools_scm"


@pytest.mark.process
def test_version_says_so_before_anything_is_built(tmp_path: Path) -> None:
    repo = make_service(tmp_path / "svc")
    text = (repo.path / "pyproject.toml").read_text().replace('dynamic = ["version"]',
                                                                'version = "0.1.0"')
    repo.commit("a static version", files={"pyproject.toml": text})
    result = nox(repo, "-s", "version")
    assert result.returncode != 0
    assert "is static, so the build would not take its version from git: set stamp-version " \
        "= true" in result.stdout
    assert "Traceback" not in result.stdout


@pytest.mark.process
def test_a_backend_that_cannot_say_the_name_shows_why(tmp_path: Path) -> None:
    """Its output is in the log, so the step shows its last lines; the advice names the
    ``dynamic`` a [project] table then needs (without it, setuptools refuses the table)."""
    repo = samples.setup_py_service(tmp_path / "legacy-svc")
    setup = repo.path / "setup.py"
    setup.write_text('import os\nos.environ["NEEDED_BY_SETUP"]\n' + setup.read_text())
    repo.commit("a setup.py that needs a variable")
    result = nox(repo, "-s", "version", env={"BREWBLOX_RELEASE_CACHE": str(tmp_path / "c")})
    assert result.returncode != 0
    assert "KeyError: 'NEEDED_BY_SETUP'" in result.stdout, result.stdout
    assert "could not say the distribution's name (its last lines are above): fix what it " \
        'reports, or declare it in' in result.stdout
    assert 'dynamic = ["version", ...]' in result.stdout
    assert "Traceback (most recent call last)" not in result.stdout.split("its last lines")[0]


@pytest.mark.parametrize(("setup_call", "source"), [
    ("setup(name='s', use_scm_version=True)", {}),
    ("setup(name='s', use_scm_version={'local_scheme': lambda v: ''})", {}),
    ("setup(name='s', use_scm_version={'root': '.', 'relative_to': __file__, "
     "'tag_regex': r'^rel-(?P<version>.+)$'})",
     {"root": ".", "tag": {"regex": "^rel-(?P<version>.+)$"}}),
])
def test_use_scm_version_is_read_where_it_can_be(tmp_path: Path, setup_call: str,
                                                 source: dict[str, object]) -> None:
    (tmp_path / "setup.py").write_text(f"from setuptools import setup\n{setup_call}\n")
    (tmp_path / "setup.cfg").write_text("[options]\nsetup_requires = setuptools_scm\n")
    found = project.version_source(tmp_path, {})
    assert found.tool == "setuptools_scm"
    assert dict(found.settings) == source


def test_use_scm_version_false_is_no_version_from_git(tmp_path: Path) -> None:
    (tmp_path / "setup.py").write_text("from setuptools import setup\n"
                                       "setup(name='s', version='1.0', use_scm_version=False)\n")
    with pytest.raises(VersionError, match="would not take its version from git"):
        project.version_source(tmp_path, {})


@pytest.mark.parametrize("setting", ['from-file = { source = "VERSION" }', 'vcs = "mercurial"'])
def test_a_dunamai_version_from_elsewhere_than_git_is_refused(tmp_path: Path,
                                                              setting: str) -> None:
    """poetry-dynamic-versioning would read the version elsewhere: no silent other version."""
    (tmp_path / "pyproject.toml").write_text(
        PDV + f"[tool.poetry-dynamic-versioning]\nenable = true\n{setting}\n")
    with pytest.raises(VersionError, match=r"\[tool\.poetry-dynamic-versioning\] takes the "
                                           r"version from somewhere else than git's tags"):
        project.version_source(tmp_path, project.read_pyproject(tmp_path))


def test_hatch_vcs_settings_become_setuptools_scm_settings(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("""\
[build-system]
requires = ["hatchling", "hatch-vcs"]
build-backend = "hatchling.build"
[project]
name = "s"
dynamic = ["version"]
[tool.hatch.version]
source = "vcs"
tag-pattern = "^rel-(?P<version>.+)$"
fallback-version = "0.0.1"
raw-options = { root = "..", git_describe_command = "git describe --tags --long", \
write_to = "x.py", local_scheme = "node-and-date" }
""")
    found = project.version_source(tmp_path)
    assert found.tool == "hatch-vcs"
    assert dict(found.settings) == {
        "root": "..", "fallback_version": "0.0.1", "tag": {"regex": "^rel-(?P<version>.+)$"},
        "scm": {"git": {"describe_command": "git describe --tags --long"}}}
    assert found.tags == TagRule("^rel-(?P<version>.+)$")


# --- versions with the service's own settings, from real repositories ---------------------------


def test_a_setup_py_service_gets_setuptools_scm_defaults(tmp_path: Path) -> None:
    repo = samples.setup_py_service(tmp_path / "svc")
    repo.tag("0.10.0")
    assert version.compute(repo.path) == "0.10.0"
    repo.commit("more")
    repo.write("README.md", "a dirty tree: setuptools_scm would add a local part\n")
    assert version.compute(repo.path) == "0.10.1.dev1"


def test_a_hatch_vcs_service_with_a_tag_pattern(tmp_path: Path) -> None:
    repo = samples.hatch_service(tmp_path / "svc")
    # setuptools_scm 10's tag.prefix narrows `git describe` to the service's tags.
    text = (repo.path / "pyproject.toml").read_text().replace(
        'raw-options = { version_scheme = "guess-next-dev" }',
        'raw-options = { tag = { prefix = "release/" } }')
    repo.commit("tags named release/X", files={"pyproject.toml": text})
    repo.tag("release/3.0.0")
    repo.commit("more")
    repo.tag("9.9.9")  # not this service's tag: its prefix says so
    assert version.compute(repo.path) == "3.0.1.dev1"
    assert project.version_source(repo.path).tags.version("9.9.9") is None


def test_a_monorepo_service_counts_from_its_own_tags(tmp_path: Path) -> None:
    repo = samples.monorepo(tmp_path / "mono")
    a, b = repo.path / "services" / "a", repo.path / "services" / "b"
    repo.tag("a-1.0.0")
    repo.commit("one")
    repo.tag("b-2.0.0")  # the nearest tag from HEAD is b's
    repo.commit("two")
    assert version.compute(a) == "1.0.1.dev2"
    assert version.compute(b) == "2.0.1.dev1"
    repo.checkout("b-2.0.0")
    assert version.compute(a) == "1.0.1.dev1"
    assert version.compute(b) == "2.0.0"
    info = version.read(a)
    assert info.git.head_tags == ("b-2.0.0",)
    assert project.version_source(a).tags.version("b-2.0.0") is None
    assert str(project.version_source(b).tags.version("b-2.0.0")) == "2.0.0"


@pytest.mark.parametrize(("sample", "settings", "tag"), [
    (samples.pdm_scm_service, 'tag_filter = "svc-*"\ntag_regex = "^svc-(?P<version>.+)$"\n',
     "svc-1.5.0"),
    (samples.poetry_dynamic_versioning_service, 'pattern-prefix = "svc-"\n', "svc-v1.5.0"),
    (samples.poetry_core_service, '[tool.setuptools_scm]\nroot = "../.."\n'
                                  'tag = { prefix = "svc-" }\n', "svc-1.5.0"),
    (samples.flit_service, '[tool.setuptools_scm]\nroot = "../.."\ntag = { prefix = "svc-" }\n',
     "svc-1.5.0"),
])
def test_a_monorepo_service_of_another_backend_counts_from_its_own_tags(
        tmp_path: Path, sample: object, settings: str, tag: str) -> None:
    """pdm-backend (``tag_filter``) and dunamai (``pattern-prefix``) find the repository from the
    service's subdirectory where they read the service's own tags only, as they do; a static
    version takes [tool.setuptools_scm]'s ``root`` and tag prefix. Another service's nearer tag
    is not taken; without such settings there is no version (not another service's)."""
    assert callable(sample)
    text = (sample(tmp_path / "alone").path / "pyproject.toml").read_text()
    table = next(t for t in ("[tool.pdm.version]\n", "[tool.poetry-dynamic-versioning]\n")
                 if t in text) if "setuptools_scm" not in settings else None
    configured = text.replace(table, table + settings) if table else f"{text}\n{settings}"
    repo = GitRepo(tmp_path / "mono").init()
    repo.write("services/svc/pyproject.toml", text)
    repo.commit("a service in a subdirectory")
    repo.tag(tag)
    repo.commit("after the release")
    repo.tag(tag.replace("svc-", "other-").replace("1.5.0", "9.0.0"))  # another service's
    service = repo.path / "services" / "svc"
    with pytest.raises(VersionError, match="is not the repository's root: in a monorepo"):
        version.compute(service, "svc", source=project.version_source(service, stamp=True))
    repo.commit("the service's own tags", files={"services/svc/pyproject.toml": configured})
    source = project.version_source(service, stamp=True)
    assert version.compute(service, "svc", source=source) == "1.5.1.dev2"
    assert source.tags.version(tag.replace("svc-", "other-")) is None


def test_the_build_produces_the_computed_version(tmp_path: Path) -> None:
    # hatch-vcs reads only SETUPTOOLS_SCM_PRETEND_VERSION, a setup.py's use_scm_version the one
    # for its name: the files have the version the plan publishes, for each.
    for make, tag in ((samples.hatch_service, "v1.0.0"), (samples.setup_py_service, "1.0.0")):
        repo = make(tmp_path / make.__name__)
        repo.tag(tag)
        repo.commit("more")
        cfg = project.configuration(repo.path)
        computed = version.compute(repo.path, cfg.name)
        assert computed == "1.0.1.dev1"
        files = dist.build(cfg, computed)
        assert [dist.file_version(p)[1].public for p in files] == [computed, computed]


# --- tags ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("regex", "tag", "expected"), [
    (project.DEFAULT_TAG_REGEX, "1.2.3", "1.2.3"),
    (project.DEFAULT_TAG_REGEX, "v1.2.3", "1.2.3"),
    (project.DEFAULT_TAG_REGEX, "svc-1.2.3rc1", "1.2.3rc1"),
    (project.DEFAULT_TAG_REGEX, "main", None),
    (r"^svc-(?P<version>[vV]?\d+(?:\.\d+){0,2}[^\+]*)$", "svc-2.0.0", "2.0.0"),
    (r"^svc-(?P<version>[vV]?\d+(?:\.\d+){0,2}[^\+]*)$", "svc-v2.0.0", "2.0.0"),
    (r"^svc-(?P<version>[vV]?\d+(?:\.\d+){0,2}[^\+]*)$", "other-2.0.0", None),
    (r"^svc-(?P<version>[vV]?\d+(?:\.\d+){0,2}[^\+]*)$", "2.0.0", None),
    (r"^rel/(.+)$", "rel/1.0", "1.0"),
])
def test_tag_rule(regex: str, tag: str, expected: str | None) -> None:
    found = TagRule(regex).version(tag)
    assert (None if found is None else str(found)) == expected


@pytest.mark.parametrize("regex", [r"^svc-(\d+)-(\d+)$", r"^svc-\d+$"])
def test_a_tag_regex_must_say_which_part_is_the_version(regex: str) -> None:
    """As setuptools_scm: one group, or a group named ``version``; else a tag would end in a
    traceback when it is read."""
    with pytest.raises(ConfigError, match="neither one group nor a group named 'version'"):
        TagRule(regex)


def test_a_bad_tag_regex_is_named_where_the_service_sets_it(tmp_path: Path) -> None:
    data = {"build-system": {"requires": ["pdm-backend"], "build-backend": "pdm.backend"},
            "project": {"name": "svc", "dynamic": ["version"]},
            "tool": {"pdm": {"version": {"source": "scm", "tag_regex": "^v(["}}}}
    with pytest.raises(ConfigError, match=r"not a regular expression .*\(\[tool\.pdm\.version\]\)"):
        project.version_source(tmp_path, data)


@pytest.mark.parametrize(("tag", "problem"), [
    ("1.2.4+build5", "has a local part"),
    ("v1.2.4+build.5", "has a local part"),
    ("1!2.0.0", "has an epoch"),
    ("1.2.3-final", "is not a version"),
])
def test_tags_that_cannot_be_released(tag: str, problem: str) -> None:
    with pytest.raises(VersionError, match=re.escape(f"tag {tag!r} {problem}")) as info:
        TagRule().version(tag)
    assert "\n" not in str(info.value)
    assert "tag again" in str(info.value)


# --- twine check ---------------------------------------------------------------------------------


def test_twine_check_levels(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    repo = samples.readme_less_service(tmp_path / "svc")
    repo.tag("1.0.0")
    cfg = project.configuration(repo.path)
    assert cfg.check == "errors"
    files = dist.build(cfg, "1.0.0")  # with warnings, which PyPI accepts
    assert "`long_description` missing" in capfd.readouterr().err
    strict = (repo.path / "pyproject.toml").read_text().replace(
        'image = "brewblox/bare-svc"\n', 'image = "brewblox/bare-svc"\ncheck = "strict"\n')
    (repo.path / "pyproject.toml").write_text(strict)
    cfg = project.configuration(repo.path)
    with pytest.raises(BuildError, match=r"twine check --strict exited with 1"):
        dist.check(cfg, files)
    assert not any(path.exists() for path in files)


def test_twine_check_fails_on_what_an_index_refuses(tmp_path: Path) -> None:
    repo = samples.setup_py_service(tmp_path / "svc", name="broken-readme")
    repo.commit("a README that does not render", files={
        "README.md": "broken-readme\n=============\n\n.. no-such-directive::\n"})
    repo.tag("1.0.0")
    cfg = project.configuration(repo.path)
    with pytest.raises(BuildError, match=r"twine check exited with 1.*an index would refuse"):
        dist.build(cfg, "1.0.0")
    # The refused files are gone: nothing can copy them into an image or upload them.
    assert dist.own_files(cfg.root / cfg.dist_dir, cfg.name) == []


def test_a_cache_that_cannot_hold_the_build_environment_is_one_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A file where the cache directory should be: the error names the variable to set.
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    monkeypatch.setenv("BREWBLOX_RELEASE_CACHE", str(blocked))
    repo = samples.setup_cfg_service(tmp_path / "svc", name="fresh-env-svc")
    with pytest.raises(BuildError, match=r"cannot hold the build environment .* set "
                                         "BREWBLOX_RELEASE_CACHE to a directory") as info:
        project.configuration(repo.path)
    assert "\n" not in str(info.value)


def test_tag_rule_with_a_prefix() -> None:
    # vcs-versioning's tag.prefix: stripped before the regex, and required.
    rule = project.VersionSource("setuptools_scm", "[tool.setuptools_scm]",
                                 {"tag": {"prefix": "svc-"}}).tags
    assert str(rule.version("svc-v1.2.0")) == "1.2.0"
    assert rule.version("other-1.2.0") is None
    assert rule.version("1.2.0") is None
    assert not rule.is_default
    with pytest.raises(VersionError, match=re.escape("tag 'svc-1.2.0+x' has a local part")):
        rule.version("svc-1.2.0+x")


def test_setuptools_scm_overrides_from_the_environment_are_honoured(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_service(tmp_path / "svc")
    repo.tag("1.2.3")
    repo.commit("more")
    assert version.compute(repo.path, "demo-svc") == "1.2.4.dev1"
    monkeypatch.setenv("SETUPTOOLS_SCM_OVERRIDES_FOR_DEMO_SVC",
                       '{version_scheme = "no-guess-dev"}')
    assert version.compute(repo.path, "demo-svc") == "1.2.3.post1.dev1"
