"""Build recipes as data: exact rebuilds, CPU-driven choices, and refusal of hostile records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tango_ci.compile import BuildRequest, get_compiler, load_artifact
from tango_ci.compile.quantisation import check_ranges
from tango_ci.compile.recipes import Recipe, RecipeError, base_recipes, cpu_features
from tango_ci.exceptions import TangoError
from tango_ci.spec import TargetSpec, find_repo_root, load_runner

SIZE = 16


@pytest.fixture(scope="module")
def network(tmp_path_factory) -> Path:
    import torch

    from tango_ci.export import export_onnx
    from tango_ci.models import build_model

    folder = tmp_path_factory.mktemp("network")
    torch.manual_seed(0)
    export_onnx(build_model("resnet", "xs", 4).eval(), folder / "m.onnx", (1, 3, SIZE, SIZE))
    return folder / "m.onnx"


@pytest.fixture(scope="module")
def runner():
    return load_runner(find_repo_root(Path.cwd()) / "runners" / "local-cpu.yaml")


def _build(network, runner, out: Path, recipe=None, calibration=None, **options) -> dict:
    if calibration is None and "calibration_ranges" not in options:
        calibration = np.random.default_rng(1).standard_normal((24, 3, SIZE, SIZE)).astype("f4")
    target = TargetSpec(name="t", runner=runner.name, engine="onnxruntime", precision="int8")
    return get_compiler("onnxruntime").build(
        BuildRequest(
            onnx_path=network,
            out_dir=out,
            target=target,
            runner=runner,
            calibration=calibration,
            options={"recipe": recipe, **options},
        )
    )


def test_the_recorded_recipe_rebuilds_a_byte_identical_artifact(network, runner, tmp_path):
    first_conv = "/conv1/Conv"
    recipe = Recipe(
        format="qoperator",
        per_channel=False,
        calibration="percentile",
        calibration_images=16,
        float_nodes=(first_conv,),
    )
    built = _build(network, runner, tmp_path / "a", recipe)
    assert built["recipe"]["float_nodes"] == [first_conv]
    recorded = Recipe.from_json(
        json.loads((tmp_path / "a" / "artifact.json").read_text())["recipe"]
    )
    assert recorded == recipe
    again = _build(network, runner, tmp_path / "b", recorded)
    assert again["sha256"] == built["sha256"]
    # from the recorded calibration ranges alone: no calibration images needed
    ranges = tmp_path / "a" / built["calibration_ranges"]["file"]
    alone = _build(network, runner, tmp_path / "c", recorded, calibration_ranges=ranges)
    assert alone["sha256"] == built["sha256"]
    # and a different recipe is a different artifact
    other = _build(network, runner, tmp_path / "d", Recipe(calibration_images=16))
    assert other["sha256"] != built["sha256"]


def test_the_session_recipe_is_applied_when_the_artifact_loads(network, runner, tmp_path):
    from tango_ci.compile.recipes import SessionRecipe

    recipe = Recipe(calibration_images=8, session=SessionRecipe("extended", spinning=False))
    _build(network, runner, tmp_path / "a", recipe)
    predictor = load_artifact(tmp_path / "a", threads=1)
    options = predictor.session.get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert str(options.graph_optimization_level).endswith("ORT_ENABLE_EXTENDED")


def test_a_recipe_naming_a_node_the_network_lacks_is_refused(network, runner, tmp_path):
    with pytest.raises(TangoError, match="keeps node '/nowhere/Conv' in float"):
        _build(
            network,
            runner,
            tmp_path / "a",
            Recipe(calibration_images=8, float_nodes=("/nowhere/Conv",)),
        )


@pytest.mark.parametrize(
    ("record", "field"),
    [
        ([], "expected an object"),
        ({"format": "qdq", "sneaky": 1}, "unknown field 'sneaky'"),
        ({"format": "int4"}, "recipe.format"),
        ({"activations": "float8"}, "recipe.activations"),
        ({"per_channel": 1}, "recipe.per_channel"),
        ({"calibration_images": True}, "recipe.calibration_images"),
        ({"calibration_images": 10**9}, "recipe.calibration_images"),
        ({"float_nodes": "conv1"}, "recipe.float_nodes"),
        ({"float_nodes": ["a\nb"]}, r"recipe.float_nodes\[0\]"),
        ({"float_nodes": ["x"] * 5000}, "recipe.float_nodes"),
        ({"session": {"graph_optimization": "max"}}, "recipe.session.graph_optimization"),
        ({"session": {"threads": 64}}, "recipe.session"),
        ({"session": {"spinning": "yes"}}, "recipe.session.spinning"),
    ],
)
def test_a_malformed_recorded_recipe_is_refused_naming_the_field(record, field):
    with pytest.raises(RecipeError, match=field):
        Recipe.from_json(record)


def test_a_hostile_session_in_an_artifact_is_refused_on_load(network, runner, tmp_path):
    _build(network, runner, tmp_path / "a", Recipe(calibration_images=8))
    manifest_path = tmp_path / "a" / "artifact.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["session"] = {"graph_optimization": "__import__('os')"}
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(RecipeError, match=r"session\.graph_optimization"):
        load_artifact(tmp_path / "a")


@pytest.mark.parametrize(
    ("content", "why"),
    [
        ('{"data": {"x": {"lowest": NaN}}}', "not JSON"),
        ("not json", "not JSON"),
        ('{"data": {"x": {"lowest": 1e999}}}', "not finite"),
        ('{"calibration_method": 0}', "no 'data' object"),
    ],
)
def test_recorded_calibration_ranges_must_be_finite_json(tmp_path, content, why):
    path = tmp_path / "ranges.json"
    path.write_text(content)
    with pytest.raises(TangoError, match=why):
        check_ranges(path)


def test_calibration_ranges_behind_a_link_are_refused(tmp_path):
    (tmp_path / "real.json").write_text('{"data": {}}')
    (tmp_path / "ranges.json").symlink_to(tmp_path / "real.json")
    with pytest.raises(TangoError, match="not a regular file"):
        check_ranges(tmp_path / "ranges.json")


def _cpuinfo(tmp_path: Path, key: str, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: test\n{key}\t\t: {flags}\n")
    return path


def test_recipes_follow_the_cpu_features(tmp_path, monkeypatch):
    monkeypatch.setattr("platform.machine", lambda: "x86_64")
    vnni = cpu_features(_cpuinfo(tmp_path, "flags", "sse avx2 avx512f avx512_vnni"))
    assert vnni["vnni"] and vnni["x86"]
    first = base_recipes(vnni)[0]
    assert (first.activations, first.weights, first.reduce_range) == ("uint8", "int8", False)
    old = cpu_features(_cpuinfo(tmp_path, "flags", "sse avx2"))
    assert not old["vnni"]
    assert all(r.reduce_range for r in base_recipes(old))  # 7-bit weights without VNNI
    monkeypatch.setattr("platform.machine", lambda: "aarch64")
    arm = cpu_features(_cpuinfo(tmp_path, "Features", "fp asimd asimddp i8mm"))
    assert arm["arm_dot"] and not arm["x86"]
    first = base_recipes(arm)[0]
    assert (first.activations, first.weights, first.reduce_range) == ("int8", "int8", False)
    labels = [r.label for r in base_recipes(arm)]
    assert len(labels) == len(set(labels)) == 8
    assert {(r.activations, r.weights) for r in base_recipes(vnni)} == {
        ("uint8", "int8"),
        ("uint8", "uint8"),
        ("int8", "int8"),
    }
