"""`[tool.brewblox-release]` in pyproject.toml (docs/configuration.md)."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path

import pytest

from brewblox_release._config import DEFAULT_TARGETS, IMAGE_ENV, Config, Target, load
from brewblox_release._errors import ConfigError

PROJECT = '[project]\nname = "demo-svc"\n'


def write(tmp_path: Path, text: str) -> Path:
    """The pyproject.toml, and a Dockerfile in every context it names (docs/configuration.md: a "
    "context
    must exist and hold one)."""
    path = tmp_path / "pyproject.toml"
    path.write_text(text)
    for context in {"docker", "rpi-docker", *re.findall(r'context = "([^"]+)"', text)}:
        with contextlib.suppress(OSError):
            (tmp_path / context).mkdir(parents=True, exist_ok=True)
            (tmp_path / context / "Dockerfile").write_text("FROM scratch\n")
    return path


def section(tmp_path: Path, body: str) -> Path:
    return write(tmp_path, f"{PROJECT}\n[tool.brewblox-release]\n{body}")


def load_error(tmp_path: Path, body: str) -> tuple[Path, str]:
    """Write ``body`` into the section; the pyproject's path and the ConfigError's message."""
    path = section(tmp_path, body)
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    return path, str(info.value)


def test_defaults(tmp_path: Path) -> None:
    write(tmp_path, PROJECT)
    cfg = load(tmp_path)
    assert cfg == Config(root=tmp_path.resolve(), name="demo-svc")
    assert cfg.image is None
    assert cfg.dist_dir == "dist"
    assert cfg.targets == DEFAULT_TARGETS
    assert cfg.targets == (
        Target(name="amd64", context="docker", platform="linux/amd64", prefix=""),
        Target(name="arm", context="rpi-docker", platform="linux/arm/v7", prefix="rpi-"),
    )
    assert cfg.quiet_branches == ("master", "main")
    assert cfg.build_args == {}
    assert cfg.pypi is True
    assert cfg.secret_vars == ()
    assert cfg.network is None
    assert cfg.pyproject == tmp_path.resolve() / "pyproject.toml"


def test_an_empty_section_is_the_defaults(tmp_path: Path) -> None:
    section(tmp_path, "")
    assert load(tmp_path) == Config(root=tmp_path.resolve(), name="demo-svc")


def test_every_key(tmp_path: Path) -> None:
    section(tmp_path, """\
image = "ghcr.io/org/svc"
dist-dir = "out/dist"
quiet-branches = ["develop"]
build-args = { BASE_IMAGE = "python:3.11-slim", EXTRA = "1" }
pypi = false
secret-vars = ["GH_TOKEN"]
network = "host"

[[tool.brewblox-release.targets]]
name = "amd64"
context = "docker"
platform = "linux/amd64"

