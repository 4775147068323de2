"""`init` (docs/adopting.md): what it adds to a service, that it keeps what is there, and that the
service it leaves releases (rehearsed on loopback) with no further edit."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from brewblox_release import _config as config
from brewblox_release._errors import ConfigError
from brewblox_release._init import (
    APPENDED_LINE,
    CI_PATHS,
    NOXFILE_LINE,
    Change,
    detect_provider,
    ignored_entries,
    init,
    render,
)
from brewblox_release._project import version_source
from tests.service import BASE_REPO, TEMPLATE, GitRepo, nox

#: A service as people write them: comments everywhere, a table of another tool after ours.
COMMENTED = """\
# demo-svc: a sample service. Every comment here must survive init.
[build-system]
requires = ["setuptools>=64", "setuptools-scm>=8"]  # the version comes from git
build-backend = "setuptools.build_meta"

[project]
name = "demo-svc"    # the distribution's name
description = "A sample service"
requires-python = ">=3.10"
dependencies = []
dynamic = ["version"]

[tool.setuptools]
packages = ["demo_svc"]  # one package

# Versions from tags; the defaults suit us.
[tool.setuptools_scm]

[tool.ruff]
line-length = 100   # the house style
"""

#: The rig has no multi-platform Python image (nothing can be pulled here): one per platform.
RIG_BASE_IMAGES = {"amd64": f"{BASE_REPO}:bookworm-amd64", "arm": f"{BASE_REPO}:bookworm-armv7"}


def fresh_service(path: Path, *, remote: str | None = "https://github.com/BrewBlox/Demo-Svc.git",
                  branch: str = "develop") -> GitRepo:
    """A service that has never heard of brewblox-release: no table, noxfile or Dockerfile."""
    repo = GitRepo(path).init(branch)
    repo.write("pyproject.toml", COMMENTED)
    repo.write("README.md", "# demo-svc\n")
    repo.write("demo_svc/__init__.py", '"""A sample service."""\n')
    repo.write(".gitignore", "__pycache__/\n*.egg-info/\n")
    if remote:
        repo.git("remote", "add", "origin", remote)
    repo.commit("initial commit")
    return repo


def _actions(changes: list[Change]) -> dict[str, str]:
    return {c.path: c.action for c in changes}


def _snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts[:1]}


# --- what init writes --------------------------------------------------------------------------


def test_a_flat_layout_service_of_setuptools_still_builds(tmp_path: Path) -> None:
    """setuptools' automatic discovery would take docker/ for a second top-level package and
    refuse to build: init names the service's own package instead, and the wheel holds what it
    held before (docs/adopting.md). Where the package cannot be told, init says what to set."""
    from brewblox_release import _dist as dist

    repo = fresh_service(tmp_path / "svc")
    flat = COMMENTED.replace('[tool.setuptools]\npackages = ["demo_svc"]  # one package\n', "")
    repo.write("pyproject.toml", flat)
    repo.write("tests/__init__.py", "")  # discovery leaves tests/ out, and so must init
    repo.commit("automatic discovery")
    changes = init(repo.path)
    assert "and [tool.setuptools] packages" in changes[0].detail
    assert config.load(repo.path).image == "brewblox/demo-svc"
    files = dist.build(config.load(repo.path), "1.0.0", twine=False)
    wheel = next(p for p in files if p.name.endswith(".whl"))
    with zipfile.ZipFile(wheel) as zf:
        tops = {name.split("/")[0] for name in zf.namelist()}
    assert tops == {"demo_svc", "demo_svc-1.0.0.dist-info"}
    other = fresh_service(tmp_path / "other")
    other.write("pyproject.toml", flat.replace('name = "demo-svc"', 'name = "other-name"'))
    other.commit("a package named otherwise")
    before = _snapshot(other.path)
    with pytest.raises(ConfigError, match=r"automatic discovery would take docker/ for a package"
                                          r" of the service and refuse to build: name the "
                                          r"service's packages in \[tool.setuptools\] packages"):
        init(other.path)
    assert _snapshot(other.path) == before
    other.write("setup.cfg", "[options]\npackages = find:\n")  # told there: not init's to tell
    assert "[tool.setuptools] packages" not in init(other.path)[0].detail



def test_init_adds_everything_and_keeps_the_comments(tmp_path: Path) -> None:
    repo = fresh_service(tmp_path / "svc")
    changes = init(repo.path)
    assert _actions(changes) == {
        "pyproject.toml": "updated",
        "noxfile.py": "created",
        "docker/Dockerfile": "created",
        "rpi-docker/Dockerfile": "created",
        ".gitignore": "updated",
        ".github/workflows/release.yml": "created",
    }
    text = (repo.path / "pyproject.toml").read_text()
    assert text.startswith(COMMENTED)  # every line, comment and blank line as it was
    assert text.removeprefix(COMMENTED) == (
        "\n[tool.brewblox-release]\n"
        'image = "brewblox/demo-svc"  # the image repository (BREWBLOX_RELEASE_IMAGE overrides '
        "it)\n")
    assert config.load(repo.path).image == "brewblox/demo-svc"
    assert (repo.path / "noxfile.py").read_text() == NOXFILE_LINE + "\n"
    assert (repo.path / "docker" / "Dockerfile").read_bytes() == TEMPLATE.read_bytes()
    assert (repo.path / "rpi-docker" / "Dockerfile").read_bytes() == TEMPLATE.read_bytes()
    assert (repo.path / ".gitignore").read_text() == (
        "__pycache__/\n*.egg-info/\n\n# brewblox-release: built files\n"
        "dist/\ndocker/pkg/\nrpi-docker/pkg/\n.nox/\n")
    shown = render(changes)
    assert "created    .github/workflows/release.yml" in shown
    assert "updated    .gitignore: dist/, docker/pkg/, rpi-docker/pkg/, .nox/" in shown


def test_a_second_init_changes_nothing(tmp_path: Path) -> None:
    repo = fresh_service(tmp_path / "svc")
    init(repo.path, ci="gitlab", base_images=RIG_BASE_IMAGES)
    before = _snapshot(repo.path)
    changes = init(repo.path, ci="gitlab", base_images=RIG_BASE_IMAGES)
    assert {c.action for c in changes} == {"unchanged"}
    assert _snapshot(repo.path) == before
    assert "next:" not in render(changes)


def test_existing_files_are_not_overwritten_without_force(tmp_path: Path) -> None:
    repo = fresh_service(tmp_path / "svc")
    own = "FROM python:3.11-slim\nCOPY pkg/ /pkg/\nRUN pip3 install /pkg/*.whl\n"
    repo.write("docker/Dockerfile", own)
    repo.write(".gitlab-ci.yml", "# our own pipeline\n")
    repo.write("pyproject.toml", COMMENTED + '\n[tool.brewblox-release]\nimage = "org/other"\n')
    changes = init(repo.path, ci="gitlab", image="brewblox/demo-svc")
    skipped = "skipped (exists; --force to overwrite)"
    assert _actions(changes)["docker/Dockerfile"] == skipped
    assert _actions(changes)[".gitlab-ci.yml"] == skipped
    assert _actions(changes)["pyproject.toml"] == skipped
    assert _actions(changes)["rpi-docker/Dockerfile"] == "created"
    assert (repo.path / "docker" / "Dockerfile").read_text() == own
    assert (repo.path / ".gitlab-ci.yml").read_text() == "# our own pipeline\n"
    assert config.load(repo.path).image == "org/other"
    assert "run init again with --force" in render(changes)

    forced = init(repo.path, ci="gitlab", image="brewblox/demo-svc", force=True)
    assert _actions(forced)["docker/Dockerfile"] == "updated"
    assert _actions(forced)["pyproject.toml"] == "updated"
    assert (repo.path / "docker" / "Dockerfile").read_bytes() == TEMPLATE.read_bytes()
    assert (repo.path / ".gitlab-ci.yml").read_text().startswith("# Releases this service")
    assert config.load(repo.path).image == "brewblox/demo-svc"
    assert (repo.path / "pyproject.toml").read_text().startswith(COMMENTED)


def test_the_services_own_image_is_kept_unless_one_is_given(tmp_path: Path) -> None:
    repo = fresh_service(tmp_path / "svc")
    repo.write("pyproject.toml", COMMENTED + '\n[tool.brewblox-release]\nimage = "org/other"\n')
    # The image derived from the remote is a default, not a reason to replace theirs.
    assert _actions(init(repo.path, force=True))["pyproject.toml"] == "unchanged"
    assert config.load(repo.path).image == "org/other"


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    repo = fresh_service(tmp_path / "svc")
    before = _snapshot(repo.path)
    changes = init(repo.path, ci="travis", dry_run=True)
    assert _actions(changes)[".travis.yml"] == "created"
    assert _snapshot(repo.path) == before
    assert "would create .travis.yml" in render(changes, dry_run=True)


def test_an_existing_noxfile_gets_the_line_once(tmp_path: Path) -> None:
    repo = fresh_service(tmp_path / "svc")
    repo.write("noxfile.py", "import nox\n\n@nox.session\ndef lint(session):\n    pass")
    assert _actions(init(repo.path))["noxfile.py"] == "updated"
    text = (repo.path / "noxfile.py").read_text()
    assert text == f"import nox\n\n@nox.session\ndef lint(session):\n    pass\n\n{APPENDED_LINE}\n"
    assert _actions(init(repo.path))["noxfile.py"] == "unchanged"
    assert (repo.path / "noxfile.py").read_text() == text


#: A service's noxfile with a ``dist`` session of its own, a docstring and a __future__ import.
OWN_NOXFILE = """\
\"\"\"The service's sessions.\"\"\"

