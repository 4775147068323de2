"""The build stages of the image template (docs/image.md): what the Dockerfile's RUN steps run.

Nothing here runs under emulation unless it must. The ``pkg`` and ``deps`` stages of
``templates/Dockerfile`` run on the build host's own platform (``FROM --platform=$BUILDPLATFORM``)
and call this module as a script:

``check``
    checks that the build host's Python (``BUILD_BASE_IMAGE``) is the target's, read from the
    target image's files, which the Dockerfile copies out of it (its ``_sysconfigdata``, its
    ``sysconfig.py``, glibc's ``ldd``: nothing of the image runs; copying them costs a tenth of
    a second, mounting the image whole two). A stage of its own, which the image depends on:
    the stages that install wait for none of it, and ``package`` stays the same for every
    target, built once when they build at once.
``package``
    checks that ``pkg/`` holds the wheel of this release (or none: the package is then installed
    by name from the index) and installs it with pypa/installer into a tree that the image
    copies.
``deps``
    resolves and downloads the requirements *for the target* with pip (``--platform``,
    ``--python-version``, ``--implementation``, ``--abi``, ``--only-binary=:all:``, and the
    target's ``platform_machine`` for environment markers), taking this Python for the
    target's (``check`` checks that it is: a stage that waited for the target's files would
    start a fifth of a second later, and it is the longest), and installs every wheel into a
    tree laid out as the target's Python expects it (scripts, data, headers included). A
    dependency with no wheel for the target is the only thing left for pip in the image, named
    with the version the resolution chose; the wheels are downloaded once, by this one
    resolution.
``image``
    the fallback, in the target image itself (emulated for a foreign platform): pip installs
    what ``deps`` and ``package`` could not.

The module is shipped into the build context by ``distcopy`` and the docker sessions
(``brewblox_release/_stages.py``, into ``pkg/brewblox-release/``, with the pure-Python packages
it imports: installer and packaging; with ``pkg/requirements.txt``), because the build stages
see nothing but the context and images (buildx's named contexts need a newer Dockerfile
frontend than Docker 20.10's). So it is self-contained: the standard library, ``installer`` and
``packaging``, no other module of brewblox-release. Its output is the build's log, which the
docker sessions stream and mask like all output.
"""

from __future__ import annotations

import argparse
import ast
import email.parser
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from packaging.utils import (
    InvalidWheelFilename,
    canonicalize_name,
    parse_wheel_filename,
)
from packaging.version import InvalidVersion, Version

__all__ = ["ImageBuildError", "TargetPython", "main"]

#: Where `ship` puts the module and its packages, inside ``<context>/pkg/``, and where the
#: template copies them in its build stages.
TOOLS_DIR = "brewblox-release"
IMAGE_TOOLS = "/opt/brewblox-release"
#: The packages the module imports, shipped with it (pure Python).
SHIPPED_PACKAGES = ("installer", "packaging")

#: Docker platforms and the machine name (``uname -m``, the wheel tags' arch) of each.
MACHINES = {
    "linux/amd64": "x86_64",
    "linux/386": "i686",
    "linux/arm64": "aarch64",
    "linux/arm64/v8": "aarch64",
    "linux/arm/v7": "armv7l",
    "linux/arm/v6": "armv6l",
    "linux/ppc64le": "ppc64le",
    "linux/s390x": "s390x",
    "linux/riscv64": "riscv64",
}
#: The oldest glibc that manylinux wheels of each machine name (PEP 600); 2.17 otherwise.
_MANYLINUX_FLOOR = {"x86_64": 5, "i686": 5}
#: The legacy manylinux names (PEP 513, 571, 599) and the glibc each stands for.
_LEGACY = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
_LEGACY_MACHINES = {"manylinux2014": {"x86_64", "i686", "aarch64", "armv7l", "ppc64", "ppc64le",
                                      "s390x"},
                    "manylinux2010": {"x86_64", "i686"}, "manylinux1": {"x86_64", "i686"}}

#: What the fallback stage names: created only when pip has nothing to do in the image.
NOTHING_FOR_PIP = "nothing-for-pip"
#: pip's index settings, which reach pip in the image through a file of the ``deps`` stage, not
#: as build args: an ARG a RUN of the image uses is written into the image's history, and a
#: URL's password with it.
PIP_SETTINGS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_TRUSTED_HOST")


