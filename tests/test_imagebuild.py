"""The template's build stages (brewblox_release/templates/stages/imagebuild.py), on the
host: tags, markers, the target's Python read from its files, installing, shipping into pkg/,
and one resolution for arm/v7 against a real pypiserver with a compiled dependency and one that
has only an sdist.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import sysconfig
import time
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

import imagebuild
import pytest
from imagebuild import ImageBuildError, TargetPython
from packaging.markers import default_environment

from brewblox_release import _stages as stages
from brewblox_release._docker import needs_image_pip
from tests import wheels
from tests.service import TEMPLATE

ARMV7_LDD = b"""#! /bin/bash
  --vers | --versi | --versio | --version)
    echo 'ldd (Debian GLIBC 2.36-9+deb12u14) 2.36'
"""


# --- tags ----------------------------------------------------------------------------------------

@pytest.mark.parametrize(("platform", "machine"), [
    ("linux/amd64", "x86_64"), ("linux/arm/v7", "armv7l"), ("linux/arm64", "aarch64"),
    ("linux/arm/v6", "armv6l"), ("linux/386", "i686")])
def test_machine_of_a_docker_platform(platform: str, machine: str) -> None:
    assert imagebuild.machine_of(platform) == machine


def test_an_unknown_platform_is_refused() -> None:
    with pytest.raises(ImageBuildError, match="unknown target platform 'linux/mips'"):
        imagebuild.machine_of("linux/mips")


@pytest.mark.parametrize(("machine", "glibc", "first", "last_manylinux", "absent"), [
    ("armv7l", (2, 36), "manylinux_2_36_armv7l", "manylinux2014_armv7l", "manylinux1_armv7l"),
    ("aarch64", (2, 31), "manylinux_2_31_aarch64", "manylinux2014_aarch64",
     "manylinux_2_16_aarch64"),
    ("x86_64", (2, 28), "manylinux_2_28_x86_64", "manylinux1_x86_64", "manylinux_2_29_x86_64"),
])
def test_platform_tags_from_the_targets_glibc_down(machine: str, glibc: tuple[int, int],
                                                    first: str, last_manylinux: str,
                                                    absent: str) -> None:
    tags = imagebuild.platform_tags(machine, glibc)
    assert tags[0] == first
    assert tags[-2:] == [last_manylinux, f"linux_{machine}"]
    assert absent not in tags


def test_legacy_aliases_sit_beside_their_glibc() -> None:
    tags = imagebuild.platform_tags("x86_64", (2, 17))
    assert tags.index("manylinux2014_x86_64") == tags.index("manylinux_2_17_x86_64") + 1
    assert tags.index("manylinux2010_x86_64") == tags.index("manylinux_2_12_x86_64") + 1
    assert "manylinux2010_armv7l" not in imagebuild.platform_tags("armv7l", (2, 17))


def test_no_glibc_means_no_manylinux_wheel() -> None:
    assert imagebuild.platform_tags("armv7l", None) == ["linux_armv7l"]


@pytest.mark.parametrize(("soabi", "expected"), [
    ("cpython-311-arm-linux-gnueabihf", ("cp", "cp311")),
    ("cpython-39-x86_64-linux-gnu", ("cp", "cp39")),
    ("cpython-313t-aarch64-linux-gnu", ("cp", "cp313t")),
    ("cpython-37m-x86_64-linux-gnu", ("cp", "cp37m")),
    ("pypy39-pp73-x86_64-linux-gnu", ("pp", "pypy39_pp73")),
])
def test_abi_of_soabi(soabi: str, expected: tuple[str, str]) -> None:
    assert imagebuild.abi_of(soabi) == expected


def test_an_unknown_abi_is_refused() -> None:
    with pytest.raises(ImageBuildError, match="unknown Python ABI"):
        imagebuild.abi_of("graalpy-x86_64")


@pytest.mark.parametrize(("data", "expected"), [
    (ARMV7_LDD, (2, 36)),
    (b"echo 'ldd (GNU libc) 2.31'", (2, 31)),
    (b"\x00GNU C Library (Ubuntu GLIBC 2.35-0ubuntu3) stable release version 2.35.\n", (2, 35)),
    (b"#!/bin/sh\nexec /lib/ld-musl-armhf.so.1 --list", None),
])
def test_glibc_of_ldd_or_libc(data: bytes, expected: tuple[int, int] | None) -> None:
    assert imagebuild.glibc_of(data) == expected


# --- the target's Python -------------------------------------------------------------------------

def _target_files(directory: Path, *, version: str = "3.11", soabi: str | None = None,
                  bindir: str = "/usr/bin", ldd: bytes | None = ARMV7_LDD) -> Path:
    soabi = soabi or f"cpython-{version.replace('.', '')}-arm-linux-gnueabihf"
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "_sysconfigdata__arm-linux-gnueabihf.py").write_text(
        "# system configuration generated and used by the sysconfig module\n"
        f"build_time_vars = {{'VERSION': {version!r}, 'SOABI': {soabi!r}, "
        f"'BINDIR': {bindir!r}, 'MULTIARCH': 'arm-linux-gnueabihf', "
        f"'prefix': '/usr', 'ABIFLAGS': ''}}\n")
    (directory / "sysconfig.py").write_text("# the target's sysconfig\n")
    if ldd is not None:
        (directory / "ldd").write_bytes(ldd)
    return directory


def test_read_target_from_its_files(tmp_path: Path) -> None:
    target = imagebuild.read_target(_target_files(tmp_path), "linux/arm/v7")
    assert (target.version, target.abi, target.implementation) == ("3.11", "cp311", "cp")
    assert (target.machine, target.glibc) == ("armv7l", (2, 36))
    assert target.executable == "/usr/bin/python3"
    assert target.platforms[0] == "manylinux_2_36_armv7l"


def test_read_target_of_an_official_python_image_without_ldd(tmp_path: Path) -> None:
    files = _target_files(tmp_path, version="3.12", bindir="/usr/local/bin", ldd=None)
    target = imagebuild.read_target(files, "linux/arm64")
    assert (target.version, target.abi, target.machine) == ("3.12", "cp312", "aarch64")
    assert target.glibc is None
    assert target.executable == "/usr/local/bin/python3"


def test_an_image_without_python_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageBuildError, match="BASE_IMAGE must be an image with Python"):
        imagebuild.read_target(tmp_path, "linux/arm/v7")


def test_sysconfigdata_is_read_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    source = (f"import pathlib; pathlib.Path({str(marker)!r}).touch()\n"
              "build_time_vars = {'VERSION': '3.11'}\n")
    assert imagebuild.read_config_vars(source) == {"VERSION": "3.11"}
    assert not marker.exists()
    with pytest.raises(ImageBuildError, match="no build_time_vars"):
        imagebuild.read_config_vars("build_time_vars = dict(VERSION='3.11')\n")


def test_pip_options_choose_the_targets_wheels(tmp_path: Path) -> None:
    options = imagebuild.read_target(_target_files(tmp_path), "linux/arm/v7").pip_options()
    assert options[:5] == ["--only-binary=:all:", "--python-version", "3.11",
                           "--implementation", "cp"]
    abis = [options[i + 1] for i, o in enumerate(options) if o == "--abi"]
    assert abis == ["cp311", "abi3", "none"]
    platforms = [options[i + 1] for i, o in enumerate(options) if o == "--platform"]
    assert platforms[0] == "manylinux_2_36_armv7l"
    assert platforms[-1] == "linux_armv7l"


def _host_target(machine: str = "armv7l") -> TargetPython:
    """This Python, as if it were the target for ``machine`` (what BUILD_BASE_IMAGE is)."""
    return TargetPython(
        version=sysconfig.get_python_version(), abi="cp" + sysconfig.get_python_version()
        .replace(".", ""), implementation="cp", machine=machine, glibc=(2, 36),
        executable=f"{sysconfig.get_config_var('BINDIR')}/python3",
        sysconfig_source=Path(sysconfig.__file__).read_bytes(),
        config_vars=sysconfig.get_config_vars())


def test_the_same_python_for_two_platforms_passes_the_layout_check() -> None:
    imagebuild.check_layout(_host_target())


def test_another_python_fails_the_layout_check_and_says_what_to_set() -> None:
    target = _host_target()
    other = TargetPython(**{**target.__dict__, "config_vars": {
        **target.config_vars, "VERSION": "3.9", "prefix": "/opt/python"}})
    with pytest.raises(ImageBuildError, match="set BUILD_BASE_IMAGE") as raised:
        imagebuild.check_layout(other)
    assert "VERSION '3.9'" in str(raised.value)
    assert "prefix '/opt/python'" in str(raised.value)


def test_this_python_as_the_target_of_a_platform() -> None:
    target = imagebuild.this_python("linux/arm/v7")
    version = sysconfig.get_python_version()
    assert (target.version, target.abi, target.machine) == (
        version, "cp" + version.replace(".", ""), "armv7l")
    assert target.glibc == imagebuild.this_glibc()
    assert target.platforms[-1] == "linux_armv7l"
    imagebuild.check_layout(target)


@pytest.mark.parametrize(("target_glibc", "ok"), [
    ("same", True),  # the same system for two platforms
    ("newer", True),  # wheels for this glibc run on a newer one
    ("older", False),
    (None, False),  # musl, or a system without glibc's ldd
])
def test_check_target_compares_the_c_libraries(target_glibc: str | None, ok: bool) -> None:
    here = imagebuild.this_glibc()
    assert here is not None, "the tests run on a glibc system"
    glibc = {"same": here, "newer": (here[0], here[1] + 1), "older": (here[0], here[1] - 1),
             None: None}[target_glibc]
    target = TargetPython(**{**_host_target().__dict__, "glibc": glibc})
    if ok:
        imagebuild.check_target(target)
    else:
        with pytest.raises(ImageBuildError, match="set BUILD_BASE_IMAGE") as raised:
            imagebuild.check_target(target)
        assert f"glibc {here[0]}.{here[1]}" in str(raised.value)


@pytest.mark.parametrize(("build_platform", "machine", "emulated"), [
    ("linux/amd64", "x86_64", False),
    ("linux/arm/v7", "aarch64", False),  # 32-bit Raspberry Pi OS on its 64-bit kernel
    ("linux/arm64", "armv8l", False),  # a 32-bit personality on arm64
    ("linux/arm/v6", "armv7l", False),
    ("", "armv7l", False),  # an earlier template: no BUILDPLATFORM
    ("linux/amd64", "armv7l", True),  # BUILD_BASE_IMAGE an arm image alone: under qemu
    ("linux/amd64", "aarch64", True),
    ("linux/arm64", "x86_64", True),
])
def test_a_build_python_run_under_emulation_is_told_apart(build_platform: str, machine: str,
                                                          emulated: bool) -> None:
    assert imagebuild.emulated(build_platform, machine) is emulated


def test_a_dockerfile_of_an_earlier_template_is_refused_where_it_would_publish_credentials(
        tmp_path: Path) -> None:
    """Its image-pip-yes stage declares PIP_* args, which a RUN of the image writes into the
    image's history: refused where one holds a URL's credentials, however the file spells its
    keywords; the current template never is."""
    from brewblox_release._docker import _refuse_recorded_credentials
    from brewblox_release._errors import BuildError

    old = TEMPLATE.read_text().replace(
        "FROM with-deps AS image-pip-yes\n",
        "from with-deps as image-pip-yes  \narg PIP_TRUSTED_HOST\n  ARG PIP_INDEX_URL\n")
    (tmp_path / "Dockerfile").write_text(old)
    secret = {"PIP_INDEX_URL": "https://ci:tok-123@pypi.example/simple/"}
    with pytest.raises(BuildError, match="earlier template whose image-pip-yes stage writes the "
                                         "build arg PIP_INDEX_URL"):
        _refuse_recorded_credentials(tmp_path, secret)
    _refuse_recorded_credentials(tmp_path, {"PIP_INDEX_URL": "https://pypi.example/simple/"})
    (tmp_path / "Dockerfile").write_text(TEMPLATE.read_text())
    _refuse_recorded_credentials(tmp_path, secret)


def test_check_passes_this_python_and_refuses_another(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
        ) -> None:
    monkeypatch.setenv("TARGETPLATFORM", "linux/arm/v7")
    other = _target_files(tmp_path / "other", version="3.9")
    assert imagebuild.main(["check", str(other), str(tmp_path / "no")]) == 1
    assert "VERSION '3.9'" in capsys.readouterr().err
    assert not (tmp_path / "no").exists(), "the stage's output is made only when it passes"
    this = tmp_path / "this"
    this.mkdir()
    data = sysconfig.get_config_vars()
    (this / "_sysconfigdata__this.py").write_text(f"build_time_vars = {data!r}\n")
    (this / "sysconfig.py").write_bytes(Path(sysconfig.__file__).read_bytes())
    here = imagebuild.this_glibc()
    assert here is not None
    (this / "ldd").write_text(f"echo 'ldd (GNU libc) {here[0]}.{here[1]}'\n")
    assert imagebuild.main(["check", str(this), str(tmp_path / "ok")]) == 0
    assert (tmp_path / "ok").is_dir()


def test_deps_takes_the_targets_files_of_an_earlier_template_or_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[TargetPython] = []
    monkeypatch.setattr(imagebuild, "deps", lambda target, wanted, out: calls.append(target))
    monkeypatch.setenv("TARGETPLATFORM", "linux/arm/v7")
    reqs = tmp_path / "requirements.txt"
    reqs.write_text("")
    assert imagebuild.main(["deps", str(reqs), str(tmp_path / "out")]) == 0
    assert calls[-1] == imagebuild.this_python("linux/arm/v7")
    files = _target_files(tmp_path / "target", version="3.9")
    assert imagebuild.main(["deps", str(files), str(reqs), str(tmp_path / "out")]) == 1
    assert len(calls) == 1, "another Python's files are refused before resolving"


# --- requirements --------------------------------------------------------------------------------

@pytest.mark.parametrize(("requirement", "machine", "expected"), [
    ("multidict>=4.5", "armv7l", "multidict>=4.5"),
    ('greenlet>=1; platform_machine == "x86_64"', "armv7l", None),
    ('greenlet>=1; platform_machine == "x86_64"', "x86_64", "greenlet>=1"),
    ('rpi-gpio; platform_machine == "armv7l"', "armv7l", "rpi-gpio"),
    ('async-timeout<6; python_version < "3.11"', "armv7l", None),
    ('aiodns>=3; extra == "speedups"', "armv7l", None),
    ('pywin32; sys_platform == "win32"', "x86_64", None),
    ("yarl[idna]>=1.0", "armv7l", "yarl[idna]>=1.0"),
])
def test_markers_are_evaluated_for_the_target(requirement: str, machine: str,
                                              expected: str | None) -> None:
    markers = _host_target(machine).markers({
        **{k: str(v) for k, v in default_environment().items()},
        "python_version": "3.11", "python_full_version": "3.11.2", "sys_platform": "linux",
        "platform_system": "Linux"})
    assert imagebuild.applicable([requirement], markers) == ([expected] if expected else [])


def test_an_invalid_requirement_is_named() -> None:
    with pytest.raises(ImageBuildError, match="invalid requirement 'not a requirement!'"):
        imagebuild.applicable(["not a requirement!"], {})


@pytest.mark.parametrize(("output", "expected"), [
    ("ERROR: Could not find a version that satisfies the requirement nowheel-dep>=1 (from "
     "versions: none)\nERROR: No matching distribution found for nowheel-dep>=1\n",
     "nowheel-dep"),
    ("ERROR: No matching distribution found for Some_Pkg==1.0\n", "some-pkg"),
    ("ERROR: Cannot install a and b because these package versions have conflicting "
     "dependencies.\n", None),
])
def test_the_dependency_without_a_wheel_is_read_from_pips_error(output: str,
                                                                 expected: str | None) -> None:
    assert imagebuild.missing_wheel(output) == expected


def test_versions_listed_by_pip_index() -> None:
    output = ("WARNING: pip index is currently an experimental command.\n"
              "nowheel-dep (1.1)\nAvailable versions: 1.1, 1.0, 0.9b1\n")
    assert imagebuild.listed_versions(output) == ["1.1", "1.0", "0.9b1"]
    assert imagebuild.listed_versions("ERROR: No matching distribution found") == []


def test_a_stub_wheel_is_a_wheel_of_that_name_and_version(tmp_path: Path) -> None:
    path = imagebuild.stub_wheel("Nowheel.Dep", "1.0", tmp_path)
    assert path.name == "nowheel_dep-1.0-py3-none-any.whl"
    assert imagebuild.wheel_metadata(path)["Version"] == "1.0"
    assert imagebuild.wheel_metadata(path).get_all("Requires-Dist") is None


# --- the service's wheel -------------------------------------------------------------------------

def _wheel(directory: Path, name: str = "demo_svc", version: str = "1.2.3", *,
           requires: tuple[str, ...] = ("multidict>=4.5",), tag: str = "py3-none-any",
           extra_files: dict[str, str] | None = None, scripts: str = "") -> Path:
    dist = f"{name}-{version}"
    path = directory / f"{dist}-{tag}.whl"
    directory.mkdir(parents=True, exist_ok=True)
    files = {f"{name}/__init__.py": "VALUE = 1\n",
             f"{dist}.dist-info/METADATA": "Metadata-Version: 2.1\n"
             f"Name: {name.replace('_', '-')}\nVersion: {version}\n"
             + "".join(f"Requires-Dist: {r}\n" for r in requires),
             f"{dist}.dist-info/WHEEL": f"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: {tag}\n",
             **(extra_files or {})}
    if scripts:
        files[f"{dist}.dist-info/entry_points.txt"] = f"[console_scripts]\n{scripts}\n"
    records = "".join(f"{n},,\n" for n in files) + f"{dist}.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as zf:
        for name_, text in files.items():
            zf.writestr(name_, text)
        zf.writestr(f"{dist}.dist-info/RECORD", records)
    return path


def _pkg(tmp_path: Path, **kwargs: object) -> Path:
    pkg = tmp_path / "pkg"
    _wheel(pkg, **kwargs)  # type: ignore[arg-type]
    stages.ship(pkg)
    return pkg


def test_package_installs_the_wheel_as_pip_would(tmp_path: Path) -> None:
    pkg = _pkg(tmp_path, scripts="demo = demo_svc:main",
               extra_files={"demo_svc-1.2.3.data/data/share/demo/x.conf": "x\n"})
    imagebuild.package(pkg, tmp_path / "out", "demo-svc", "1.2.3")
    paths = sysconfig.get_paths()
    root = tmp_path / "out" / "root"
    site = root / paths["purelib"].lstrip("/")
    assert (site / "demo_svc" / "__init__.py").is_file()
    assert list((site / "demo_svc" / "__pycache__").glob("__init__.*.pyc")), "compiled"
    assert (site / "demo_svc-1.2.3.dist-info" / "INSTALLER").read_text() == "brewblox-release\n"
    script = root / paths["scripts"].lstrip("/") / "demo"
    assert script.read_text().splitlines()[0] == \
        f"#!{sysconfig.get_config_var('BINDIR')}/python3"
    assert os.access(script, os.X_OK)
    assert (root / paths["data"].lstrip("/") / "share" / "demo" / "x.conf").read_text() == "x\n"
    assert (tmp_path / "out" / imagebuild.NOTHING_FOR_PIP).is_dir()


@pytest.mark.parametrize(("name", "version", "message"), [
    ("demo-svc", "1.2.4", "not version 1.2.4"),
    ("other-svc", "1.2.3", "not other-svc"),
])
def test_package_refuses_another_wheel(tmp_path: Path, name: str, version: str,
                                       message: str) -> None:
    pkg = _pkg(tmp_path)
    with pytest.raises(ImageBuildError, match=message) as raised:
        imagebuild.package(pkg, tmp_path / "out", name, version)
    assert "nox -s dist distcopy" in str(raised.value)


def test_package_refuses_requirements_that_are_not_the_wheels(tmp_path: Path) -> None:
    pkg = _pkg(tmp_path)
    (pkg / "requirements.txt").write_text("attrs\n")
    with pytest.raises(ImageBuildError, match=r"not the requirements of demo_svc-1\.2\.3"):
        imagebuild.package(pkg, tmp_path / "out", "demo-svc", "1.2.3")


def test_without_a_wheel_the_package_comes_by_name(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    stages.ship(pkg, "demo-svc", "1.2.3")
    assert (pkg / "requirements.txt").read_text() == "demo-svc==1.2.3\n"
    imagebuild.package(pkg, tmp_path / "out", "demo-svc", "1.2.3")
    assert not list((tmp_path / "out" / "root").iterdir())
    with pytest.raises(ImageBuildError, match=r"does not name demo-svc==1\.2\.4"):
        imagebuild.package(pkg, tmp_path / "out2", "demo-svc", "1.2.4")
    with pytest.raises(ImageBuildError, match="PACKAGE is not set"):
        imagebuild.package(pkg, tmp_path / "out3", "", "")


def test_a_wheel_for_a_platform_is_left_for_pip_in_the_image(tmp_path: Path) -> None:
    pkg = _pkg(tmp_path, tag="cp311-cp311-linux_x86_64")
    imagebuild.package(pkg, tmp_path / "out", "demo-svc", "1.2.3")
    assert [p.name for p in (tmp_path / "out" / "image").iterdir()] == [
        "demo_svc-1.2.3-cp311-cp311-linux_x86_64.whl"]
    assert not (tmp_path / "out" / imagebuild.NOTHING_FOR_PIP).exists()


# --- shipping into pkg/ --------------------------------------------------------------------------

def test_ship_writes_the_module_its_packages_and_the_requirements(tmp_path: Path) -> None:
    pkg = _pkg(tmp_path)
    tools = pkg / imagebuild.TOOLS_DIR
    assert (tools / "imagebuild.py").read_bytes() == Path(imagebuild.__file__).read_bytes()
    assert (tools / "installer" / "__init__.py").is_file()
    assert (tools / "packaging" / "requirements.py").is_file()
    assert not list(tools.rglob("*.exe"))
    assert (pkg / "requirements.txt").read_text() == "multidict>=4.5\n"


def test_ship_compiles_the_modules_for_the_image(tmp_path: Path) -> None:
    import importlib.util
    import marshal

    pkg = _pkg(tmp_path)
    source = pkg / imagebuild.TOOLS_DIR / "packaging" / "requirements.py"
    pyc = Path(importlib.util.cache_from_source(str(source)))
    data = pyc.read_bytes()
    assert data[:4] == importlib.util.MAGIC_NUMBER
    assert int.from_bytes(data[4:8], "little") == 0b01, "an unchecked hash-based pyc"
    code = marshal.loads(data[16:])  # noqa: S302 (the pyc ship() just wrote)
    assert code.co_filename == f"{imagebuild.IMAGE_TOOLS}/packaging/requirements.py"
    sources = {p.stem for p in (pkg / imagebuild.TOOLS_DIR / "installer").glob("*.py")}
    compiled = {p.name.split(".")[0] for p in
                (pkg / imagebuild.TOOLS_DIR / "installer" / "__pycache__").glob("*.pyc")}
    assert sources == compiled


def test_ship_again_rewrites_nothing_and_drops_what_is_stale(tmp_path: Path) -> None:
    pkg = _pkg(tmp_path)
    tools = pkg / imagebuild.TOOLS_DIR
    stamp = (tools / "imagebuild.py").stat().st_mtime_ns
    pyc = next((tools / "__pycache__").glob("imagebuild.*.pyc"))
    pyc_stamp = pyc.stat().st_mtime_ns
    (tools / "stale.py").write_text("old\n")
    stages.ship(pkg)
    assert (tools / "imagebuild.py").stat().st_mtime_ns == stamp
    assert pyc.stat().st_mtime_ns == pyc_stamp
    assert not (tools / "stale.py").exists()


def test_only_a_dockerfile_made_from_the_template_gets_the_tools(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(TEMPLATE.read_text())
    assert stages.uses_template(tmp_path)
    (tmp_path / "Dockerfile").write_text("FROM python:3.11\nCOPY pkg /pkg\n"
                                         "RUN pip3 install /pkg/*\n")
    assert not stages.uses_template(tmp_path)
    assert not stages.uses_template(tmp_path / "missing")


def test_the_template_is_short_and_runs_no_script_inline() -> None:
    text = TEMPLATE.read_text()
    assert len(text.splitlines()) <= 60
    runs = [line for line in text.splitlines() if line.startswith("RUN")]
    assert all("imagebuild.py" in line or line.endswith("\\") for line in runs)
    assert "python3 -c" not in text


@pytest.mark.parametrize(("line", "expected"), [
    ('ERROR: failed to solve: failed to compute cache key: "/deps/nothing-for-pip" not found: '
     "not found", True),
    ('#14 ERROR: "/out/nothing-for-pip": not found', True),
    ("#14 [image-pip-no 1/2] COPY --from=deps /deps/nothing-for-pip/ /", False),
    ('ERROR: failed to compute cache key: "/pkg/requirements.txt" not found', False),
])
def test_the_sessions_read_when_pip_must_run_in_the_image(line: str, expected: bool) -> None:
    assert needs_image_pip(line) is expected


# --- one resolution for arm/v7, on the host, against a real index --------------------------------

@pytest.fixture(scope="module")
def arm_index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[wheels.LoggedIndex]:
    """A loopback index with multidict's wheels for both platforms and an sdist-only package."""
    files = wheels.fetch(["multidict"])
    with wheels.LoggedIndex(tmp_path_factory.mktemp("index")) as index:
        assert isinstance(index, wheels.LoggedIndex)
        for path in files:
            (index.packages / path.name).write_bytes(path.read_bytes())
        wheels.sdist_only(index.packages, "nowheel-dep", "1.0")
        wheels.sdist_only(index.packages, "nowheel-dep", "0.9")
        yield index


