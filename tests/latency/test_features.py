"""What a latency model reads from an ONNX network: kernels keyed by type, with their
multiply-accumulates counted by hand here, and one-line refusals of files that are not one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tango_ci.latency import FeatureError, kernels, network_features
from tango_ci.latency.features import aggregate, total_macs
from tests.latency.networks import SIZE, expected_macs, export_tiny, export_tiny_open_size


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture(scope="module")
def open_size_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_open_size(tmp_path_factory.mktemp("open") / "open.onnx")


def coarse(key: str) -> str:
    """A key cut to what this test pins: kind, kernel and stride (``conv-k3-s2``) for
    convolutions, the kind (``linear``) for a matrix product, the whole key otherwise."""
    parts = key.split("-")
    return "-".join(parts[:3]) if parts[0].endswith("conv") else parts[0]


def macs_by_key(path: Path, batch: int = 1, size: int | None = None) -> dict[str, float]:
    """Multiply-accumulates per coarse key (the finest key's channel and size parts dropped)."""
    totals: dict[str, float] = {}
    for kernel in kernels(path, batch, size):
        totals[coarse(kernel.key)] = totals.get(coarse(kernel.key), 0.0) + kernel.macs
    return totals


def test_kernels_are_keyed_by_type_in_graph_order(tiny_onnx: Path) -> None:
    found = kernels(tiny_onnx)
    keys = [coarse(k.key) for k in found]
    assert keys[:4] == ["conv-k3-s2", "relu", "dwconv-k5-s1", "add"]
    assert keys[-1] == "linear"
    assert found[1].key == "relu-fused"  # right after the convolution: engines fuse it
    assert [k.kind for k in found] == [k.split("-")[0] for k in keys]


def test_the_finest_keys_carry_channels_and_output_size(tiny_onnx: Path) -> None:
    """conv: the narrower of in and out channels (3 -> 4), output height 8, each rounded up to
    a power of two; depthwise: its channels; linear: its depth."""
    keys = {coarse(k.key): k.key for k in kernels(tiny_onnx)}
    assert keys["conv-k3-s2"] == "conv-k3-s2-c4-h8"
    assert keys["dwconv-k5-s1"] == "dwconv-k5-s1-c8-h8"
    assert keys["linear"] == "linear-c8"


@pytest.mark.parametrize("batch", [1, 2])
def test_multiply_accumulates_are_counted_by_hand(tiny_onnx: Path, batch: int) -> None:
    found = macs_by_key(tiny_onnx, batch)
    for key, macs in expected_macs(SIZE, batch).items():
        assert found[key] == pytest.approx(macs), key
    assert found["relu"] == 0.0 and found["add"] == 0.0
    # activations moved, not weights: the stem reads 3x16x16 and writes 8x8x8 per image
    [stem] = [k for k in kernels(tiny_onnx, batch) if k.kind == "conv"]
    assert stem.elems == batch * (3 * SIZE * SIZE + 8 * (SIZE // 2) ** 2)


def test_batch_two_is_twice_the_work_of_batch_one(tiny_onnx: Path) -> None:
    one, two = network_features(tiny_onnx, 1), network_features(tiny_onnx, 2)
    assert one.keys() == two.keys()
    for key in one:
        assert two[key][0] == one[key][0]  # as many calls
        assert two[key][1] == pytest.approx(2 * one[key][1])
        assert two[key][2] == pytest.approx(2 * one[key][2])
    assert total_macs(two) == pytest.approx(2 * sum(expected_macs(SIZE).values()) / 1e6)


def test_aggregate_sums_per_key_and_folds_keys_into_their_column(tiny_onnx: Path) -> None:
    found = kernels(tiny_onnx)
    convolutions = [k.key for k in found if k.kind in ("conv", "dwconv")]
    folded = aggregate(found, dict.fromkeys(convolutions, "conv"))
    macs = expected_macs(SIZE)
    assert folded["conv"][0] == 2
    assert folded["conv"][1] == pytest.approx((macs["conv-k3-s2"] + macs["dwconv-k5-s1"]) / 1e6)
    assert not set(convolutions) & set(folded)
    assert sum(row[0] for row in folded.values()) == len(found)


def test_a_static_graph_ignores_the_size(tiny_onnx: Path) -> None:
    assert macs_by_key(tiny_onnx, size=64) == macs_by_key(tiny_onnx)


def test_an_open_image_size_takes_the_size_asked(open_size_onnx: Path) -> None:
    small = macs_by_key(open_size_onnx, size=SIZE)
    large = macs_by_key(open_size_onnx, size=2 * SIZE)
    for key in ("conv-k3-s2", "dwconv-k5-s1"):
        assert small[key] == pytest.approx(expected_macs(SIZE)[key])
        assert large[key] == pytest.approx(4 * small[key])
    assert large["linear"] == small["linear"]  # after the global pool the size is gone
    assert macs_by_key(open_size_onnx, batch=2, size=SIZE)["conv-k3-s2"] == pytest.approx(
        2 * small["conv-k3-s2"]
    )


def test_an_open_image_size_without_a_size_is_refused(open_size_onnx: Path) -> None:
    with pytest.raises(FeatureError):
        kernels(open_size_onnx)


def _refusal(path: Path) -> str:
    with pytest.raises(FeatureError) as refused:
        kernels(path)
    message = str(refused.value)
    assert "\n" not in message
    return message


def test_a_file_that_is_not_onnx_is_refused_in_one_line(tmp_path: Path) -> None:
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\xffnot an onnx model\nsecond line\n")
    message = _refusal(junk)
    assert message.startswith(f"{junk}: ") and "not an ONNX model" in message


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    assert _refusal(empty).startswith(f"{empty}: ")


def test_a_symlink_is_refused_even_to_a_good_network(tiny_onnx: Path, tmp_path: Path) -> None:
    link = tmp_path / "link.onnx"
    os.symlink(tiny_onnx, link)
    message = _refusal(link)
    assert message.startswith(f"{link}: ") and "not a regular file" in message


@pytest.mark.parametrize("name", ["", "missing.onnx", "."])
def test_an_empty_or_missing_path_or_a_folder_is_refused(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    message = _refusal(Path(name))
    assert message.startswith(f"{Path(name)}: ") and "not a regular file" in message


def _model_with_op(tmp_path: Path, op_type: bytes) -> Path:
    from onnx import TensorProto, helper

    def info(name: str):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [1, 4])

    node = helper.make_node("Zzz", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [info("x")], [info("y")])
    data = helper.make_model(graph).SerializeToString()
    path = tmp_path / "op.onnx"
    path.write_bytes(data.replace(b"Zzz", op_type))
    return path


def test_an_unknown_operator_is_keyed_by_its_name(tmp_path: Path) -> None:
    [kernel] = kernels(_model_with_op(tmp_path, b"Zzz"))
    assert kernel.key == "zzz" and kernel.macs == 0.0 and kernel.elems == 8.0


def test_an_operator_name_that_is_not_utf8_is_refused_in_one_line(tmp_path: Path) -> None:
    path = _model_with_op(tmp_path, b"Z\xb1z")
    try:
        found = kernels(path)
    except FeatureError as refused:
        assert "\n" not in str(refused) and str(path) in str(refused)
    else:  # or keyed as plain letters and digits
        assert all(k.key.isascii() and k.key.isalnum() for k in found)