class ImageBuildError(Exception):
    """A build stage cannot go on; the message says what to do."""


def say(text: str) -> None:
    """One line of the build's log (stderr, which buildx shows with the step)."""
    sys.stderr.write(f"brewblox-release: {text}\n")
    sys.stderr.flush()


# --- the target's Python, read from its files ----------------------------------------------------

@dataclass(frozen=True)
class TargetPython:
    """The target image's Python, as far as tags, markers and the install layout need it."""

    version: str  #: major.minor, "3.11"
    abi: str  #: "cp311"
    implementation: str  #: "cp"
    machine: str  #: "armv7l"
    glibc: tuple[int, int] | None  #: None: not a glibc system (musl): no manylinux wheels
    executable: str  #: "/usr/bin/python3", the shebang of console scripts
    sysconfig_source: bytes  #: the target's sysconfig.py, which computes its install scheme
    config_vars: Mapping[str, object]  #: its _sysconfigdata build_time_vars

    @classmethod
    def of(cls, config_vars: Mapping[str, object], machine: str,
           glibc: tuple[int, int] | None, sysconfig_source: bytes) -> TargetPython:
        """A Python from its config vars (``sysconfig.get_config_vars()``, or a
        ``_sysconfigdata``'s ``build_time_vars``) on ``machine`` with ``glibc``."""
        implementation, abi = abi_of(str(config_vars.get("SOABI", "")))
        return cls(version=str(config_vars.get("VERSION", "")), abi=abi,
                   implementation=implementation, machine=machine, glibc=glibc,
                   executable=executable_of(config_vars), sysconfig_source=sysconfig_source,
                   config_vars=config_vars)

    @property
    def platforms(self) -> list[str]:
        return platform_tags(self.machine, self.glibc)

    def pip_options(self) -> list[str]:
        """pip's options that make it choose wheels for this Python rather than the host's."""
        options = ["--only-binary=:all:", "--python-version", self.version,
                   "--implementation", self.implementation]
        for abi in dict.fromkeys((self.abi, "abi3", "none")):
            options += ["--abi", abi]
        for platform in self.platforms:
            options += ["--platform", platform]
        return options

    def markers(self, build: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment markers of the target: the build host's (the same Python, checked
        by `check_layout`, on the same kernel) with the target's machine."""
        from packaging.markers import default_environment  # not imported by `package`

        source = build if build is not None else default_environment()
        env = {str(k): str(v) for k, v in source.items()}
        env["platform_machine"] = self.machine
        return env


def machine_of(platform: str) -> str:
    """The machine name of a docker platform: ``linux/arm/v7`` -> ``armv7l``."""
    try:
        return MACHINES[platform]
    except KeyError:
        raise ImageBuildError(f"unknown target platform {platform!r}: the template knows "
                              f"{', '.join(MACHINES)}") from None


def platform_tags(machine: str, glibc: tuple[int, int] | None) -> list[str]:
    """The platform tags a target accepts, best first (PEP 600 with the legacy aliases).

    >>> platform_tags("armv7l", (2, 19))
    ['manylinux_2_19_armv7l', 'manylinux_2_18_armv7l', 'manylinux_2_17_armv7l', \
'manylinux2014_armv7l', 'linux_armv7l']
    """
    tags = []
    if glibc is not None and glibc[0] == 2:
        for minor in range(glibc[1], _MANYLINUX_FLOOR.get(machine, 17) - 1, -1):
            tags.append(f"manylinux_2_{minor}_{machine}")
            legacy = _LEGACY.get((2, minor))
            if legacy and machine in _LEGACY_MACHINES[legacy]:
                tags.append(f"{legacy}_{machine}")
    tags.append(f"linux_{machine}")
    return tags


