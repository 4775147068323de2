"""Branch names and versions to Docker tags (docs/how-it-works.md, "Branch to tag")."""

from __future__ import annotations

import itertools
import re

import pytest
from packaging.version import Version

from brewblox_release._plan import highest_final
from brewblox_release._tags import LATEST, LOCAL, MAX_TAG, branch_tag, is_reserved, version_tags

#: The prefixes of the default targets (amd64 and arm).
PREFIXES = ("", "rpi-")

#: Every tag the module produces, prefix included (lower-case Docker tag grammar).
TAG = re.compile(r"^[a-z0-9_][a-z0-9_.-]{0,127}$")

#: A tag that was cut: 117 characters of the name, a dash, 10 hex digits of a hash.
CUT = re.compile(r"^[a-z0-9_][a-z0-9_.-]{116}-[0-9a-f]{10}$")

#: A name with no valid character left: ``branch-`` and a hash of the name.
HASHED = re.compile(r"^branch-[0-9a-f]{10}$")

# (branch, amd64 tag, arm tag)
ORDINARY: list[tuple[str, str, str]] = [
    ("feature/Add_Doodad", "feature-add_doodad", "rpi-feature-add_doodad"),
    ("feature/x/y", "feature-x-y", "rpi-feature-x-y"),
    ("dependabot/pip/requests-2.31.0", "dependabot-pip-requests-2.31.0",
     "rpi-dependabot-pip-requests-2.31.0"),
    ("release/1.2", "release-1.2", "rpi-release-1.2"),
    ("UPPER", "upper", "rpi-upper"),
    ("HEAD", "head", "rpi-head"),
    ("Feature/ABC-123_Fix.Bug", "feature-abc-123_fix.bug", "rpi-feature-abc-123_fix.bug"),
    ("fix#123", "fix-123", "rpi-fix-123"),
    ("fix##123", "fix-123", "rpi-fix-123"),
    ("user@host:x", "user-host-x", "rpi-user-host-x"),
    ("fëature/ünïcode", "f-ature-n-code", "rpi-f-ature-n-code"),
    ("emoji-\N{BEER MUG}", "emoji--", "rpi-emoji--"),
    ("my branch name", "my-branch-name", "rpi-my-branch-name"),
    ("  spaced  ", "spaced-", "rpi-spaced-"),
    ("tab\there", "tab-here", "rpi-tab-here"),
    ("snake_case_branch", "snake_case_branch", "rpi-snake_case_branch"),
    ("_leading_underscore", "_leading_underscore", "rpi-_leading_underscore"),
    (".hidden", "hidden", "rpi-hidden"),
    ("--x", "x", "rpi-x"),
    ("..-x", "x", "rpi-x"),
    ("-.-feature", "feature", "rpi-feature"),
    ("feature..x", "feature..x", "rpi-feature..x"),
    ("trailing/", "trailing-", "rpi-trailing-"),
    ("a", "a", "rpi-a"),
    ("main", "main", "rpi-main"),
    ("dev", "dev", "rpi-dev"),
    ("latest-fixes", "latest-fixes", "rpi-latest-fixes"),
    ("local/dev", "local-dev", "rpi-local-dev"),
    ("rpi-feature", "branch-rpi-feature", "rpi-branch-rpi-feature"),
    # Reserved: the tags of releases and local builds.
    ("latest", "branch-latest", "rpi-branch-latest"),
    ("LATEST", "branch-latest", "rpi-branch-latest"),
    ("local", "branch-local", "rpi-branch-local"),
    ("Local", "branch-local", "rpi-branch-local"),
    ("1.2.3", "branch-1.2.3", "rpi-branch-1.2.3"),
    (".1.2.3", "branch-1.2.3", "rpi-branch-1.2.3"),
    ("v2", "branch-v2", "rpi-branch-v2"),
    ("V1.0", "branch-v1.0", "rpi-branch-v1.0"),
    ("2024.01", "branch-2024.01", "rpi-branch-2024.01"),
    ("1.0rc1", "branch-1.0rc1", "rpi-branch-1.0rc1"),
    ("1.2.4.dev5", "branch-1.2.4.dev5", "rpi-branch-1.2.4.dev5"),
    # Reserved through a target's prefix: they would overwrite the arm image's tags.
    ("rpi-latest", "branch-rpi-latest", "rpi-branch-rpi-latest"),
    ("rpi-local", "branch-rpi-local", "rpi-branch-rpi-local"),
    ("rpi-1.2.3", "branch-rpi-1.2.3", "rpi-branch-rpi-1.2.3"),
    # Another target's prefix: the amd64 tag would be the arm tag of branch "fix-gpio".
    ("rpi-fix-gpio", "branch-rpi-fix-gpio", "rpi-branch-rpi-fix-gpio"),
    ("RPI/Fix", "branch-rpi-fix", "rpi-branch-rpi-fix"),
    ("rpi", "rpi", "rpi-rpi"),
    ("rpi_x", "rpi_x", "rpi-rpi_x"),
]