[[tool.brewblox-release.targets]]
name = "arm64"
context = "arm64-docker"
platform = "linux/arm64"
prefix = "arm64-"
build-args = { BASE_IMAGE = "arm64v8/python:3.11-slim" }
""")
    assert load(tmp_path) == Config(
        root=tmp_path.resolve(),
        name="demo-svc",
        image="ghcr.io/org/svc",
        dist_dir="out/dist",
        targets=(
            Target(name="amd64", context="docker", platform="linux/amd64"),
            Target(name="arm64", context="arm64-docker", platform="linux/arm64",
                   prefix="arm64-", build_args={"BASE_IMAGE": "arm64v8/python:3.11-slim"}),
        ),
        quiet_branches=("develop",),
        build_args={"BASE_IMAGE": "python:3.11-slim", "EXTRA": "1"},
        pypi=False,
        secret_vars=("GH_TOKEN",),
        network="host",
    )


@pytest.mark.parametrize("image", ["brewblox/brewblox-devcon-spark", "ghcr.io/org/svc",
                                   "127.0.0.1:5000/demo/svc"])
def test_image(tmp_path: Path, image: str) -> None:
    section(tmp_path, f'image = "{image}"\n')
    cfg = load(tmp_path)
    assert cfg.image == image
    assert cfg.require_image() == image


@pytest.mark.parametrize(("configured", "env", "image"), [
    ('image = "brewblox/svc"\n', {IMAGE_ENV: "127.0.0.1:5000/demo/svc"},
     "127.0.0.1:5000/demo/svc"),
    ("", {IMAGE_ENV: "someone/svc"}, "someone/svc"),
    ('image = "brewblox/svc"\n', {IMAGE_ENV: ""}, "brewblox/svc"),
    ('image = "brewblox/svc"\n', {}, "brewblox/svc"),
    ('image = "brewblox/svc"\n', {"OTHER": "x"}, "brewblox/svc"),
])
def test_image_env_override(tmp_path: Path, configured: str, env: dict[str, str],
                            image: str) -> None:
    section(tmp_path, configured)
    assert load(tmp_path, env).image == image


def test_image_env_is_read_only_from_the_mapping_given(tmp_path: Path) -> None:
    section(tmp_path, 'image = "brewblox/svc"\n')
    assert load(tmp_path).image == "brewblox/svc"
    assert IMAGE_ENV == "BREWBLOX_RELEASE_IMAGE"


def test_load_accepts_a_string_path(tmp_path: Path) -> None:
    section(tmp_path, 'image = "brewblox/svc"\n')
    assert load(str(tmp_path)).root == tmp_path.resolve()


# Errors name the key and the file.


@pytest.mark.parametrize(("body", "key"), [
    ('imgae = "brewblox/svc"\n', "imgae"),
    ('dist_dir = "dist"\n', "dist_dir"),
    ('quiet_branches = ["main"]\n', "quiet_branches"),
    ("zzz = 1\n", "zzz"),
])
def test_unknown_key(tmp_path: Path, body: str, key: str) -> None:
    path, message = load_error(tmp_path, body)
    assert f"unknown key '{key}'" in message
    assert str(path.resolve()) in message
    assert "[tool.brewblox-release]" in message
    assert "known keys:" in message
    assert "image" in message.split("known keys:")[1]


def test_unknown_key_in_a_target(tmp_path: Path) -> None:
    path = section(tmp_path, """\
[[tool.brewblox-release.targets]]
name = "amd64"
context = "docker"
platform = "linux/amd64"
tag-prefix = "x-"
""")
    with pytest.raises(ConfigError) as info:
        load(tmp_path)
    message = str(info.value)
    assert "unknown key 'tag-prefix'" in message
    assert "targets[0]" in message
    assert str(path.resolve()) in message


@pytest.mark.parametrize(("body", "key", "expected"), [
    ("image = 5\n", "image", "a string, got int"),
    ('dist-dir = ["dist"]\n', "dist-dir", "a string, got list"),
    ('quiet-branches = "main"\n', "quiet-branches", "a list of strings, got str"),
    ("quiet-branches = [1, 2]\n", "quiet-branches", "a list of strings, got list"),
    ('build-args = ["A=1"]\n', "build-args", "a table of strings, got list"),
    ("build-args = { A = 1 }\n", "build-args", "a table of strings, got A = 1"),
    ('pypi = "false"\n', "pypi", "true or false, got str"),
    ("pypi = 0\n", "pypi", "true or false, got int"),
    ('secret-vars = "TOKEN"\n', "secret-vars", "a list of strings, got str"),
    ("network = true\n", "network", "a string, got bool"),
])
def test_wrong_type(tmp_path: Path, body: str, key: str, expected: str) -> None:
    path, message = load_error(tmp_path, body)
    assert f"[tool.brewblox-release] {key} must be {expected}" in message
    assert str(path.resolve()) in message


@pytest.mark.parametrize(("body", "table", "name"), [
    ('build-args = { VERSION = "9.9.9" }\n', "tool.brewblox-release", "VERSION"),
    ('build-args = { PACKAGE = "other" }\n', "tool.brewblox-release", "PACKAGE"),
    ('[[tool.brewblox-release.targets]]\nname = "amd64"\ncontext = "docker"\n'
     'platform = "linux/amd64"\nbuild-args = { VERSION = "1" }\n',
     "tool.brewblox-release.targets[0]", "VERSION"),
])
def test_build_args_may_not_set_what_the_release_sets(tmp_path: Path, body: str, table: str,
                                                      name: str) -> None:
    # Found in review: a VERSION in build-args silently replaced the published version.
    path, message = load_error(tmp_path, body)
    assert f"[{table}] build-args sets {name}" in message
    assert str(path.resolve()) in message


@pytest.mark.parametrize(("target", "key", "expected"), [
    ('name = 1\ncontext = "docker"\nplatform = "linux/amd64"\n', "name", "must be a string"),
    ('name = "amd64"\ncontext = "docker"\nplatform = "linux/amd64"\nprefix = 1\n', "prefix",
     "must be a string"),
    ('name = "amd64"\ncontext = "docker"\nplatform = "linux/amd64"\nbuild-args = "A=1"\n',
     "build-args", "must be a table of strings"),
    ('context = "docker"\nplatform = "linux/amd64"\n', "name", "is required"),
    ('name = "amd64"\nplatform = "linux/amd64"\n', "context", "is required"),
    ('name = "amd64"\ncontext = "docker"\n', "platform", "is required"),
    ('name = "arm64"\ncontext = "docker"\nplatform = "linux//v8"\n', "platform",
     "= 'linux//v8' is no platform: write os/architecture[/variant]"),
])
def test_wrong_target(tmp_path: Path, target: str, key: str, expected: str) -> None:
    path, message = load_error(tmp_path, f"[[tool.brewblox-release.targets]]\n{target}")
    assert f"[tool.brewblox-release.targets[0]] {key} {expected}" in message
    assert str(path.resolve()) in message


@pytest.mark.parametrize(("written", "platform"), [
    ("linux/arm64/v8", "linux/arm64"), ("linux/arm", "linux/arm/v7"),
    ("linux/armhf", "linux/arm/v7"), ("linux/aarch64", "linux/arm64"),
    ("Linux/AMD64", "linux/amd64"), ("linux/arm/v6", "linux/arm/v6"), ("arm64", "linux/arm64"),
    ("linux/arm64/v8.0", "linux/arm64"), ("linux/armel", "linux/arm/v6"),
])
def test_a_platform_is_read_as_docker_and_the_registry_write_it(tmp_path: Path, written: str,
                                                                 platform: str) -> None:
    """Each spelling docker takes: the registry's lists, and verification, write it so."""
    section(tmp_path, f'[[tool.brewblox-release.targets]]\nname = "t"\ncontext = "docker"\n'
                      f'platform = "{written}"\n')
    assert load(tmp_path).targets[0].platform == platform