def abi_of(soabi: str) -> tuple[str, str]:
    """(implementation, ABI tag) of a ``SOABI``: ``cpython-311-arm-linux-gnueabihf`` ->
    (``cp``, ``cp311``); ``cpython-313t-...`` -> (``cp``, ``cp313t``)."""
    match = re.fullmatch(r"cpython-(\d)(\d+)([a-z]*)(?:-.*)?", soabi)
    if match:
        return "cp", f"cp{match[1]}{match[2]}{match[3]}"
    match = re.fullmatch(r"(pypy\d+)-(pp\d+)(?:-.*)?", soabi)
    if match:
        return "pp", f"{match[1]}_{match[2]}"
    raise ImageBuildError(f"unknown Python ABI {soabi!r} in the target image")


def glibc_of(data: bytes) -> tuple[int, int] | None:
    """The glibc version that glibc's ``ldd`` script prints (``ldd (GNU libc) 2.36``), or that
    a ``libc.so.6`` carries in its banner."""
    found = (re.search(rb"ldd \([^)\n]*\) (\d+)\.(\d+)", data)
             or re.search(rb"GNU C Library[^\n]*? version (\d+)\.(\d+)", data))
    return (int(found[1]), int(found[2])) if found else None


def read_config_vars(source: str) -> dict[str, object]:
    """The ``build_time_vars`` of a ``_sysconfigdata_*.py``, read as a literal (not run)."""
    for node in ast.parse(source).body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "build_time_vars"):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                break
            if isinstance(value, dict):
                return {str(k): v for k, v in value.items()}
    raise ImageBuildError("the target's _sysconfigdata holds no build_time_vars")


def read_target(files: Path, platform: str) -> TargetPython:
    """The target image's Python from its files, which the Dockerfile copies out of the image
    into ``files`` (nothing of the image runs): its ``sysconfig.py`` and ``_sysconfigdata_*.py``,
    and glibc's ``ldd`` (none on a musl system: then no manylinux wheel is taken)."""
    machine = machine_of(platform)
    datas = sorted(files.glob("_sysconfigdata_*.py"))
    if not datas or not (files / "sysconfig.py").is_file():
        raise ImageBuildError("the target image has no Python in /usr/local/lib/python3.X or "
                              "/usr/lib/python3.X: BASE_IMAGE must be an image with Python")
    ldd = files / "ldd"
    return TargetPython.of(read_config_vars(datas[0].read_text()), machine,
                           glibc_of(ldd.read_bytes()) if ldd.is_file() else None,
                           (files / "sysconfig.py").read_bytes())


def this_glibc() -> tuple[int, int] | None:
    """The glibc of the system this Python runs on (None on musl)."""
    try:
        found = re.fullmatch(r"glibc (\d+)\.(\d+).*", os.confstr("CS_GNU_LIBC_VERSION") or "")
    except (ValueError, OSError):  # no such name: not glibc
        return None
    return (int(found[1]), int(found[2])) if found else None


def this_python(platform: str) -> TargetPython:
    """This Python (the build host's: ``BUILD_BASE_IMAGE``) as the target for ``platform``.

    The template's ``check`` stage checks that it is the target's Python (`check_target`), so
    the ``deps`` stage need not wait for the target's files: BuildKit matches a wildcard
    ``COPY --from`` path only once the image's filesystem is ready, a fifth of a second into a
    cold build, and that wait would otherwise come before the longest step of the build.
    """
    return TargetPython.of(sysconfig.get_config_vars(), machine_of(platform), this_glibc(),
                           Path(sysconfig.__file__).read_bytes())


def check_target(target: TargetPython) -> None:
    """Stop unless wheels chosen for this Python (`this_python`) are right for ``target``:
    the same Python (`check_layout`), and a C library whose manylinux tags it accepts."""
    check_layout(target)
    here = this_glibc()
    if target.glibc is None and here is None:
        return
    if target.glibc is None or here is None or here > target.glibc:
        raise ImageBuildError(
            f"BUILD_BASE_IMAGE has {_libc(here)} but BASE_IMAGE {_libc(target.glibc)}: wheels "
            "chosen for the one do not run on the other; set BUILD_BASE_IMAGE to the image of "
            "the same Python and system for the build host's platform")


#: Machines that run another's programs natively (a 64-bit arm runs 32-bit arm ones).
#: Machines of one family run each other's programs natively (a 32-bit arm Python on a 64-bit
#: kernel says ``aarch64``; qemu says the machine it emulates).
_FAMILIES = ({"x86_64", "i686"}, {"aarch64", "armv8l", "armv7l", "armv6l"})


