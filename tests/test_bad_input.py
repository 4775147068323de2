"""Bad input, as new users give it: each case exits non-zero with one line that
names the problem and what to do, shows no traceback, and changes nothing outside the build
outputs. Canary directories beside and inside the service must survive every case.

Every case runs the command line (``python -m brewblox_release``) as a subprocess in a fresh copy
of one sample service; a few run through nox too, which shows the same line.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.service import SECRET_VALUES, SENTINELS, GitRepo, clean_env, leaked_secrets, make_service

pytestmark = pytest.mark.process  # the command line, through nox and python -m

#: What a run may write: the build outputs (dist-dir, each context's pkg/) and caches.
OUTPUTS = ("dist", "docker/pkg", "rpi-docker/pkg", ".nox", "__pycache__")


@dataclass(frozen=True)
class Case:
    """One bad input: how to spoil the service, the command, and what the error must say."""

    id: str
    args: tuple[str, ...]
    says: tuple[str, ...]
    table: str = ""  # more lines of [tool.brewblox-release]
    env: dict[str, str] = field(default_factory=dict)
    setup: Callable[[Path], None] | None = None
    targets: str = ""  # [[tool.brewblox-release.targets]] tables, replacing the default ones
    secrets: tuple[str, ...] = ()  # more values no output may show


#: A token written as a URL's user name (the form Gemfury documents), and a password.
TOKEN = "tok-SENTINEL-Vq8z"
USERINFO_PW = "pw-SENTINEL-Hy3c"


def _dist_a_file(root: Path) -> None:
    (root / "dist").write_text("a file where the dist dir should be\n")


def _pyproject_a_directory(root: Path) -> None:
    (root / "pyproject.toml").unlink()
    (root / "pyproject.toml").mkdir()


def _cache_a_file(root: Path) -> None:
    (root / "canary-inside" / "cache").write_text("a file, not a directory\n")


def _pkg_a_file(root: Path) -> None:
    _build_dist(root)
    (root / "docker" / "pkg").write_text("a file where pkg/ should be\n")


def _git_dir_elsewhere(root: Path) -> None:
    other = GitRepo(root.parent / "other").init()
    other.commit("another repository", files={"x": "x\n"})
    other.tag("7.7.7")


#: A PATH with git and no docker (a machine without the docker CLI), this test process's own.
NO_DOCKER = Path(tempfile.gettempdir()) / f"brewblox-release-tests-no-docker-{os.getpid()}"


def _no_docker(root: Path) -> None:
    NO_DOCKER.mkdir(exist_ok=True)
    (NO_DOCKER / "git").unlink(missing_ok=True)
    (NO_DOCKER / "git").symlink_to(str(shutil.which("git")))


def _link_outside(root: Path) -> None:
    (root / "out").symlink_to(root.parent / "canary-beside")


def _empty_context(root: Path) -> None:
    (root / "nodockerfile").mkdir()


def _tracked_src(root: Path) -> None:
    GitRepo(root).commit("sources", files={"src/keep.py": "x = 1\n"})


def _dirty(root: Path) -> None:
    (root / "README.md").write_text("changed\n")


def _no_git(root: Path) -> None:
    shutil.rmtree(root / ".git")


def _pkg_symlink(root: Path) -> None:
    (root / "docker" / "pkg").symlink_to(root.parent / "canary-beside")


def _build_dist(root: Path) -> Path:
    """A dist dir holding files of the distribution (as if `dist` had run)."""
    (root / "dist").mkdir(exist_ok=True)
    for name in ("demo_svc-1.2.4.dev1-py3-none-any.whl", "demo_svc-1.2.4.dev1.tar.gz"):
        (root / "dist" / name).write_bytes(b"not really")
    return root


def _bad_tag_regex(root: Path) -> None:
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        "[tool.setuptools_scm]\n", '[tool.setuptools_scm]\ntag_regex = "^svc-(?P<version>["\n'))
    GitRepo(root).commit("a broken tag_regex")


def _groupless_tag_regex(root: Path) -> None:
    pyproject = root / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(
        "[tool.setuptools_scm]\n", "[tool.setuptools_scm]\ntag_regex = '^svc-(\\d+)-(\\d+)$'\n"))
    GitRepo(root).commit("a tag_regex that names no version")


def _a_file(root: Path) -> None:
    (root / "records").write_text("not a directory\n")


def _dist_only(root: Path) -> None:
    for context in ("docker", "rpi-docker"):
        shutil.rmtree(root / context, ignore_errors=True)


def _target(name: str = "amd64", context: str = "docker", platform: str = "linux/amd64",
            prefix: str = "", extra: str = "") -> str:
    return (f'[[tool.brewblox-release.targets]]\nname = "{name}"\ncontext = "{context}"\n'
            f'platform = "{platform}"\nprefix = "{prefix}"\n{extra}\n')


PUBLISH = ("--ref", "refs/heads/feature/x")
DOCKER = {"DOCKER_USERNAME": SENTINELS["DOCKER_USERNAME"],
          "DOCKER_PASSWORD": SENTINELS["DOCKER_PASSWORD"]}

CASES = [
    # dist-dir: confined to the service, never the service itself, never its sources
    Case("dist-dir is the root", ("dist",), ("dist-dir = '.'", "inside the service"),
         table='dist-dir = "."'),
    Case("dist-dir empty", ("dist",), ("dist-dir = ''", "inside the service"),
         table='dist-dir = ""'),
    Case("dist-dir holds sources", ("dist",), ("dist-dir = 'src'", "git tracks"),
         table='dist-dir = "src"', setup=_tracked_src),
    Case("dist-dir is the package", ("dist",), ("dist-dir = 'demo_svc'", "git tracks"),
         table='dist-dir = "demo_svc"'),
    Case("dist-dir absolute", ("dist",), ("dist-dir = '/tmp'", "inside the service"),
         table='dist-dir = "/tmp"'),
    Case("dist-dir above", ("distcopy",), ("dist-dir = '../canary-beside'", "not a directory "
         "inside the service"), table='dist-dir = "../canary-beside"'),
    Case("dist-dir symlink out", ("dist",), ("dist-dir = 'out'", "not a directory inside"),
         table='dist-dir = "out"', setup=_link_outside),
    Case("dist-dir is .git", ("dist",), ("dist-dir = '.git'",), table='dist-dir = ".git"'),
    Case("dist-dir in .git", ("dist",), ("dist-dir = '.git/x'",), table='dist-dir = ".git/x"'),
    Case("dist-dir not a string", ("dist",), ("dist-dir must be a string",),
         table="dist-dir = 5"),
    # contexts: inside the service, existing, with a Dockerfile
    # The root may be a context (a root Dockerfile that builds from dist/), with a Dockerfile;
    # a path that resolves to the root otherwise is not.
    Case("context is the root without a Dockerfile", ("version",),
         ("context = '.'", "Dockerfile does not exist"), targets=_target(context=".")),
    Case("context resolves to the root", ("version",), ("context = 'docker/..'",
                                                        "inside the service"),
         targets=_target(context="docker/..")),
    Case("context above", ("distcopy",), ("context = '../canary-beside'", "inside the service"),
         targets=_target(context="../canary-beside")),
    Case("context absolute", ("version",), ("context = '/tmp'", "inside the service"),
         targets=_target(context="/tmp")),
    Case("context missing", ("version",), ("context = 'nope'", "Dockerfile does not exist"),
         targets=_target(context="nope")),
    Case("context without Dockerfile", ("version",), ("nodockerfile/Dockerfile does not exist",),
         targets=_target(context="nodockerfile"), setup=_empty_context),
    Case("context is dist-dir", ("version",), ("overlaps dist-dir",),
         targets=_target(context="dist")),
    Case("default contexts missing", ("release", "--dry-run"), ("docker/Dockerfile does not "
         "exist", "nox -s init"), setup=_dist_only),
    Case("pkg is a symlink", ("distcopy",), ("docker/pkg is not a directory of the service",),
         setup=lambda root: _pkg_symlink(_build_dist(root))),
    # image: the reference grammar, from the file and from the environment
    Case("image upper case", ("version",), ("image = 'Acme/SVC'", "lower case"),
         table='image = "Acme/SVC"'),
    Case("image with tag", ("version",), ("image = 'acme/svc:1.0'", "has a tag"),
         table='image = "acme/svc:1.0"'),
    Case("image with scheme", ("version",), ("has a scheme",),
         table='image = "https://ghcr.io/acme/svc"'),
    Case("image with space", ("version",), ("image = 'acme/my svc'", "not a valid image"),
         table='image = "acme/my svc"'),
    Case("image empty", ("version",), ("image = ''",), table='image = ""'),
    Case("image with digest", ("version",), ("has a digest",),
         table='image = "acme/svc@sha256:' + "0" * 64 + '"'),
    Case("image double slash", ("version",), ("not a valid image",), table='image = "a//b"'),
    Case("image from env", ("version",), ("BREWBLOX_RELEASE_IMAGE = 'Bad/Image'",),
         env={"BREWBLOX_RELEASE_IMAGE": "Bad/Image"}),
    # keys, types, targets
    Case("unknown key", ("version",), ("unknown key 'dist_dir'", "known keys"),
         table='dist_dir = "out"'),
    Case("unknown target key", ("version",), ("unknown key 'platforms'",),
         targets=_target(extra='platforms = ["linux/amd64"]')),
    Case("prefix branch-", ("version",), ("clash", "branch-"),
         targets=_target() + _target("arm", "rpi-docker", "linux/arm/v7", "branch-")),
    Case("prefix b", ("version",), ("prefix 'b'", "clash"),
         targets=_target() + _target("arm", "rpi-docker", "linux/arm/v7", "b")),
    Case("prefixes equal", ("version",), ("prefixes must differ",),
         targets=_target() + _target("arm", "rpi-docker", "linux/arm/v7", "")),
    Case("names equal", ("version",), ("names must be unique",),
         targets=_target() + _target("amd64", "rpi-docker", "linux/arm/v7", "rpi-")),
    Case("prefix upper case", ("version",), ("prefix 'RPI-'", "invalid image tags"),
         targets=_target(prefix="RPI-")),
    Case("quiet-branches a string", ("version",), ("quiet-branches must be a list of strings",),
         table='quiet-branches = "main"'),
    Case("build-args VERSION", ("version",), ("build-args sets VERSION",),
         table='build-args = { VERSION = "1" }'),
    Case("check unknown", ("version",), ("check must be one of",), table='check = "loose"'),
    Case("pypi a string", ("version",), ("pypi must be true or false",), table='pypi = "yes"'),
    Case("targets empty", ("version",), ("targets must be a non-empty list",),
         table="targets = []"),
    Case("target without platform", ("version",), ("platform is required",),
         targets='[[tool.brewblox-release.targets]]\nname = "amd64"\ncontext = "docker"\n'),
    Case("secret-vars a string", ("version",), ("secret-vars must be a list of strings",),
         table='secret-vars = "MY_TOKEN"'),
    Case("invalid TOML", ("version",), ("not valid TOML",), table='image = "unterminated'),
    # options: one parser, never abbreviated, never ignored
    Case("misspelt option", ("release", "--dryrun"), ("unknown option '--dryrun'",)),
    Case("abbreviated option", ("release", "--pub"), ("unknown option '--pub'",)),
    Case("option of another command", ("dist", "--rehearse"),
         ("--rehearse is not an option of dist",)),
    Case("unknown option of dist", ("dist", "--bogus"), ("unknown option '--bogus'",)),
    Case("ref on distcopy", ("distcopy", "--ref", "refs/heads/x"),
         ("--ref is not an option of distcopy",)),
    Case("ref without value", ("version", "--ref"), ("expected one argument",)),
    Case("short ref", ("release", "--ref", "main"), ("give a full ref",)),
    Case("remote ref", ("release", "--ref", "refs/remotes/origin/x"), ("give a full ref",)),
    Case("docker without target", ("docker", "--dry-run"), ("--target NAME",)),
    Case("docker unknown target", ("docker", "--target", "s390x"),
         ("no target named 's390x'",)),
    Case("init unknown provider", ("init", "--ci", "bitbucket"), ("invalid choice",)),
    # refs and tags
    Case("tag with local part", ("release", "--dry-run", "--ref", "refs/tags/1.2.4+build5"),
         ("1.2.4+build5", "local")),
    Case("tag with epoch", ("release", "--dry-run", "--ref", "refs/tags/1!1.0"),
         ("1!1.0", "epoch")),
    Case("tag not a version", ("release", "--dry-run", "--ref", "refs/tags/1.0-final"),
         ("'1.0-final' is not a version",)),
    Case("tag elsewhere", ("release", "--dry-run", "--ref", "refs/tags/9.9.9"),
         ("does not agree",)),
    Case("tag_regex not a regex", ("version",), ("tag_regex", "not a regular expression"),
         setup=_bad_tag_regex),
    Case("tag_regex without its group", ("version",), ("tag_regex", "group named 'version'"),
         setup=_groupless_tag_regex),
    Case("stage into a file", ("docker", "--target", "amd64", "--stage", "records", *PUBLISH),
         ("--stage records: not a directory",), setup=_a_file),
    # repository state
    Case("distcopy before dist", ("distcopy",), ("run `nox -s dist` first",)),
    Case("not a git checkout", ("version",), ("git cannot read", "not a git repository"),
         setup=_no_git),
    Case("dirty tree", ("release", *PUBLISH), ("tracked files differ", "--allow-dirty"),
         setup=_dirty),
    # credentials, before anything is built
    Case("docker user without password", ("release", *PUBLISH), ("DOCKER_PASSWORD",),
         env={"DOCKER_USERNAME": "someone", "DOCKER_PASSWORD": ""}),
    Case("twine repository name", ("release", *PUBLISH), ("TWINE_REPOSITORY='private'",),
         env={"TWINE_REPOSITORY": "private", **DOCKER}),
    Case("twine URL malformed", ("release", *PUBLISH), ("TWINE_REPOSITORY_URL",),
         env={"TWINE_REPOSITORY_URL": "upload.example.org/legacy", **DOCKER}),
    Case("twine URL with password, no user", ("release", *PUBLISH), ("TWINE_",),
         env={"TWINE_REPOSITORY_URL": f"https://u:{SENTINELS['TWINE_PASSWORD']}@h.invalid/",
              "TWINE_USERNAME": "", "TWINE_PASSWORD": "", **DOCKER}),
]


CASES += [
    # OS errors: one line naming the path and what to do
    Case("dist is a file", ("dist",), ("dist", "file exists", "remove or rename it"),
         setup=_dist_a_file),
    Case("pyproject.toml is a directory", ("version",), ("pyproject.toml is a directory",),
         setup=_pyproject_a_directory),
    Case("cache names a file", ("dist",), ("cannot hold the build environment",
                                           "BREWBLOX_RELEASE_CACHE"),
         env={"BREWBLOX_RELEASE_CACHE": "canary-inside/cache"}, setup=_cache_a_file),
    Case("pkg is a file", ("distcopy",), ("docker/pkg is not a directory",),
         setup=_pkg_a_file),
    # a URL's or a reference's whole userinfo is a secret
    Case("image with user and password", ("version",), ("has a user name or password",
                                                        "DOCKER_USERNAME"),
         env={"BREWBLOX_RELEASE_IMAGE": f"someone:{USERINFO_PW}@127.0.0.1:5000/o/svc"},
         secrets=(USERINFO_PW,)),
    Case("image with a token as user", ("version",), ("has a user name or password",),
         env={"BREWBLOX_RELEASE_IMAGE": f"{TOKEN}@ghcr.io/o/svc"}, secrets=(TOKEN,)),
    Case("image URL with a token", ("version",), ("has a user name or password",),
         env={"BREWBLOX_RELEASE_IMAGE": f"https://{TOKEN}@ghcr.io/o/svc"}, secrets=(TOKEN,)),
    Case("image in pyproject with a token", ("version",), ("has a user name or password",),
         table=f'image = "https://{TOKEN}@ghcr.io/o/svc"', secrets=(TOKEN,)),
    Case("index URL with user and password, malformed", ("release", *PUBLISH),
         ("TWINE_REPOSITORY_URL",),
         env={"TWINE_REPOSITORY_URL": f"https://me:{USERINFO_PW}@host.invalid:99999/",
              **DOCKER}, secrets=(USERINFO_PW,)),
    # git, run as setuptools_scm runs it
    Case("an inherited GIT_DIR of another repository", ("release", "--dry-run", "--ref",
                                                         "refs/tags/1.2.3"),
         ("tag 1.2.3 does not agree",), setup=_git_dir_elsewhere,
         env={"GIT_DIR": "../other/.git", "GIT_WORK_TREE": "../other"}),
    Case("no docker CLI", ("docker-amd64",), ("the docker CLI is not on PATH",),
         env={"PATH": str(NO_DOCKER)}, setup=_no_docker),
    Case("a tag with a local part on HEAD", ("release", "--publish", "--dry-run"),
         ("1.2.4+build5", "local part"), setup=lambda root: GitRepo(root).tag("1.2.4+build5")),
]


def _fingerprint(top: Path) -> dict[str, str]:
    """Every file and link under ``top`` but the build outputs: path -> content hash."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(top):
        rel = Path(dirpath).relative_to(top)
        dirnames[:] = [d for d in dirnames
                       if not any((rel / d).as_posix().endswith(o) for o in OUTPUTS)
                       and not d.endswith(".egg-info")]
        for name in filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            path = Path(dirpath) / name
            if rel.name == ".git" and name == "index":
                # setuptools_scm's `git describe --dirty` refreshes the index's stat cache
                # (GIT_OPTIONAL_LOCKS does not stop it): what is staged must stay the same.
                data = subprocess.run(["git", "ls-files", "--stage"], cwd=rel.parent if
                                      rel.parent.is_absolute() else top / rel.parent,
                                      capture_output=True, check=True).stdout
                found[(rel / name).as_posix()] = hashlib.sha256(data).hexdigest()
                continue
            data = str(path.readlink()).encode() if path.is_symlink() else path.read_bytes()
            found[(rel / name).as_posix()] = hashlib.sha256(data).hexdigest()
    return found


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = make_service(tmp_path_factory.mktemp("template") / "demo-svc",
                        image="registry.invalid/org/demo-svc")
    repo.tag("1.2.3")
    repo.commit("one")
    return repo.path