@pytest.mark.parametrize("body", [
    "targets = []\n",
    'targets = "amd64"\n',
    "targets = { name = \"amd64\" }\n",
])
def test_targets_must_be_a_non_empty_list(tmp_path: Path, body: str) -> None:
    path = section(tmp_path, body)
    with pytest.raises(ConfigError, match="targets must be a non-empty list") as info:
        load(tmp_path)
    assert str(path.resolve()) in str(info.value)


def test_a_target_must_be_a_table(tmp_path: Path) -> None:
    section(tmp_path, 'targets = ["amd64"]\n')
    with pytest.raises(ConfigError, match=re.escape("[tool.brewblox-release.targets[0]] must be "
                                                    "a table")):
        load(tmp_path)


def test_custom_targets(tmp_path: Path) -> None:
    section(tmp_path, """\
build-args = { A = "all" }

[[tool.brewblox-release.targets]]
name = "arm64"
context = "docker-arm64"
platform = "linux/arm64"
prefix = "arm64-"
build-args = { B = "arm64" }
""")
    cfg = load(tmp_path)
    assert cfg.targets == (Target(name="arm64", context="docker-arm64", platform="linux/arm64",
                                  prefix="arm64-", build_args={"B": "arm64"}),)
    assert cfg.build_args == {"A": "all"}
    assert cfg.target("arm64") is cfg.targets[0]


def test_target_lookup(tmp_path: Path) -> None:
    section(tmp_path, "")
    cfg = load(tmp_path)
    assert cfg.target("arm").prefix == "rpi-"
    with pytest.raises(ConfigError, match=r"no target named 's390x'.*there are: amd64, arm"):
        cfg.target("s390x")


def test_duplicate_target_names(tmp_path: Path) -> None:
    path = section(tmp_path, """\
[[tool.brewblox-release.targets]]
name = "amd64"
context = "docker"
platform = "linux/amd64"

[[tool.brewblox-release.targets]]
name = "amd64"
context = "rpi-docker"
platform = "linux/arm/v7"
prefix = "rpi-"
""")
    with pytest.raises(ConfigError, match="names must be unique") as info:
        load(tmp_path)
    assert str(path.resolve()) in str(info.value)