def emulated(build_platform: str, machine: str) -> bool:
    """Whether the build stages' Python (``machine``, as uname says) runs under emulation on a
    ``build_platform`` host: where ``BUILD_BASE_IMAGE`` defaults to a ``BASE_IMAGE`` of the
    target's platform alone."""
    host = MACHINES.get(build_platform)
    return bool(host) and machine != host and not any(
        {host, machine} <= family for family in _FAMILIES)


def _libc(glibc: tuple[int, int] | None) -> str:
    return (f"glibc {glibc[0]}.{glibc[1]}" if glibc else
            "no glibc (no /usr/bin/ldd of glibc's: musl, or a glibc without its ldd)")


#: The config vars that place an install: where the Python lives and what it is.
_LAYOUT_VARS = ("VERSION", "prefix", "exec_prefix", "BINDIR", "LIBDEST", "LDVERSION")


def check_layout(target: TargetPython) -> None:
    """Stop unless this (the build host's) Python installs where the target's does.

    The tree is installed with this Python's install scheme and byte-compiled by it; that is
    right when both are the same Python for two platforms (what ``BUILD_BASE_IMAGE`` is for).
    """
    build_vars = sysconfig.get_config_vars()
    differences = [f"{name} {target.config_vars.get(name)!r} != {build_vars.get(name)!r}"
                   for name in _LAYOUT_VARS
                   if target.config_vars.get(name) != build_vars.get(name)]
    if target.sysconfig_source != Path(sysconfig.__file__).read_bytes():
        differences.append("their sysconfig.py differ (another build of Python)")
    if differences:
        raise ImageBuildError(
            "BUILD_BASE_IMAGE is not the same Python as BASE_IMAGE (target vs build host: "
            f"{'; '.join(differences)}): set BUILD_BASE_IMAGE to the image of the same Python "
            "for the build host's platform")


def executable_of(config_vars: Mapping[str, object]) -> str:
    """A Python as its image runs it (python3 in its BINDIR): the shebang of scripts."""
    return f"{config_vars.get('BINDIR') or '/usr/bin'}/python3"


# --- requirements --------------------------------------------------------------------------------

def wheel_metadata(wheel: Path) -> email.message.Message:
    """The METADATA of a wheel."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            names = [n for n in zf.namelist()
                     if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if len(names) != 1:
                raise ImageBuildError(f"{wheel.name} is not a wheel: no .dist-info/METADATA")
            return email.parser.BytesParser().parsebytes(zf.read(names[0]))
    except (zipfile.BadZipFile, OSError) as e:
        raise ImageBuildError(f"{wheel.name} is not a wheel ({e})") from e


def _extras(requirements: Iterable[str]) -> dict[str, set[str]]:
    """The extras each requirement asks of a project, by its canonical name.

    >>> found = _extras(["Sdonly[fast] >=1", "sdonly[docs]", "other"])
    >>> sorted(found["sdonly"]), found["other"]
    (['docs', 'fast'], set())
    """
    from packaging.requirements import Requirement

    found: dict[str, set[str]] = {}
    for line in requirements:
        req = Requirement(line)
        found.setdefault(canonicalize_name(req.name), set()).update(req.extras)
    return found


def applicable(requirements: Iterable[str], markers: Mapping[str, str]) -> list[str]:
    """The requirements that apply to the target (no extra asked), without their markers.

    pip evaluates markers with the environment of the Python that runs it; they are evaluated
    here with the target's, so that ``platform_machine`` is the target's machine.
    """
    from packaging.requirements import InvalidRequirement, Requirement

    result = []
    for line in requirements:
        try:
            req = Requirement(line)
        except InvalidRequirement as e:
            raise ImageBuildError(f"invalid requirement {line!r}: {e}") from e
        if req.marker is not None and not req.marker.evaluate({**markers, "extra": ""}):
            continue
        req.marker = None
        result.append(str(req))
    return result


def missing_wheel(pip_output: str) -> str | None:
    """The requirement that pip found no wheel for, from its error: the one to install in the
    image. None when pip failed for another reason."""
    from packaging.requirements import InvalidRequirement, Requirement

    match = re.search(r"No matching distribution found for (\S+)", pip_output)
    if not match:
        return None
    try:
        return canonicalize_name(Requirement(match[1]).name)
    except InvalidRequirement:
        return None


def listed_versions(pip_index_output: str) -> list[str]:
    """The versions ``pip index versions`` lists (``Available versions: 1.1, 1.0``)."""
    match = re.search(r"Available versions: (.+)", pip_index_output)
    versions = []
    for text in (match[1].split(",") if match else ()):
        try:
            versions.append(str(Version(text.strip())))
        except InvalidVersion:
            continue
    return versions


def stub_wheel(name: str, version: str, directory: Path) -> Path:
    """A stand-in wheel (no files, no requirements) of a dependency that has no wheel for the
    target, so that pip's resolution of the rest can go on, and chooses its version."""
    dist = f"{canonicalize_name(name).replace('-', '_')}-{version}"
    path = directory / f"{dist}-py3-none-any.whl"
    directory.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{dist}.dist-info/METADATA",
                    f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        zf.writestr(f"{dist}.dist-info/WHEEL",
                    "Wheel-Version: 1.0\nGenerator: brewblox-release\n"
                    "Root-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}.dist-info/RECORD", "")
    return path


