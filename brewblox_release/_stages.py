"""The image template's build stages, from the host's side: their program
(``templates/stages/imagebuild.py``) shipped into the build context (docs/image.md)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import py_compile
import sys
import threading
from pathlib import Path
from types import ModuleType

from ._errors import BuildError

PROGRAM = Path(__file__).parent / "templates" / "stages" / "imagebuild.py"
_loading = threading.Lock()


def program() -> ModuleType:
    """The stages' program as a module, whose names the host uses; loaded once into
    ``sys.modules`` (as an import is), whichever of the images building at once asks first."""
    with _loading:
        name = "brewblox_release_imagebuild"
        if (loaded := sys.modules.get(name)) is not None:
            return loaded
        spec = importlib.util.spec_from_file_location(name, PROGRAM)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # as importlib's recipe: its dataclasses look it up
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module


def uses_template(context: Path) -> bool:
    """Whether the context's Dockerfile runs the stages' program (the template, or one made from
    it): only then does its ``pkg/`` get more than the distribution's files."""
    try:
        dockerfile = (context / "Dockerfile").read_text(errors="replace")
    except OSError:
        return False
    return f"{program().TOOLS_DIR}/imagebuild.py" in dockerfile


def ship(pkg: Path, name: str = "", version: str = "") -> Path:
    """Put into ``pkg`` what the template's stages need besides the wheel, with its bytecode
    (docs/image.md); each file is written whole and only where it differs, so that the build's
    cache keys, a build reading them and a target sharing the context are left alone."""
    stages = program()
    dest = pkg / str(stages.TOOLS_DIR)
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        dest.unlink()  # the link (or file) in pkg/, never what it points at: this directory's
        # files are written and removed below, and must be the ones in the context
    files = {dest / "imagebuild.py": PROGRAM.read_bytes()}
    for package_name in stages.SHIPPED_PACKAGES:
        source = Path(importlib.import_module(package_name).__file__ or "").parent
        for path in source.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".exe":
                files[dest / package_name / path.relative_to(source)] = path.read_bytes()
    try:
        requirements = stages.requirements_of(pkg, name, version)
    except stages.ImageBuildError as e:  # a wheel that is none (a file cut short)
        raise BuildError(f"{pkg.name}/{e}: run `nox -s dist distcopy`") from e
    files[pkg / "requirements.txt"] = "".join(f"{r}\n" for r in requirements).encode()
    keep = set(files)
    for target, data in files.items():
        changed = not (target.is_file() and target.read_bytes() == data)
        if changed:
            target.parent.mkdir(parents=True, exist_ok=True)
            (partial := _partial(target)).write_bytes(data)
            partial.replace(target)
        if target.suffix == ".py" and target.is_relative_to(dest):
            keep.add(_compile(target, f"{stages.IMAGE_TOOLS}/{target.relative_to(dest)}",
                              again=changed))
    for path in sorted(dest.rglob("*"), reverse=True):
        if path.is_file() and path not in keep and not path.name.startswith("."):
            path.unlink(missing_ok=True)  # a file of a release before this one
    return dest


def _partial(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}")


def _compile(source: Path, path_in_image: str, *, again: bool) -> Path:
    """The bytecode of ``source`` beside it, never checked against the source's time (PEP 552):
    the copies in the image have other times, and `ship` rewrites it with the source."""
    pyc = Path(importlib.util.cache_from_source(str(source)))
    if again or not pyc.is_file():
        partial = _partial(pyc)
        pyc.parent.mkdir(exist_ok=True)
        try:
            py_compile.compile(str(source), cfile=str(partial), dfile=path_in_image, doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
        except (py_compile.PyCompileError, OSError):
            partial.unlink(missing_ok=True)
            return pyc  # the image's Python compiles it then
        partial.replace(pyc)
    return pyc
