"""Records that arrive from outside (a downloaded run folder, a pulled PyTorch artifact) are
data: strict JSON, no links out of their folder, schema-checked, refused in one line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tango_ci.compile import load_artifact
from tango_ci.contracts import TrainedModel
from tango_ci.exceptions import TangoError
from tango_ci.rundir import check_run_folder, write_json, write_record

RECORD = TrainedModel(
    task="classification",
    family="resnet",
    name="resnet-xs",
    architecture="resnet-xs",
    image_size=16,
    classes=("a", "b"),
    shape={"level": "xs"},
)


def test_a_run_folder_is_checked_as_data(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_record(run / "train", RECORD)
    assert check_run_folder(run) == []
    (run / "gate").mkdir()
    (run / "gate" / "decision.json").write_text('{"passed": NaN}')
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "artifact.json").write_text("{}")
    (run / "compile").mkdir()
    (run / "compile" / "cpu").symlink_to(outside)
    problems = check_run_folder(run)
    assert problems[0].startswith("compile/cpu/artifact.json: leads out of the run folder")
    assert problems[1].startswith("gate/decision.json:") and "NaN" in problems[1]


@pytest.mark.parametrize(
    ("legacy", "where"),
    [
        (
            {
                "task": "../../x",
                "family": "resnet",
                "level": "xs",
                "classes": ["a"],
                "image_size": 16,
            },
            "at task",
        ),
        ({"family": "resnet", "level": "xs", "classes": "a" * 10, "image_size": 16}, "at classes"),
        (
            {"family": "resnet", "level": "[b]x", "classes": ["a"], "image_size": 16},
            "at (architecture|name)",
        ),
    ],
)
def test_a_pulled_pytorch_artifact_with_a_hostile_old_model_record_is_refused(
    tmp_path: Path, legacy: dict, where: str
) -> None:
    """Artifacts built before records had a version are upgraded, then checked like any."""
    (tmp_path / "model.json").write_text(json.dumps(legacy))
    weights = b"never read"
    (tmp_path / "best.pt").write_bytes(weights)
    write_json(
        tmp_path / "artifact.json",
        {
            "engine": "pytorch",
            "precision": "fp32",
            "mode": "eager",
            "file": "best.pt",
            "sha256": hashlib.sha256(weights).hexdigest(),
            "bytes": len(weights),
        },
    )
    with pytest.raises(TangoError, match=f"model.json: {where}"):
        load_artifact(tmp_path, threads=1)


@pytest.mark.parametrize(
    "recipe",
    [
        {"format": "qdq", "float_nodes": ["/conv1/Conv\n| injected | row |"]},
        {"format": "__import__('os').system('id')"},
        {"session": {"graph_optimization": "all", "threads": 512}},
        ["qdq"],
    ],
)
def test_a_hostile_recipe_in_a_registry_record_is_refused(recipe) -> None:
    """A version's record (a tag message anyone with push rights can write) and a downloaded
    run's results name the int8 recipe; a malformed one is refused before it is kept."""
    from tango_ci.registry.records import (
        Shape,
        UntrustedDataError,
        check_record,
        check_target_results,
    )

    record = {"run": "r", "engine": "onnxruntime", "precision": "int8", "recipe": recipe}
    with pytest.raises(UntrustedDataError, match="tag message: recipe"):
        check_record(record, "tag message")
    entry = {
        "passed": True,
        "engine": "onnxruntime",
        "precision": "int8",
        "runner": "local-cpu",
        "metrics": {},
        "recipe": recipe,
    }
    with pytest.raises(UntrustedDataError, match=r"results\.json"):
        check_target_results(Shape(entry, "results.json"), stored=False)
    good = {**record, "recipe": {"format": "qoperator", "float_nodes": ["/conv1/Conv"]}}
    assert check_record(good, "tag message")["recipe"]["format"] == "qoperator"
