"""Services as they are found in the field (docs/versions.md), as git repositories in tmp_path: a
setup.py of 2018, a setup.cfg, hatchling with hatch-vcs, a PEP 621 package without a README, a
monorepo of two services, and a service with a Dockerfile of the seed's kind (test support).

Each builds on the rig's base images (amd64 only unless asked: the arm image shows nothing
more about how a project declares itself, and costs a build under emulation).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.service import AMD64_TARGETS, BASE_REPO, NOXFILE, RIG_TARGETS, TEMPLATE, GitRepo

GITIGNORE = "dist/\npkg/\n.nox/\n*.egg-info/\n__pycache__/\nbuild/\n"


def _module(repo: GitRepo, name: str, where: str = "") -> None:
    module = name.replace("-", "_")
    repo.write(f"{where}{module}/__init__.py",
               "from importlib.metadata import version\n\n"
               f"__version__ = version({name!r})\n")


def _finish(repo: GitRepo, name: str) -> GitRepo:
    """What every single-service sample ends with: its module, the noxfile line, .gitignore,
    the amd64 context, and the first commit."""
    _module(repo, name)
    repo.write("noxfile.py", NOXFILE)
    repo.write(".gitignore", GITIGNORE)
    _contexts(repo.path)
    repo.commit("initial commit")
    return repo


def _contexts(path: Path, arm: bool = False) -> None:
    for context in ("docker", "rpi-docker") if arm else ("docker",):
        (path / context).mkdir(parents=True, exist_ok=True)
        shutil.copy(TEMPLATE, path / context / "Dockerfile")


def _release_table(name: str, targets: str = AMD64_TARGETS, extra: str = "") -> str:
    return f'[tool.brewblox-release]\nimage = "brewblox/{name}"\n{extra}{targets}'


def setup_py_service(path: Path, name: str = "legacy-svc") -> GitRepo:
    """BrewBlox's brewblox-service of 2018, adopted with one noxfile line: a setup.py with
    ``use_scm_version={'local_scheme': lambda v: ''}`` and ``setup_requires``, no ``[project]``
    (pyproject.toml holds only ``[tool.brewblox-release]``), a README given as
    ``long_description`` without a content type."""
    repo = GitRepo(path).init()
    module = name.replace("-", "_")
    repo.write("setup.py", f"""\
from setuptools import setup

with open('README.md') as f:
    long_description = f.read()

setup(
    name='{name}',
    use_scm_version={{'local_scheme': lambda v: ''}},
    description='A service of 2018',
    long_description=long_description,
    url='https://github.com/brewblox/{name}',
    author='BrewPi',
    license='GPLv3',
    packages=['{module}'],
    python_requires='>=3.5',
    setup_requires=['setuptools_scm'],
)
""")
    repo.write("pyproject.toml", _release_table(name))
    repo.write("README.md", f"{name}\n{'=' * len(name)}\n\nA service of 2018.\n")
    return _finish(repo, name)


def setup_cfg_service(path: Path, name: str = "cfg-svc") -> GitRepo:
    """Metadata in setup.cfg (no setup.py, no ``[project]``), setuptools_scm from
    pyproject.toml."""
    repo = GitRepo(path).init()
    repo.write("pyproject.toml", f"""\
[build-system]
requires = ["setuptools>=64", "setuptools-scm>=8"]
build-backend = "setuptools.build_meta"

[tool.setuptools_scm]

{_release_table(name)}""")
    repo.write("setup.cfg", f"""\
[metadata]
name = {name}
description = A service described in setup.cfg
long_description = file: README.md
long_description_content_type = text/markdown

[options]
packages = {name.replace("-", "_")}
python_requires = >=3.10
""")
    repo.write("README.md", f"# {name}\n\nA service described in setup.cfg.\n")
    return _finish(repo, name)


def hatch_service(path: Path, name: str = "hatch-svc") -> GitRepo:
    """hatchling with hatch-vcs, its setuptools_scm settings in ``raw-options``; its tags carry
    a ``v``."""
    repo = GitRepo(path).init()
    module = name.replace("-", "_")
    repo.write("pyproject.toml", f"""\
[build-system]
requires = ["hatchling", "hatch-vcs"]
build-backend = "hatchling.build"

[project]
name = "{name}"
description = "A service built by hatchling"
readme = "README.md"
requires-python = ">=3.10"
dynamic = ["version"]

[tool.hatch.version]
source = "vcs"
raw-options = {{ version_scheme = "guess-next-dev" }}

[tool.hatch.build.targets.wheel]
packages = ["{module}"]

{_release_table(name)}""")
    repo.write("README.md", f"# {name}\n\nA service built by hatchling.\n")
    return _finish(repo, name)


def pep621_pyproject(name: str, *, readme: bool = True, scm: str = "",
                     targets: str = AMD64_TARGETS) -> str:
    """A PEP 621 pyproject.toml on setuptools with setuptools_scm (``scm``: its settings)."""
    return f"""\