# --- installing ----------------------------------------------------------------------------------

def scheme(name: str) -> dict[str, str]:
    """Where this Python's pip would install distribution ``name``: its default scheme (on
    Debian, /usr/local/lib/python3.X/dist-packages and /usr/local/bin)."""
    paths = sysconfig.get_paths()
    return {"purelib": paths["purelib"], "platlib": paths["platlib"],
            "scripts": paths["scripts"], "data": paths["data"],
            "headers": str(Path(paths["include"]) / canonicalize_name(name))}


def install_wheel(wheel: Path, root: Path, interpreter: str) -> None:
    """Install a wheel under ``root`` as pip would at ``/`` (RECORD, INSTALLER, scripts with
    the target's interpreter); `compile_tree` compiles its modules."""
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    name = parse_wheel_filename(wheel.name)[0]
    destination = SchemeDictionaryDestination(
        scheme(name), interpreter=interpreter, script_kind="posix",
        destdir=str(root), overwrite_existing=True)
    with WheelFile.open(wheel) as source:
        install(source, destination, {"INSTALLER": b"brewblox-release\n"})


def compile_tree(root: Path) -> None:
    """Byte-compile what was installed under ``root``, as pip does, with this Python (the
    target's version, checked) on all cores: done once for all wheels, it takes a third of
    the time installer's file-by-file compilation takes."""
    import compileall

    paths = sysconfig.get_paths()
    for directory in dict.fromkeys((paths["purelib"], paths["platlib"])):
        staged = root / directory.lstrip("/")
        if staged.is_dir():
            many = sum(1 for _ in zip(staged.rglob("*.py"), range(100), strict=False)) >= 100
            compileall.compile_dir(staged, ddir=directory, quiet=2,
                                   workers=(os.cpu_count() or 1) if many else 1)


def is_pure(wheel: Path) -> bool:
    """Whether a wheel runs on any platform (its tags say ``none-any``)."""
    tags = parse_wheel_filename(wheel.name)[3]
    return all(t.abi == "none" and t.platform == "any" for t in tags)


# --- the stages ----------------------------------------------------------------------------------

def requirements_of(pkg: Path, name: str = "", version: str = "") -> list[str]:
    """What the image installs from the index: the requirements of the wheel in ``pkg``, or
    ``name==version`` when it holds none (docs/image.md: the package by name)."""
    wheels = sorted(pkg.glob("*.whl"))
    if wheels:
        return list(wheel_metadata(wheels[0]).get_all("Requires-Dist") or [])
    return [f"{name}=={version}" if version else name] if name else []


