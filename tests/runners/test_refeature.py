"""Measurements taken before an engine's feature set changed are read again from their samples,
nothing timed; until they are, the fit leaves them out."""

from __future__ import annotations

import json
from pathlib import Path

from tango_ci.latency.features import network_features
from tango_ci.latency.records import append_record, read_measurements
from tango_ci.profiling.fit import usable
from tango_ci.profiling.networks import write_sample
from tango_ci.profiling.refeature import refresh_features, stale
from tango_ci.profiling.sample import ProfileSample, design


def _network() -> ProfileSample:
    return next(
        s for s in design(blocks=0, networks=6, with_yolo=False) if s.spec["kind"] == "family"
    )


def test_old_pytorch_records_are_read_again_with_the_eager_set(tmp_path: Path) -> None:
    sample = _network()
    onnx_path, _ = write_sample(sample, tmp_path / "built")
    old = network_features(onnx_path, sample.batch, sample.size)  # the ONNX graph's
    path = tmp_path / "pytorch-fp32.measurements.jsonl"
    common = {"kind": "network", "sample": sample.spec, "cpu": "x", "features": old}
    append_record(path, {"id": sample.id, **common, "p50_ms": 3.25})
    append_record(path, {"id": "f" * 16, "failed": "did not build", **common})
    records = read_measurements(path)
    assert [stale(r, "pytorch", 1) for r in records] == [True, False]  # a failure stays one
    assert not stale(records[0], "onnxruntime", 1)
    networks, _, counts = usable(records, "x", "pytorch", 1)
    assert networks == [] and counts["stale_features"] == 1

    assert refresh_features(path, "pytorch", 1, records, {}) == 0  # not of this design: not built
    assert refresh_features(path, "pytorch", 1, records, {sample.id: sample}) == 1
    again = read_measurements(path)
    assert again == records  # the file holds what the caller now holds
    first = again[0]
    assert first["feature_set"] == "pytorch-eager-1t" and first["p50_ms"] == 3.25
    assert first["features"]["batchnormalization"][0] > old.get("batchnormalization", [0])[0]
    assert again[1]["features"] == old  # the failed record untouched
    assert usable(again, "x", "pytorch", 1)[0] == [first]
    assert refresh_features(path, "pytorch", 1, again, {sample.id: sample}) == 0  # none left
    assert not list(tmp_path.glob("*.partial"))


def test_a_record_whose_network_no_longer_builds_stays_out_of_the_fit(tmp_path: Path) -> None:
    """The design's own description is built, never the file's (it can come from a pull
    request): here the design's sample names a family this version lacks."""
    broken = ProfileSample({"kind": "family", "family": "no-such", "level": 0, "size": 32})
    path = tmp_path / "pytorch-fp32.measurements.jsonl"
    record = {
        "id": broken.id,
        "kind": "network",
        "sample": {"kind": "family", "family": "resnet", "level": 0, "size": 32},
        "cpu": "x",
        "features": {"conv-k3-s1": [1.0, 2.0, 3.0]},
        "p50_ms": 1.0,
    }
    path.write_text(json.dumps(record) + "\n")
    records = read_measurements(path)
    assert refresh_features(path, "pytorch", 1, records, {broken.id: broken}) == 0
    assert stale(read_measurements(path)[0], "pytorch", 1)
    assert usable(records, "x", "pytorch", 1)[0] == []