@pytest.mark.parametrize("prefixes", [("", ""), ("rpi-", "rpi-")])
def test_duplicate_target_prefixes(tmp_path: Path, prefixes: tuple[str, str]) -> None:
    path = section(tmp_path, f"""\
[[tool.brewblox-release.targets]]
name = "amd64"
context = "docker"
platform = "linux/amd64"
prefix = "{prefixes[0]}"

[[tool.brewblox-release.targets]]
name = "arm"
context = "rpi-docker"
platform = "linux/arm/v7"
prefix = "{prefixes[1]}"
""")
    with pytest.raises(ConfigError, match="prefixes must differ") as info:
        load(tmp_path)
    assert str(path.resolve()) in str(info.value)


@pytest.mark.parametrize("text", [
    "",
    '[project]\nversion = "1.0"\n',
    '[project]\nname = ""\n',
    "[project]\nname = 5\n",
    'project = "demo-svc"\n',
    '[tool.brewblox-release]\nimage = "org/svc"\n',
])
def test_missing_project_name(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"\[project\] name is required") as info:
        load(tmp_path)
    assert str(path.resolve()) in str(info.value)


def test_section_must_be_a_table(tmp_path: Path) -> None:
    path = write(tmp_path, f'{PROJECT}[tool]\nbrewblox-release = "yes"\n')
    with pytest.raises(ConfigError, match=r"\[tool.brewblox-release\] must be a table") as info:
        load(tmp_path)
    assert str(path.resolve()) in str(info.value)


@pytest.mark.parametrize("text", [
    "[project\nname = 'x'\n",
    '[project]\nname = "demo-svc"\nname = "again"\n',
    "[project]\nname = demo-svc\n",
])
def test_invalid_toml(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load(tmp_path)
    assert str(path.resolve()) in str(info.value)
    assert isinstance(info.value.__cause__, ValueError)


def test_missing_pyproject(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found; run from the service's root") as info:
        load(tmp_path)
    assert str(tmp_path.resolve() / "pyproject.toml") in str(info.value)


def test_require_image(tmp_path: Path) -> None:
    path = section(tmp_path, "")
    cfg = load(tmp_path)
    with pytest.raises(ConfigError) as info:
        cfg.require_image()
    message = str(info.value)
    assert str(path.resolve()) in message
    assert "image is required" in message
    assert 'image = "brewblox/my-service"' in message
    assert IMAGE_ENV in message


def test_require_image_after_env_override(tmp_path: Path) -> None:
    section(tmp_path, "")
    assert load(tmp_path, {IMAGE_ENV: "org/svc"}).require_image() == "org/svc"


def test_from_data_without_files() -> None:
    cfg = Config.from_data(Path("svc"), {"tool": {"brewblox-release": {"image": "org/svc"}}},
                           "svc")
    assert cfg == Config(Path("svc"), "svc", image="org/svc")


def test_config_is_frozen(tmp_path: Path) -> None:
    section(tmp_path, "")
    cfg = load(tmp_path)
    with pytest.raises(AttributeError):
        cfg.image = "x"  # type: ignore[misc]


@pytest.mark.parametrize("prefix", ["", "rpi-", "arm64_", "v7.", "_x-", "a" * 64])
def test_valid_target_prefix(tmp_path: Path, prefix: str) -> None:
    section(tmp_path, f"""\
[[tool.brewblox-release.targets]]
name = "amd64"
context = "docker"
platform = "linux/amd64"
prefix = "{prefix}"
""")
    assert load(tmp_path).targets[0].prefix == prefix


@pytest.mark.parametrize("prefix", ["RPI-", "rpi/", "rpi ", "-rpi", ".rpi", "rpi:", "ü-",
                                    "rpi-\\n", "a" * 65])
def test_a_prefix_that_makes_invalid_tags_is_an_error(tmp_path: Path, prefix: str) -> None:
    path = section(tmp_path, f"""\
[[tool.brewblox-release.targets]]
name = "amd64"
context = "docker"
platform = "linux/amd64"

[[tool.brewblox-release.targets]]
name = "arm"
context = "rpi-docker"
platform = "linux/arm/v7"
prefix = "{prefix}"
""")
    with pytest.raises(ConfigError, match="would make invalid image tags") as info:
        load(tmp_path)
    message = str(info.value)
    assert "[tool.brewblox-release.targets[1]] prefix" in message
    assert str(path.resolve()) in message