def package(pkg: Path, out: Path, name: str, version: str) -> None:
    """Stage ``pkg``: the service's wheel, checked and installed into ``out/root``.

    ``pkg/requirements.txt`` (written by `ship` on the host, so that the dependencies' stage
    need not wait for this one) must be the wheel's requirements, or name ``name`` when
    ``pkg`` holds no wheel. A wheel for a platform (not pure) is left in ``out/image/`` for
    pip in the image.
    """
    root, image = out / "root", out / "image"
    root.mkdir(parents=True, exist_ok=True)
    fix = "run `nox -s dist distcopy`"
    listed = pkg / "requirements.txt"
    wanted = listed.read_text().splitlines() if listed.is_file() else None
    wheels = sorted(pkg.glob("*.whl"))
    if not wheels:
        if not name:
            raise ImageBuildError(f"pkg/ holds no wheel and PACKAGE is not set: {fix}")
        if wanted != requirements_of(pkg, name, version):
            raise ImageBuildError(f"pkg/ holds no wheel and pkg/requirements.txt does not name "
                                  f"{name}=={version}: {fix} (or write that line into it)")
        say(f"pkg/ holds no wheel: {wanted[0]} is installed from the index")
        (out / NOTHING_FOR_PIP).mkdir()
        return
    if len(wheels) > 1:
        raise ImageBuildError(f"pkg/ holds {len(wheels)} wheels, not one: {fix}")
    wheel = wheels[0]
    try:
        wheel_name, wheel_version, _, _ = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as e:
        raise ImageBuildError(f"pkg/{wheel.name} is not a wheel name ({e})") from e
    if version and wheel_version != Version(version):
        raise ImageBuildError(f"pkg/ holds {wheel.name}, not version {version}: {fix}")
    if name and wheel_name != canonicalize_name(name):
        raise ImageBuildError(f"pkg/ holds {wheel.name}, not {name}: {fix}")
    if wanted != requirements_of(pkg):
        raise ImageBuildError(f"pkg/requirements.txt is not the requirements of {wheel.name}: "
                              f"{fix}")
    if is_pure(wheel):
        install_wheel(wheel, root, executable_of(sysconfig.get_config_vars()))
        compile_tree(root)
        (out / NOTHING_FOR_PIP).mkdir()
        say(f"installed {wheel.name}")
    else:
        image.mkdir(exist_ok=True)
        shutil.copy2(wheel, image / wheel.name)
        say(f"{wheel.name} is built for a platform: pip installs it in the image")


def _pip(args: Sequence[str], *, machine: str | None = None) -> tuple[int, str]:
    """Run pip with this Python (with ``machine``, for the target's markers); its output is
    shown and returned."""
    argv = [sys.executable, str(Path(__file__).resolve()), "pip"]
    argv += ["--machine", machine] if machine else []
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_WARN_SCRIPT_LOCATION": "1",
           "PIP_BREAK_SYSTEM_PACKAGES": "1", "PIP_ROOT_USER_ACTION": "ignore"}
    env["PIP_TRUSTED_HOST"] = " ".join(trusted_hosts(env))
    proc = subprocess.run([*argv, "--", *args], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, errors="replace", check=False)
    sys.stderr.write(proc.stdout)
    return proc.returncode, proc.stdout


def trusted_hosts(env: Mapping[str, str]) -> list[str]:
    """``PIP_TRUSTED_HOST`` with the loopback hosts of plain-http indexes added.

    pip caches nothing it reads from a plain-http index unless the host is trusted, so a
    second round of `resolve` would download again; pip already takes loopback for a secure
    origin, so trusting it changes nothing else.
    """
    from urllib.parse import urlsplit

    hosts = env.get("PIP_TRUSTED_HOST", "").split()
    for url in (env.get("PIP_INDEX_URL", "") + " " + env.get("PIP_EXTRA_INDEX_URL", "")).split():
        parts = urlsplit(url)
        if parts.scheme == "http" and parts.hostname in {"127.0.0.1", "localhost", "::1"}:
            host = parts.netloc.rpartition("@")[2]
            hosts += [] if host in hosts else [host]
    return hosts


def run_pip(machine: str | None, args: Sequence[str]) -> None:
    """pip's own command line, with ``platform.machine()`` answering the target's machine.

    pip evaluates environment markers (``platform_machine == "x86_64"``) with the Python that
    runs it, even with ``--platform``; this makes them the target's.
    """
    import platform
    import runpy

    if machine:
        platform.machine = lambda: machine
    sys.argv = ["pip", *args]
    runpy.run_module("pip", run_name="__main__", alter_sys=True)