[build-system]
requires = ["setuptools>=64", "setuptools-scm>=8"]
build-backend = "setuptools.build_meta"

[project]
name = "{name}"
description = "A sample service"
{'readme = "README.md"' if readme else ""}
requires-python = ">=3.10"
dynamic = ["version"]

[tool.setuptools]
packages = ["{name.replace("-", "_")}"]

[tool.setuptools_scm]
{scm}
{_release_table(name, targets)}"""


def readme_less_service(path: Path, name: str = "bare-svc") -> GitRepo:
    """PEP 621 without a README: twine warns that ``long_description`` is missing, which
    PyPI accepts."""
    repo = GitRepo(path).init()
    repo.write("pyproject.toml", pep621_pyproject(name, readme=False))
    return _finish(repo, name)


def monorepo_scm(prefix: str) -> str:
    """A monorepo service's ``[tool.setuptools_scm]``: the repository's top two levels up, and
    only the tags that begin with ``prefix`` are its own (setuptools_scm's ``tag.prefix``, which
    also narrows ``git describe`` to them)."""
    return f'root = "../.."\ntag = {{ prefix = "{prefix}" }}\n'


def monorepo(path: Path, services: tuple[str, ...] = ("a", "b")) -> GitRepo:
    """A repository holding services under ``services/<s>`` (distribution ``svc-<s>``), each
    with its own pyproject.toml, noxfile and tags ``<s>-1.0.0``."""
    repo = GitRepo(path).init()
    repo.write(".gitignore", GITIGNORE)
    for service in services:
        name = f"svc-{service}"
        where = f"services/{service}/"
        repo.write(f"{where}pyproject.toml", pep621_pyproject(
            name, scm=monorepo_scm(f"{service}-")))
        repo.write(f"{where}README.md", f"# {name}\n\nOne service of a monorepo.\n")
        _module(repo, name, where)
        repo.write(f"{where}noxfile.py", NOXFILE)
        _contexts(path / where)
    repo.commit("initial commit")
    return repo


def seed_dockerfile(base: str, name: str) -> str:
    """A Dockerfile of the seed's kind: no ``ARG BASE_IMAGE``, ``COPY ./pkg/*``, ``pip3 install
    /pkg/* || true && pip3 install NAME``. ``base`` stands for the seed's ``python:3.x``, which
    cannot be pulled here; Debian's Python (the rig's base) is marked externally managed, which
    the official python images are not, hence the one line the seed did not need."""
    return f"""\
FROM {base}
ENV PIP_BREAK_SYSTEM_PACKAGES=1
COPY ./pkg/* /pkg/
RUN pip3 install /pkg/* || true && pip3 install {name}
CMD ["python3", "-m", "{name.replace("-", "_")}"]
"""


def seed_docker_service(path: Path, name: str = "seed-svc") -> GitRepo:
    """A PEP 621 service whose own Dockerfiles (amd64 and arm/v7) are of the seed's kind; the
    targets pass the usual build args, which these Dockerfiles do not declare."""
    repo = GitRepo(path).init()
    repo.write("pyproject.toml", pep621_pyproject(name, targets=RIG_TARGETS))
    repo.write("README.md", f"# {name}\n\nA service with its own Dockerfile.\n")
    _module(repo, name)
    repo.write("noxfile.py", NOXFILE)
    repo.write(".gitignore", GITIGNORE)
    repo.write("docker/Dockerfile", seed_dockerfile(f"{BASE_REPO}:bookworm-amd64", name))
    repo.write("rpi-docker/Dockerfile", seed_dockerfile(f"{BASE_REPO}:bookworm-armv7", name))
    repo.commit("initial commit")
    return repo


# --- the backends most of the field builds with today (docs/versions.md) -----------------------

STAMP = "stamp-version = true\n"


def _other_backend(path: Path, name: str, pyproject: str) -> GitRepo:
    repo = GitRepo(path).init()
    repo.write("pyproject.toml", pyproject)
    repo.write("README.md", f"# {name}\n\nA service built by another backend.\n")
    return _finish(repo, name)


def _poetry(name: str, version: str, description: str, backend: str) -> str:
    """A poetry pyproject.toml's build system and ``[tool.poetry]`` table."""
    requires = '"poetry-core>=1.0.0"' + (', "poetry-dynamic-versioning>=1.0.0,<2.0.0"'
                                         if "dynamic" in backend else "")
    return f"""\
[build-system]
requires = [{requires}]
build-backend = "{backend}"

[tool.poetry]
name = "{name}"
version = "{version}"
description = "{description}"
authors = ["BrewPi <development@brewpi.com>"]
readme = "README.md"
packages = [{{ include = "{name.replace("-", "_")}" }}]

[tool.poetry.dependencies]
python = ">=3.10"
"""


def poetry_core_service(path: Path, name: str = "poetry-svc") -> GitRepo:
    """poetry-core with a static ``[tool.poetry] version``, as BrewBlox's services since 2020,
    released with ``stamp-version = true``."""
    return _other_backend(path, name, _poetry(
        name, "1.0.0", "A service built by poetry-core", "poetry.core.masonry.api") +
        f"\n{_release_table(name, extra=STAMP)}")


def poetry_dynamic_versioning_service(path: Path, name: str = "pdv-svc") -> GitRepo:
    """poetry with poetry-dynamic-versioning (its backend, dunamai's default ``v`` tags)."""
    return _other_backend(path, name, _poetry(
        name, "0.0.0", "A service versioned by poetry-dynamic-versioning",
        "poetry_dynamic_versioning.backend") +
        f"\n[tool.poetry-dynamic-versioning]\nenable = true\n\n{_release_table(name)}")


def pdm_scm_service(path: Path, name: str = "pdm-svc") -> GitRepo:
    """pdm-backend with ``[tool.pdm.version] source = "scm"``."""
    return _other_backend(path, name, f"""\
[build-system]
requires = ["pdm-backend"]
build-backend = "pdm.backend"

[project]
name = "{name}"
description = "A service versioned by pdm-backend's scm source"
readme = "README.md"
requires-python = ">=3.10"
dynamic = ["version"]

[tool.pdm.version]
source = "scm"

{_release_table(name)}""")


def flit_service(path: Path, name: str = "flit-svc") -> GitRepo:
    """flit with a static ``[project] version``, released with ``stamp-version = true``."""
    return _other_backend(path, name, f"""\
[build-system]
requires = ["flit_core>=3.4,<4"]
build-backend = "flit_core.buildapi"

[project]
name = "{name}"
version = "1.0.0"
description = "A service built by flit"
readme = "README.md"
requires-python = ">=3.10"

{_release_table(name, extra=STAMP)}""")


def uv_dynamic_versioning_service(path: Path, name: str = "uvdv-svc") -> GitRepo:
    """hatchling with uv-dynamic-versioning (dunamai's default ``v`` tags)."""
    return _other_backend(path, name, f"""\
[build-system]
requires = ["hatchling", "uv-dynamic-versioning"]
build-backend = "hatchling.build"

[project]
name = "{name}"
description = "A service versioned by uv-dynamic-versioning"
readme = "README.md"
requires-python = ">=3.10"
dynamic = ["version"]

[tool.hatch.version]
source = "uv-dynamic-versioning"

[tool.hatch.build.targets.wheel]
packages = ["{name.replace("-", "_")}"]

{_release_table(name)}""")


#: BrewBlox's images since 2020: one tag per branch over three platforms, no ``rpi-`` names.
BREWBLOX_TARGETS = "".join(f"""
[[tool.brewblox-release.targets]]
name = "{name}"
context = "."
platform = "{platform}"
build-args = {{ BASE_IMAGE = "{BASE_REPO}:bookworm-{name}" }}
""" for name, platform in (("amd64", "linux/amd64"), ("armv7", "linux/arm/v7"),
                           ("arm64", "linux/arm64")))


def brewblox_2024_dockerfile(name: str) -> str:
    """A root Dockerfile of BrewBlox's 2024 kind: it builds from ``dist/``, not ``pkg/``. (Theirs
    builds wheels of the sdist and its requirements with an index; here the image gets the wheel
    and no index, which a container cannot reach.)"""
    return f"""\
ARG BASE_IMAGE
FROM ${{BASE_IMAGE}} AS base
ENV PIP_FIND_LINKS=/wheeley
COPY ./dist /app/dist
RUN set -ex && mkdir /wheeley \\
    && pip3 wheel --no-index --no-deps --wheel-dir=/wheeley /app/dist/*.whl

FROM ${{BASE_IMAGE}}
ENV PIP_BREAK_SYSTEM_PACKAGES=1
COPY --from=base /wheeley /wheeley
RUN pip3 install --no-index --no-deps /wheeley/* && rm -rf /wheeley
ENTRYPOINT ["python3", "-m", "{name.replace("-", "_")}"]
"""


def brewblox_2024_service(path: Path, name: str = "brewblox-svc") -> GitRepo:
    """A BrewBlox service as it is in 2024: poetry-core with a static version, not on PyPI
    (``pypi = false``), a root Dockerfile that builds from ``dist/``, and three platforms under
    one tag (``multi-arch = true``, every target's prefix ``""``, context ``.``)."""
    repo = GitRepo(path).init()
    repo.write("pyproject.toml", _poetry(name, "1.0.0", "A BrewBlox service of 2024",
                                         "poetry.core.masonry.api") + f"""
[tool.brewblox-release]
image = "brewblox/{name}"
stamp-version = true
pypi = false
multi-arch = true
{BREWBLOX_TARGETS}""")
    repo.write("README.md", f"# {name}\n\nA BrewBlox service of 2024.\n")
    repo.write("Dockerfile", brewblox_2024_dockerfile(name))
    _module(repo, name)
    repo.write("noxfile.py", NOXFILE)
    repo.write(".gitignore", GITIGNORE)
    repo.commit("initial commit")
    return repo