RESERVED_BRANCHES = ["latest", "LATEST", "local", "Local", "1.2.3", ".1.2.3", "v2", "V1.0",
                     "2024.01", "1.0rc1", "1.2.4.dev5", "rpi-latest", "rpi-local", "rpi-1.2.3"]

#: Names with no character a tag may hold.
NOTHING_VALID = ["###", "日本語", "   ", "---", "...", "/", "ü"]

LONG: list[str] = [
    "a" * 200,
    "feature/" + "long-name-" * 30,
    "x" * 199 + "a",
    "x" * 199 + "b",
    "feature/" + "y" * 192,
    "feature#" + "y" * 192,
    "Feature/" + "y" * 192,
    "A" * 200,
    "1" * 200,
    "ü" * 100 + "z" * 100,
    "b" * 128,
    "c" * 124,
    "c" * 125,
    "d" * 129,
]

ALL_NAMES = [row[0] for row in ORDINARY] + NOTHING_VALID + LONG


@pytest.mark.parametrize(("branch", "amd64", "arm"), ORDINARY)
def test_branch_tag(branch: str, amd64: str, arm: str) -> None:
    assert branch_tag(branch, "", PREFIXES) == amd64
    assert branch_tag(branch, "rpi-", PREFIXES) == arm


@pytest.mark.parametrize("branch", ALL_NAMES)
@pytest.mark.parametrize("prefix", PREFIXES)
def test_every_tag_is_a_valid_lower_case_docker_tag(branch: str, prefix: str) -> None:
    tag = branch_tag(branch, prefix, PREFIXES)
    assert TAG.match(tag), tag
    assert len(tag) <= MAX_TAG
    assert tag.startswith(prefix)


@pytest.mark.parametrize("branch", ALL_NAMES)
@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_branch_tag_is_never_a_reserved_tag(branch: str, prefix: str) -> None:
    assert not is_reserved(branch_tag(branch, prefix, PREFIXES), PREFIXES)


@pytest.mark.parametrize("branch", RESERVED_BRANCHES)
def test_reserved_names_get_branch_prefix(branch: str) -> None:
    assert branch_tag(branch, "", PREFIXES).startswith("branch-")
    assert branch_tag(branch, "rpi-", PREFIXES).startswith("rpi-branch-")


@pytest.mark.parametrize("branch", [*ALL_NAMES, "rpi-x", "RPI-x", "rpi-", "rpi--x", ".rpi-x",
                                    "rpi-" + "y" * 200])
def test_a_tag_of_one_target_never_carries_another_targets_prefix(branch: str) -> None:
    # So no branch's amd64 image lands on a tag of the arm image of another branch.
    amd64 = branch_tag(branch, "", PREFIXES)
    assert not amd64.startswith("rpi-"), amd64
    assert branch_tag(branch, "rpi-", PREFIXES) == "rpi-" + amd64 or len(amd64) > MAX_TAG - 4


def test_rpi_latest_is_reserved_only_with_the_arm_prefix_known() -> None:
    assert branch_tag("rpi-latest") == "rpi-latest"
    assert branch_tag("rpi-latest", "", PREFIXES) == "branch-rpi-latest"


@pytest.mark.parametrize("branch", NOTHING_VALID)
@pytest.mark.parametrize("prefix", PREFIXES)
def test_a_name_with_no_valid_character_gets_a_hash(branch: str, prefix: str) -> None:
    tag = branch_tag(branch, prefix, PREFIXES)
    assert HASHED.match(tag.removeprefix(prefix)), tag


def test_names_with_no_valid_character_do_not_share_a_tag() -> None:
    tags = [branch_tag(branch, "", PREFIXES) for branch in NOTHING_VALID]
    assert len(set(tags)) == len(tags)


def test_a_name_that_is_not_utf_8_gets_a_tag() -> None:
    """A ref CI gives as bytes that are not UTF-8 (Python holds them as surrogates)."""
    raw = b"caf\xe9-\xff\xfe".decode(errors="surrogateescape")
    assert branch_tag(raw, "rpi-", PREFIXES) == "rpi-caf---"
    assert branch_tag("\udce9" * 3) != branch_tag("\udcff" * 3)