def resolve(target: TargetPython, wanted: Sequence[str], out: Path, *,
            max_rounds: int = 20) -> list[str]:
    """Download the wheels of ``wanted`` and their dependencies for the target into
    ``out/files``; returns the dependencies that have none (see `deps`)."""
    files, stubs, cache = out / "files", out / "stubs", out / "pip-cache"
    reqs = out / "wanted.txt"
    reqs.write_text("".join(f"{r}\n" for r in wanted))
    missing: list[str] = []
    for _ in range(max_rounds):
        links = ["--find-links", str(stubs)] if missing else []
        code, output = _pip(["download", "--quiet", "--progress-bar", "off", "--cache-dir",
                             str(cache), "--dest", str(files), *target.pip_options(), *links,
                             "-r", str(reqs)], machine=target.machine)
        if code == 0:
            return missing
        name = missing_wheel(output)
        if name is None or name in missing:
            raise ImageBuildError("resolving the dependencies for the target failed (pip's "
                                  "output is above): check the requirements and the index "
                                  "(PIP_INDEX_URL)")
        _, listing = _pip(["index", "versions", "--cache-dir", str(cache), name])
        versions = listed_versions(listing)
        if not versions:
            raise ImageBuildError(f"{name} is on no index (pip's output is above): check "
                                  "the requirements and PIP_INDEX_URL")
        say(f"{name} has no wheel for {target.machine} (Python {target.version}): pip "
            "installs it in the image")
        missing.append(name)
        for version in versions:
            stub_wheel(name, version, stubs)
    raise ImageBuildError(f"more than {max_rounds} dependencies have no wheel for the target")


def deps(target: TargetPython, requirements: Sequence[str], out: Path, *,
         max_rounds: int = 20) -> list[str]:
    """Stage ``deps``: the requirements resolved and downloaded for the target and installed
    into ``out/root``; what has no wheel for the target goes to ``out/image/requirements.txt``
    for pip in the image. Returns those (``name==version``).

    One pip resolution downloads every wheel. When it stops at a dependency with no wheel for
    the target, stand-in wheels of that dependency (one per version on the index) let the next
    round resolve the rest and choose its version; pip in the image installs it, and whatever
    it alone needs. pip's HTTP cache (in the stage) keeps a second round from downloading again
    what the first did, where the index lets responses be cached (PyPI does).
    """
    root, files, stubs, cache = out / "root", out / "files", out / "stubs", out / "pip-cache"
    root.mkdir(parents=True, exist_ok=True)
    wanted = applicable(requirements, target.markers())
    started = time.monotonic()
    missing = resolve(target, wanted, out, max_rounds=max_rounds) if wanted else []
    resolved = time.monotonic()
    stub_names = {p.name for p in stubs.glob("*.whl")} if missing else set()
    # The extras asked of a stand-in, by the service or by a dependency: it has none, so pip in
    # the image installs what they need.
    asked = list(wanted)
    for wheel in files.glob("*.whl") if missing else ():
        if wheel.name not in stub_names:
            requires = wheel_metadata(wheel).get_all("Requires-Dist") or []
            asked += applicable(requires, target.markers())
    extras = _extras(asked)
    in_image = []
    for wheel in sorted(files.glob("*.whl")):
        if wheel.name in stub_names:
            name, version, _, _ = parse_wheel_filename(wheel.name)
            its = ",".join(sorted(extras.get(name, ())))
            in_image.append(f"{name}[{its}]=={version}" if its else f"{name}=={version}")
        else:
            install_wheel(wheel, root, target.executable)
    installed_at = time.monotonic()
    compile_tree(root)
    say(f"resolved and downloaded in {resolved - started:.1f} s, installed in "
        f"{installed_at - resolved:.1f} s, compiled in {time.monotonic() - installed_at:.1f} s")
    for directory in (files, stubs, cache):
        shutil.rmtree(directory, ignore_errors=True)
    installed = sum(1 for _ in root.glob("**/*.dist-info"))
    if in_image:
        image = out / "image"
        image.mkdir(exist_ok=True)
        (image / "requirements.txt").write_text("".join(f"{r}\n" for r in in_image))
        settings = {k: os.environ[k] for k in PIP_SETTINGS if os.environ.get(k)}
        (image / "pip.json").write_text(json.dumps(settings))
        say(f"installed {installed} dependencies for {target.machine}; pip installs "
            f"{', '.join(in_image)} in the image (a build with IMAGE_PIP=yes)")
    else:
        (out / NOTHING_FOR_PIP).mkdir()
        say(f"installed {installed} dependencies for {target.machine}, nothing is left for "
            "pip in the image")
    return in_image


