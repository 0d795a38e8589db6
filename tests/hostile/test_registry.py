"""The registry's commands on unknown names and on tags whose record a stranger wrote.

A tag is the trusted side of a pull, but a tag made by hand (or by another tool) must still
be refused with one line when its record is not what TANGO-CI writes.
"""

from __future__ import annotations

import json
import math

import pytest

from tango_ci.registry import RECORD_HEADER
from tests.conftest import git
from tests.hostile.conftest import Tree, refused, tango_here
from tests.hostile.test_pull import (  # fixtures are used by name
    NAME,
    Promoted,
    promoted,  # noqa: F401
    pull,
    pushed,  # noqa: F401
    record,
)

UNKNOWN = "no artifact 'nope' in the registry; artifacts: demo-cpu"


def hand_made_tag(promoted: Promoted, message: str, version: str = "v1.0.1") -> str:
    """An annotated version tag on a new commit, written with git, not with TANGO-CI."""
    git(promoted.repo, "commit", "-q", "--allow-empty", "-m", f"for {version}")
    git(promoted.repo, "tag", "-a", f"{NAME}@{version}", "-m", message)
    return f"{NAME}@{version}"


@pytest.mark.parametrize(
    "command",
    [
        ("registry", "history", "nope"),
        ("registry", "show", "nope"),
        ("pull", "nope", "--to", "got"),
        ("pull", "nope#prod", "--to", "got"),
        ("promote", "nope", "--version", "v1.0.0", "--no-push"),
        ("rollback", "nope", "--no-push"),
    ],
)
def test_an_unknown_artifact_is_refused_with_the_known_names(promoted: Promoted, command) -> None:
    tree = Tree(promoted.root)
    refused(tango_here(*command, cwd=promoted.repo), UNKNOWN)
    tree.assert_unchanged()


@pytest.mark.parametrize(
    "reference, message",
    [
        (f"{NAME}#staging", "demo-cpu has no version in stage 'staging'"),
        (f"{NAME}#", "'demo-cpu#' is not NAME#STAGE, NAME@vX.Y.Z or NAME"),
        (f"{NAME}@1.0", "'1.0' in 'demo-cpu@1.0' is not a version like v1.2.3"),
        (f"{NAME}@v9.9.9", "demo-cpu has no version v9.9.9; versions: v1.0.0"),
    ],
)
def test_a_reference_that_names_nothing_is_refused(
    promoted: Promoted, reference: str, message: str
) -> None:
    tree = Tree(promoted.root)
    refused(pull(promoted, reference), message)
    tree.assert_unchanged()


@pytest.mark.parametrize(
    "message",
    [
        "registered by hand",
        f'{RECORD_HEADER}\n{{"artifact": NaN}}',
        f"{RECORD_HEADER}\n[1, 2, 3]",
        f'{RECORD_HEADER}\n{{"artifact": 1e999}}',
    ],
)
def test_a_tag_without_a_record_is_not_pulled(promoted: Promoted, message: str) -> None:
    tag = hand_made_tag(promoted, message)
    tree = Tree(promoted.root)
    refused(
        pull(promoted, tag),
        f"{tag} was not registered by TANGO-CI (its tag message holds no artifact record)",
    )
    tree.assert_unchanged()


@pytest.mark.parametrize(
    "change, problem",
    [
        (
            lambda a: a | {"files": {"../outside/pwned": "0" * 64}},
            "field 'artifact.files': unsafe path '../outside/pwned' (absolute, '..' or not "
            "normalised); nothing is written outside its folder",
        ),
        (
            lambda a: a | {"files": {"/etc/cron.d/x": "0" * 64}},
            "field 'artifact.files': unsafe path '/etc/cron.d/x' (absolute, '..' or not normalised); "
            "nothing is written outside its folder",
        ),
        (
            lambda a: a | {"md5": "../../../x.dir"},
            "field 'artifact.md5' must be a DVC directory hash (32 hex digits and '.dir'), not "
            "'../../../x.dir'",
        ),
        (
            lambda a: a | {"files": {"model.onnx": "not-a-hash"}},
            "field 'artifact.files.model.onnx' must be a sha256 (64 hex digits), not 'not-a-hash'",
        ),
        (lambda a: a | {"files": {}}, "field 'artifact.files' is empty"),
        (
            lambda a: a | {"files": {"m": "0" * 64, "m/x": "1" * 64}},
            "field 'artifact.files': 'm' is a file and a folder",
        ),
        (lambda a: "s3://bucket/model.onnx", "field 'artifact' must be an object, not a string"),
    ],
)
def test_a_record_a_stranger_wrote_is_refused_before_the_remote_is_read(
    promoted: Promoted, change, problem: str
) -> None:
    body = record(promoted.stored) | {"artifact": change(promoted.stored)}
    tag = hand_made_tag(promoted, f"{RECORD_HEADER}\n{json.dumps(body)}")
    tree = Tree(promoted.root)
    refused(pull(promoted, tag), f"{tag}: the record in its tag: {problem}")
    tree.assert_unchanged()


def test_show_and_history_survive_a_malformed_record(promoted: Promoted) -> None:
    body = record(promoted.stored) | {
        "metrics": [math.pi],
        "artifact": "elsewhere",
        "architecture": {"a": 1},
    }
    hand_made_tag(promoted, f"{RECORD_HEADER}\n{json.dumps(body)}")
    tree = Tree(promoted.root)
    shown = tango_here("registry", "show", NAME, cwd=promoted.repo)
    assert shown.code == 0, shown.stderr
    assert "v1.0.1" in shown.stdout and "v1.0.0" in shown.stdout
    history = tango_here("registry", "history", NAME, "--json", cwd=promoted.repo)
    assert history.code == 0, history.stderr
    assert sorted(e["version"] for e in json.loads(history.stdout)) == [
        "v1.0.0",
        "v1.0.0",
        "v1.0.1",
    ]
    tree.assert_unchanged()


def test_a_record_that_says_nowhere_is_not_pulled(promoted: Promoted) -> None:
    body = {k: v for k, v in record(promoted.stored).items() if k != "artifact"}
    tag = hand_made_tag(promoted, f"{RECORD_HEADER}\n{json.dumps(body)}")
    tree = Tree(promoted.root)
    refused(pull(promoted, tag), f"{tag}: the record in its tag: field 'artifact' is missing")
    tree.assert_unchanged()


def test_a_record_whose_metrics_are_not_numbers_is_not_pulled(promoted: Promoted) -> None:
    body = record(promoted.stored) | {"metrics": {"accuracy": "high"}}
    tag = hand_made_tag(promoted, f"{RECORD_HEADER}\n{json.dumps(body)}")
    tree = Tree(promoted.root)
    refused(
        pull(promoted, tag),
        f"{tag}: the record in its tag: field 'metrics.accuracy' must be a number, not a string",
    )
    tree.assert_unchanged()