@pytest.mark.parametrize(("branch", "amd64_cut", "arm_cut"), [
    ("b" * 128, False, True),   # 128 alone, 132 with "rpi-"
    ("c" * 124, False, False),  # 128 with "rpi-": exactly the limit
    ("c" * 125, False, True),
    ("d" * 129, True, True),
    ("a" * 200, True, True),
])
def test_a_tag_is_cut_only_beyond_128_characters(branch: str, amd64_cut: bool,
                                                   arm_cut: bool) -> None:
    for prefix, cut in (("", amd64_cut), ("rpi-", arm_cut)):
        tag = branch_tag(branch, prefix, PREFIXES)
        if cut:
            assert len(tag) == MAX_TAG
            assert CUT.match(tag), tag
            assert tag.startswith(prefix + branch[:10])
        else:
            assert tag == prefix + branch


@pytest.mark.parametrize(("one", "other"), [
    ("x" * 199 + "a", "x" * 199 + "b"),                     # differ only in the last character
    ("feature/" + "y" * 192, "feature#" + "y" * 192),       # differ in characters that clean alike
    ("feature/" + "y" * 192, "Feature/" + "y" * 192),       # differ only in case
    ("z" * 140 + "/" + "z" * 59, "z" * 140 + "\N{BEER MUG}" + "z" * 59),
    ("d" * 129, "d" * 130),
])
@pytest.mark.parametrize("prefix", PREFIXES)
def test_two_long_names_never_share_a_tag(one: str, other: str, prefix: str) -> None:
    assert branch_tag(one, prefix, PREFIXES) != branch_tag(other, prefix, PREFIXES)


@pytest.mark.parametrize("prefix", PREFIXES)
def test_all_long_names_have_distinct_tags(prefix: str) -> None:
    tags = {branch: branch_tag(branch, prefix, PREFIXES) for branch in LONG}
    for (a, tag_a), (b, tag_b) in itertools.combinations(tags.items(), 2):
        assert tag_a != tag_b, (a, b)


@pytest.mark.parametrize("branch", ["feature/Add_Doodad", "a" * 200, "###"])
def test_branch_tag_is_deterministic(branch: str) -> None:
    assert branch_tag(branch, "rpi-", PREFIXES) == branch_tag(branch, "rpi-", PREFIXES)


@pytest.mark.parametrize(("name", "prefixes", "reserved"), [
    ("latest", ("",), True),
    ("local", ("",), True),
    ("1.2.3", ("",), True),
    ("v2", ("",), True),
    ("1.3.0rc1", ("",), True),
    ("1.2.4.dev5", ("",), True),
    ("2.0.0.post1", ("",), True),
    ("feature-x", ("",), False),
    ("latest-fixes", ("",), False),
    ("branch-latest", ("",), False),
    ("dev", ("",), False),
    ("rpi-latest", ("",), False),
    ("rpi-latest", PREFIXES, True),
    ("rpi-local", PREFIXES, True),
    ("rpi-1.2.3", PREFIXES, True),
    ("rpi-feature", PREFIXES, False),
    ("rpi-", PREFIXES, False),
    ("latest", ("rpi-",), False),  # only names that carry one of the prefixes are checked
    ("arm64-latest", ("", "arm64-"), True),
])
def test_is_reserved(name: str, prefixes: tuple[str, ...], reserved: bool) -> None:
    assert is_reserved(name, prefixes) is reserved


def test_is_reserved_defaults_to_no_prefix() -> None:
    assert is_reserved(LATEST)
    assert is_reserved(LOCAL)
    assert not is_reserved("rpi-latest")


@pytest.mark.parametrize(("version", "prefix", "latest", "tags"), [
    ("1.2.3", "", True, ("1.2.3", "latest")),
    ("1.2.3", "rpi-", True, ("rpi-1.2.3", "rpi-latest")),
    ("1.2.3", "", False, ("1.2.3",)),
    ("1.2.3", "rpi-", False, ("rpi-1.2.3",)),
    ("1.3.0rc1", "", False, ("1.3.0rc1",)),
    ("1.3.0rc1", "rpi-", False, ("rpi-1.3.0rc1",)),
    ("1.2.4.dev5", "", False, ("1.2.4.dev5",)),
    ("1.3.0RC1", "", False, ("1.3.0rc1",)),
])
def test_version_tags(version: str, prefix: str, latest: bool, tags: tuple[str, ...]) -> None:
    result = version_tags(version, prefix, latest=latest)
    assert result == tags
    assert all(TAG.match(tag) for tag in result)


def test_a_number_too_long_for_int_is_no_version() -> None:
    """packaging raises ValueError, not InvalidVersion, for a number past int()'s digit limit:
    such a name (a branch, a registry's tag) is no version, and no traceback."""
    assert not is_reserved("1" * 5000)
    assert highest_final(["1" * 5000, "1.0"]) == Version("1.0")