def image(deps_dir: Path, pkg_dir: Path) -> None:
    """Stage ``image-pip-yes``, in the target image: pip installs what the other stages left,
    the dependencies (with their own, which are not installed yet) then the service's wheel."""
    settings = deps_dir / "pip.json"
    if settings.is_file():  # the deps stage's index settings
        os.environ.update(json.loads(settings.read_text()))
    reqs = deps_dir / "requirements.txt"
    if reqs.is_file():
        code, _ = _pip(["install", "--quiet", "--no-cache-dir", "-r", str(reqs)])
        if code:
            raise ImageBuildError("pip failed to install the dependencies that have no wheel "
                                  "for the target (its output is above)")
    wheels = sorted(pkg_dir.glob("*.whl")) if pkg_dir.is_dir() else []
    if wheels:
        code, _ = _pip(["install", "--quiet", "--no-cache-dir", "--no-deps",
                        *map(str, wheels)])
        if code:
            raise ImageBuildError(f"pip failed to install {wheels[0].name} in the image (its "
                                  "output is above): is it built for this platform?")


# --- the command line of the build stages --------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="imagebuild.py", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("check", help="check that this Python is the target's")
    p.add_argument("target", type=Path, help="the target's files")
    p.add_argument("out", type=Path, help="made when the check passes")
    p = commands.add_parser("package", help="check and install the service's wheel")
    p.add_argument("pkg", type=Path)
    p.add_argument("out", type=Path)
    # As `check`: a Dockerfile made from an earlier template checked in this stage.
    p.add_argument("--target", type=Path, help=argparse.SUPPRESS)
    p = commands.add_parser("deps", help="install the dependencies for the target")
    p.add_argument("paths", type=Path, nargs="+", metavar="[TARGET] REQUIREMENTS OUT",
                   help="the target's files (else this Python, which `check` checks), "
                   "the requirements, the output directory")
    p = commands.add_parser("image", help="pip installs what the build host could not")
    p.add_argument("deps", type=Path)
    p.add_argument("pkg", type=Path)
    p = commands.add_parser("pip", help="pip, with the target's platform_machine")
    p.add_argument("--machine")
    p.add_argument("args", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    env = os.environ
    try:
        platform = env.get("TARGETPLATFORM", "")
        if args.command == "check":
            build, machine = env.get("BUILDPLATFORM", ""), os.uname().machine
            if emulated(build, machine):  # slow, and not what the docs promise: said
                say(f"warning: BUILD_BASE_IMAGE is an image of {machine}, which this "
                    f"{build} build host runs under emulation: set BUILD_BASE_IMAGE to the "
                    f"same Python for {build} (docs/configuration.md)")
            check_target(read_target(args.target, platform))
            args.out.mkdir(parents=True, exist_ok=True)
        elif args.command == "package":
            if args.target:
                check_target(read_target(args.target, platform))
            package(args.pkg, args.out, env.get("PACKAGE", ""), env.get("VERSION", ""))
        elif args.command == "deps":
            if len(args.paths) not in (2, 3):
                parser.error("deps takes [TARGET] REQUIREMENTS OUT")
            *files, requirements, out = args.paths
            if files:  # an earlier template copied the target's files into this stage
                target = read_target(files[0], platform)
                check_layout(target)
            else:
                target = this_python(platform)
            say(f"target: Python {target.version} ({target.abi}) on {target.machine}, glibc "
                f"{'.'.join(map(str, target.glibc)) if target.glibc else 'none'}")
            deps(target, requirements.read_text().splitlines(), out)
        elif args.command == "image":
            image(args.deps, args.pkg)
        else:
            run_pip(args.machine, args.args[1:] if args.args[:1] == ["--"] else args.args)
    except ImageBuildError as e:
        say(f"error: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