def test_deps_installs_wheels_for_arm_and_leaves_only_the_sdist_for_the_image(
        tmp_path: Path, arm_index: wheels.LoggedIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", arm_index.simple_url)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    before = arm_index.fetched()
    left = imagebuild.deps(_host_target("armv7l"),
                           ["multidict>=6",  # its extra is pip's to install in the image
                            'nowheel-dep[fast]<1.1; platform_machine == "armv7l"',
                            'greenlet; platform_machine == "x86_64"'], tmp_path)
    assert left == ["nowheel-dep[fast]==1.0"]
    assert (tmp_path / "image" / "requirements.txt").read_text() == "nowheel-dep[fast]==1.0\n"
    # The index settings for pip in the image: a file of this stage, never a build arg there.
    assert json.loads((tmp_path / "image" / "pip.json").read_text()) == {
        "PIP_INDEX_URL": arm_index.simple_url}
    assert not (tmp_path / imagebuild.NOTHING_FOR_PIP).exists()
    site = tmp_path / "root" / sysconfig.get_paths()["platlib"].lstrip("/")
    extensions = [p.name for p in (site / "multidict").glob("_multidict*.so")]
    assert extensions
    assert all("arm-linux-gnueabihf" in name for name in extensions), extensions
    assert not list(site.glob("nowheel_dep*")), "the sdist is pip's, in the image"
    fetched = arm_index.fetched() - before
    assert all(count == 1 for count in fetched.values()), fetched
    assert [name for name in fetched if name.startswith("multidict")] == [
        next(p.name for p in arm_index.packages.glob("multidict-*armv7l*.whl"))]
    assert not any(name.startswith("nowheel") for name in fetched)


def test_an_extra_a_dependency_asks_goes_to_pip_in_the_image(
        tmp_path: Path, arm_index: wheels.LoggedIndex, monkeypatch: pytest.MonkeyPatch) -> None:
    """A dependency of the service asks ``nowheel-dep[fast]``: pip in the image gets the extra
    too, as ``pip install`` of the service would."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_INDEX_URL", arm_index.simple_url)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)
    wheel = arm_index.packages / "needs_fast-1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr("needs_fast-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: needs-fast"
                    "\nVersion: 1.0\nRequires-Dist: nowheel-dep[fast]<1.1\n")
        zf.writestr("needs_fast-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nGenerator: test\n"
                    "Root-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr("needs_fast-1.0.dist-info/RECORD", "")
    try:
        assert imagebuild.deps(_host_target("armv7l"), ["needs-fast"], tmp_path) == [
            "nowheel-dep[fast]==1.0"]
    finally:
        wheel.unlink()


@pytest.mark.parametrize(("env", "expected"), [
    ({"PIP_INDEX_URL": "http://127.0.0.1:8080/simple/"}, ["127.0.0.1:8080"]),
    ({"PIP_INDEX_URL": "http://u:p@localhost/simple/", "PIP_TRUSTED_HOST": "mirror.lan"},
     ["mirror.lan", "localhost"]),
    ({"PIP_INDEX_URL": "https://pypi.org/simple/",
      "PIP_EXTRA_INDEX_URL": "http://10.0.0.2/simple/"}, []),
    ({"PIP_INDEX_URL": "http://127.0.0.1:1/simple/", "PIP_TRUSTED_HOST": "127.0.0.1:1"},
     ["127.0.0.1:1"]),
])
def test_loopback_indexes_are_trusted_so_pip_caches_their_files(
        env: dict[str, str], expected: list[str]) -> None:
    assert imagebuild.trusted_hosts(env) == expected


def test_two_targets_sharing_a_context_ship_at_once(tmp_path: Path) -> None:
    import threading

    pkg = tmp_path / "pkg"
    _wheel(pkg)
    errors: list[BaseException] = []

    def one() -> None:
        try:
            for _ in range(3):
                stages.ship(pkg)
        except BaseException as e:  # reported by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert (pkg / imagebuild.TOOLS_DIR / "imagebuild.py").read_bytes() == \
        Path(imagebuild.__file__).read_bytes()
    assert not [p.name for p in (pkg / imagebuild.TOOLS_DIR).rglob(".*")]


def test_ship_replaces_a_linked_tools_directory_and_leaves_its_target(tmp_path: Path) -> None:
    # ship() writes and prunes pkg/brewblox-release/: a link there (planted, or a leftover)
    # must not carry those writes and deletions out of the context.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("outside\n")
    pkg = tmp_path / "docker" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / imagebuild.TOOLS_DIR).symlink_to(outside)
    dest = stages.ship(pkg)
    assert dest.is_dir()
    assert not dest.is_symlink()
    assert (dest / "imagebuild.py").is_file()
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]
    assert (outside / "keep.txt").read_text() == "outside\n"


def test_the_program_loads_once_when_images_build_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two images building at once both ask for the program: one module, run once."""
    monkeypatch.delitem(sys.modules, "brewblox_release_imagebuild", raising=False)
    runs = []
    real = importlib.util.module_from_spec

    def counted(spec: ModuleSpec) -> ModuleType:
        runs.append(spec.name)
        time.sleep(0.05)  # long enough for every thread to be inside program() at once
        module: ModuleType = real(spec)
        return module

    monkeypatch.setattr(importlib.util, "module_from_spec", counted)
    with ThreadPoolExecutor(max_workers=4) as pool:
        loaded = list(pool.map(lambda _: stages.program(), range(4)))
    assert runs == ["brewblox_release_imagebuild"]
    assert all(module is loaded[0] for module in loaded)