from __future__ import annotations

import nox


@nox.session(venv_backend="none")
def dist(session: nox.Session) -> None:
    \"\"\"The service's own dist.\"\"\"
"""


@pytest.mark.process
def test_a_session_of_the_services_own_stays_its_own(tmp_path: Path) -> None:
    """The import goes after the service's code, so its own ``dist`` session, registered
    first, stays its own, and the library's is not registered beside it (nox warns of a name
    registered twice, and says it will refuse one)."""
    repo = fresh_service(tmp_path / "svc")
    repo.write("noxfile.py", OWN_NOXFILE)
    init(repo.path)
    assert (repo.path / "noxfile.py").read_text() == f"{OWN_NOXFILE}\n{APPENDED_LINE}\n"
    listed = subprocess.run([sys.executable, "-m", "nox", "-l"], cwd=repo.path, text=True,
                            capture_output=True, check=True)
    assert "dist -> The service's own dist." in listed.stdout
    assert "release -> Preflight, dist, distcopy" in listed.stdout  # and the library's others
    assert "already been registered" not in listed.stderr, listed.stderr


def test_per_platform_base_images_make_explicit_targets(tmp_path: Path) -> None:
    repo = fresh_service(tmp_path / "svc")
    init(repo.path, base_images=RIG_BASE_IMAGES)
    cfg = config.load(repo.path)
    assert [(t.name, t.context, t.platform, t.prefix) for t in cfg.targets] == [
        ("amd64", "docker", "linux/amd64", ""), ("arm", "rpi-docker", "linux/arm/v7", "rpi-")]
    assert cfg.target("arm").build_args == {"BASE_IMAGE": RIG_BASE_IMAGES["arm"]}
    assert cfg.build_args == {"BUILD_BASE_IMAGE": RIG_BASE_IMAGES["amd64"]}


def test_one_base_image_for_both_targets_is_one_build_arg(tmp_path: Path) -> None:
    repo = fresh_service(tmp_path / "svc")
    init(repo.path, base_images={"amd64": "python:3.12-slim", "arm": "python:3.12-slim"})
    cfg = config.load(repo.path)
    assert cfg.build_args == {"BASE_IMAGE": "python:3.12-slim"}
    assert [t.name for t in cfg.targets] == ["amd64", "arm"]


def test_a_setup_py_service_gets_a_pyproject(tmp_path: Path) -> None:
    root = tmp_path / "legacy"
    root.mkdir()
    (root / "setup.py").write_text("from setuptools import setup\nsetup(name='legacy')\n")
    changes = init(root, ci="github", image="brewblox/legacy")
    assert _actions(changes)["pyproject.toml"] == "created"
    assert (root / "pyproject.toml").read_text().startswith(
        '[tool.brewblox-release]\nimage = "brewblox/legacy"')


# --- the provider and the image from the remote ------------------------------------------------

@pytest.mark.parametrize(("url", "provider"), [
    ("https://github.com/BrewBlox/brewblox-devcon-spark.git", "github"),
    ("git@github.com:BrewBlox/brewblox-devcon-spark.git", "github"),
    ("ssh://git@github.example.com:2222/org/svc.git", "github"),
    ("https://gitlab.com/group/sub/svc.git", "gitlab"),
    ("git@gitlab.example.org:group/svc.git", "gitlab"),
    ("https://org@dev.azure.com/org/project/_git/svc", "azure"),
    ("git@ssh.dev.azure.com:v3/org/project/svc", "azure"),
    ("git@ssh.dev.azure.com:v3", "azure"),  # no repository in it: still Azure's host
    ("https://org.visualstudio.com/project/_git/svc", "azure"),
    ("https://bitbucket.org/org/svc.git", None),
    ("/srv/git/svc.git", None),
    ("../svc", None),
])
def test_provider_from_the_remote(url: str, provider: str | None) -> None:
    assert detect_provider(url) == provider


@pytest.mark.parametrize(("url", "image"), [
    ("git@github.com:BrewBlox/brewblox-devcon-spark.git", "brewblox/brewblox-devcon-spark"),
    ("https://gitlab.com/Group/Sub/My_Svc.git", "group/sub/my_svc"),
    ("https://org@dev.azure.com/Org/Project/_git/Svc", "org/svc"),
    ("git@ssh.dev.azure.com:v3/org/project/svc", "org/svc"),
])
def test_image_from_the_remote(tmp_path: Path, url: str, image: str) -> None:
    repo = fresh_service(tmp_path / "svc", remote=url)
    init(repo.path, ci="github")
    assert config.load(repo.path).image == image


def test_without_a_remote_the_image_is_the_project_name(tmp_path: Path) -> None:
    repo = fresh_service(tmp_path / "svc", remote=None)
    init(repo.path, ci="github")
    assert config.load(repo.path).image == "demo-svc"


@pytest.mark.parametrize(("setup", "kwargs", "message"), [
    ("remote:https://bitbucket.org/org/svc.git", {},
     "cannot tell the CI provider from the origin remote 'https://bitbucket.org/org/svc.git': "
     "give --ci github|gitlab|travis|azure"),
    ("remote:", {}, "cannot tell the CI provider from no origin remote: give --ci "
     "github|gitlab|travis|azure"),
    ("remote:", {"ci": "jenkins"},
     "--ci 'jenkins': unknown CI provider; choose one of github, gitlab, travis, azure"),
    ("toml:[project\nname = 1", {"ci": "github"}, "pyproject.toml: not valid TOML"),
    ("no-pyproject", {"ci": "github"}, "no pyproject.toml, setup.py or setup.cfg"),
    ("remote:", {"ci": "github", "image": "Org/Svc:latest"},
     "image = 'Org/Svc:latest' has a tag"),
    ("remote:", {"ci": "github", "base_images": {"arm64": "x"}},
     "base image for target 'arm64': init writes the default targets, amd64 and arm"),
    ("toml:tool = 1\n[project]\nname = 'x'\n", {"ci": "github"}, "[tool] must be a table"),
])
def test_bad_input_is_one_clear_error(tmp_path: Path, setup: str, kwargs: dict[str, object],
                                      message: str) -> None:
    kind, _, value = setup.partition(":")
    repo = fresh_service(tmp_path / "svc", remote=(value or None) if kind == "remote" else None)
    if kind == "toml":
        repo.write("pyproject.toml", value)
    if kind == "no-pyproject":
        (repo.path / "pyproject.toml").unlink()
    before = _snapshot(repo.path)
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        init(repo.path, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)
    assert _snapshot(repo.path) == before  # an error writes nothing


@pytest.mark.parametrize(("lines", "entry", "ignored"), [
    (["dist"], "dist/", True),
    (["/dist/"], "dist/", True),
    (["pkg/"], "docker/pkg/", True),
    (["/docker/pkg"], "docker/pkg/", True),
    (["docker/"], "docker/pkg/", False),  # the context itself must stay tracked
    (["rpi-docker/pkg/"], "docker/pkg/", False),
    (["# dist/"], "dist/", False),
    (["!dist/"], "dist/", False),
    (["*.nox"], ".nox/", False),  # wildcards are not interpreted: the entry is added
])
def test_gitignore_spellings(lines: list[str], entry: str, ignored: bool) -> None:
    assert ignored_entries(lines, entry) is ignored


def test_every_provider_has_a_definition(tmp_path: Path) -> None:
    repo = fresh_service(tmp_path / "svc")
    for provider, path in CI_PATHS.items():
        assert _actions(init(repo.path, ci=provider))[path] == "created"
        assert "nox -s release" in (repo.path / path).read_text()


# --- and the service releases --------------------------------------------------------------------

@pytest.mark.engine
@pytest.mark.e2e
def test_a_fresh_service_releases_after_init(tmp_path: Path, engine: None) -> None:
    repo = fresh_service(tmp_path / "svc")
    repo.tag("0.1.0")
    repo.commit("a change after the release", files={"CHANGES.md": "- a change\n"})
    # The rig's base images are the only edit a service on this machine needs, and init
    # takes them; elsewhere the template's python:3.11-slim-bookworm serves both platforms.
    print(render(init(repo.path, base_images=RIG_BASE_IMAGES)))
    repo.commit("adopt brewblox-release")  # what a user does next: commit what init wrote
    result = nox(repo, "-s", "release", "--", "--rehearse")
    assert result.returncode == 0, result.stdout
    assert "rehearsal: registry at 127.0.0.1:" in result.stdout
    assert "demo_svc-0.1.1.dev2-py3-none-any.whl" in result.stdout
    assert re.search(r"/brewblox/demo-svc:develop holds demo-svc 0\.1\.1\.dev2 +ok", result.stdout)
    assert re.search(r"/brewblox/demo-svc:rpi-develop holds demo-svc 0\.1\.1\.dev2 +ok",
                     result.stdout)


def test_tool_tables_split_by_another_table(tmp_path: Path) -> None:
    # BrewBlox's services: [tool.poetry] first, [build-system], then [tool.pytest.ini_options].
    text = ('[tool.poetry]\nname = "brewblox-svc"  # keep me\nversion = "1.0.0"\n\n'
            '[build-system]\nrequires = ["poetry-core"]\n'
            'build-backend = "poetry.core.masonry.api"\n\n'
            '[tool.pytest.ini_options]\nasyncio_mode = "auto"\n')
    (tmp_path / "pyproject.toml").write_text(text)
    changes = init(tmp_path, ci="github")
    assert changes[0].path == "pyproject.toml"
    written = (tmp_path / "pyproject.toml").read_text()
    assert '# keep me' in written
    assert 'asyncio_mode = "auto"' in written
    assert config.load(tmp_path).image == "brewblox-svc"  # the name from [tool.poetry]
    assert init(tmp_path, ci="github")[0].path == "pyproject.toml"
    assert (tmp_path / "pyproject.toml").read_text() == written, "a second init changes nothing"


# --- before the service has a noxfile: the front-ends the README shows first ----------------------

@pytest.mark.process
@pytest.mark.parametrize("front", [["brewblox-release"],
                                   [sys.executable, "-m", "brewblox_release"]],
                         ids=["brewblox-release", "python -m brewblox_release"])
def test_init_through_the_command_line_before_there_is_a_noxfile(tmp_path: Path,
                                                                  front: list[str]) -> None:
    repo = fresh_service(tmp_path / "svc")
    assert not (repo.path / "noxfile.py").exists()
    done = subprocess.run([*front, "init", "--ci", "github"], cwd=repo.path, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "noxfile.py" in done.stdout
    assert ".github/workflows/release.yml" in done.stdout
    assert (repo.path / "noxfile.py").read_text() == NOXFILE_LINE + "\n"
    # and the sessions are there for the next command the README shows
    listed = nox(repo, "-l", secrets=False)
    assert listed.returncode == 0, listed.stdout
    assert all(f"* {name}" in listed.stdout or f"- {name}" in listed.stdout
               for name in ("version", "release", "init")), listed.stdout


def test_a_static_version_gets_stamp_version(tmp_path: Path) -> None:
    """A service that writes its version by hand (poetry-core, as BrewBlox's since 2020)
    releases after init with no further edit: init sets stamp-version, which it needs."""
    repo = fresh_service(tmp_path / "svc")
    repo.write("pyproject.toml", '[build-system]\nrequires = ["poetry-core>=1.0"]\n'
               'build-backend = "poetry.core.masonry.api"\n\n[tool.poetry]\nname = "demo-svc"\n'
               'version = "0.1.0"\ndescription = "A sample service"\nauthors = ["BrewBlox"]\n')
    repo.commit("a poetry service")
    init(repo.path)
    cfg = config.load(repo.path)
    assert cfg.stamp_version
    assert version_source(repo.path, stamp=cfg.stamp_version).static == "tool.poetry"
    fresh = fresh_service(tmp_path / "scm")  # a version from git: nothing to stamp
    init(fresh.path)
    assert not config.load(fresh.path).stamp_version


def test_windows_line_ends_are_kept(tmp_path: Path) -> None:
    repo = fresh_service(tmp_path / "svc")
    for name in ("pyproject.toml", ".gitignore"):
        path = repo.path / name
        path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    repo.write("noxfile.py", "import nox\r\n")
    assert {c.path: c.action for c in init(repo.path)}["pyproject.toml"] == "updated"
    for name in ("pyproject.toml", ".gitignore", "noxfile.py"):
        data = (repo.path / name).read_bytes()
        assert data.count(b"\n") == data.count(b"\r\n") > 1, name
    assert config.load(repo.path).image == "brewblox/demo-svc"


def test_a_monorepo_service_gets_no_ci_definition_of_its_own(tmp_path: Path) -> None:
    """A CI provider reads the repository's root only: a definition in services/a never runs."""
    repo = GitRepo(tmp_path / "mono").init()
    repo.write("services/a/pyproject.toml", COMMENTED)
    repo.commit("a service in a subdirectory")
    service = repo.path / "services" / "a"
    changes = init(service, ci="github", image="org/a")
    assert _actions(changes)[CI_PATHS["github"]].startswith("skipped (a monorepo's service")
    assert "runs `nox -s release` in services/a" in render(changes)
    assert not (service / ".github").exists()
    assert not (repo.path / ".github").exists()
    assert (service / "docker" / "Dockerfile").is_file()


def test_each_monorepo_service_gets_an_image_of_its_own(tmp_path: Path) -> None:
    """Not the repository's ``owner/name`` for every service, whose tags and ``latest`` they
    would share: the owner's image of the service's name."""
    repo = GitRepo(tmp_path / "mono").init()
    repo.git("remote", "add", "origin", "https://github.com/org/mono.git")
    for name in ("a", "b"):
        repo.write(f"services/{name}/pyproject.toml",
                   COMMENTED.replace('name = "demo-svc"', f'name = "svc-{name}"'))
    repo.commit("two services")
    for name in ("a", "b"):
        init(repo.path / "services" / name, ci="github")
        assert config.load(repo.path / "services" / name).image == f"org/svc-{name}"


def test_a_file_that_cannot_be_written_leaves_the_service_as_it_was(tmp_path: Path) -> None:
    repo = fresh_service(tmp_path / "svc")
    (repo.path / ".github").write_text("a file where the workflows' directory goes\n")
    before = _snapshot(repo.path)
    with pytest.raises(OSError, match=r"\.github"):
        init(repo.path, ci="github")
    assert _snapshot(repo.path) == before
    assert not (repo.path / "docker").exists()


def test_dockerfiles_go_to_the_contexts_of_the_services_targets(tmp_path: Path) -> None:
    repo = fresh_service(tmp_path / "svc")
    repo.write("Dockerfile", "FROM scratch\n")
    (repo.path / "pyproject.toml").write_text(COMMENTED + """
[tool.brewblox-release]
image = "brewblox/demo-svc"

[[tool.brewblox-release.targets]]
name = "amd64"
context = "."
platform = "linux/amd64"

[[tool.brewblox-release.targets]]
name = "arm64"
context = "images/arm64"
platform = "linux/arm64"
""")
    actions = _actions(init(repo.path, ci="github"))
    assert "Dockerfile" not in actions, "the root's is the service's own, built from dist/"
    assert actions["images/arm64/Dockerfile"] == "created"
    assert not (repo.path / "docker").exists()
    assert not (repo.path / "rpi-docker").exists()
    ignored = (repo.path / ".gitignore").read_text().splitlines()
    assert "images/arm64/pkg/" in ignored
    assert "pkg/" not in ignored, "a bare pkg/ would ignore every directory named so"