def _prepare(case: Case, template: Path, top: Path) -> Path:
    (top / "canary-beside").mkdir(parents=True)
    (top / "canary-beside" / "keep.txt").write_text("beside\n")
    root = top / "demo-svc"
    shutil.copytree(template, root, symlinks=True)
    (root / "canary-inside").mkdir()
    (root / "canary-inside" / "keep.txt").write_text("inside\n")
    if case.table or case.targets:
        pyproject = root / "pyproject.toml"
        text = pyproject.read_text()
        if case.table:
            key = case.table.split("=", 1)[0].strip()
            text = "".join(line for line in text.splitlines(keepends=True)
                           if not line.startswith(f"{key} ="))
            text = text.replace("[tool.brewblox-release]\n",
                                f"[tool.brewblox-release]\n{case.table}\n")
        pyproject.write_text(text + "\n" + case.targets)
        GitRepo(root).commit("configure")
    if case.setup:
        case.setup(root)
    return root


def _run(root: Path, argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=root, env={**clean_env(), **SENTINELS, **env},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=120, check=False)


def _check(case: Case, result: subprocess.CompletedProcess[str], marker: str) -> str:
    output = result.stdout
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    errors = [line for line in output.splitlines() if marker in line]
    assert len(errors) == 1, output
    for fragment in case.says:
        assert fragment in errors[0], output
    assert not leaked_secrets(output, (*SECRET_VALUES, "sentinel-docker", *case.secrets)), \
        output
    return errors[0]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_line_and_touches_nothing(case: Case, template: Path,
                                                         tmp_path: Path) -> None:
    root = _prepare(case, template, tmp_path)
    before = _fingerprint(tmp_path)
    command = [sys.executable, "-m", "brewblox_release", *case.args]
    result = _run(root, command, case.env)
    _check(case, result, f"brewblox-release {case.args[0]}: error: ")
    after = _fingerprint(tmp_path)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not changed, f"a bad input changed files outside the outputs: {changed}"
    assert (root / "canary-inside" / "keep.txt").read_text() == "inside\n"
    assert (tmp_path / "canary-beside" / "keep.txt").read_text() == "beside\n"


NOX_CASES = ["dist-dir is the root", "dist-dir above", "misspelt option",
             "option of another command", "image with tag", "context above"]


@pytest.mark.parametrize("name", NOX_CASES)
def test_nox_shows_the_same_line(name: str, template: Path, tmp_path: Path) -> None:
    case = next(c for c in CASES if c.id == name)
    root = _prepare(case, template, tmp_path)
    before = _fingerprint(tmp_path)
    result = _run(root, [sys.executable, "-m", "nox", "-s", case.args[0], "--",
                         *case.args[1:]], case.env)
    line = _check(case, result, f"nox > Session {case.args[0]} aborted: ")
    cli = _run(root, [sys.executable, "-m", "brewblox_release", *case.args], case.env)
    assert line.split(" aborted: ", 1)[1].rstrip(".") in cli.stdout
    assert _fingerprint(tmp_path) == before


def test_there_are_at_least_fifty_cases() -> None:
    assert len({c.id for c in CASES}) == len(CASES) >= 50
