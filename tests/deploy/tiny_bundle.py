"""A real bundle of a tiny network, made in milliseconds: an (N, 3, SIZE, SIZE) -> (N, 3)
average-pooling ONNX model with its pre- and post-processing, labels and a hashed manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

SIZE = 8


def write_manifest(folder: Path) -> None:
    """(Re)write ``manifest.json`` hashing every file of the bundle folder."""
    names = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*")) if p.is_file()]
    files = {
        name: hashlib.sha256((folder / name).read_bytes()).hexdigest()
        for name in names
        if name != "manifest.json"
    }
    manifest = {
        "schema": "tango-bundle/1",
        "target": "tiny",
        "version": "tiny@v0.0.1",
        "engine": "onnxruntime",
        "model": "model/model.onnx",
        "files": files,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


def tiny_bundle(folder: Path) -> Path:
    """The bundle in ``folder`` (created), hashed; returns ``folder``."""
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["output0"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (folder / "model").mkdir(parents=True)
    onnx.save(model, folder / "model" / "model.onnx")
    documents = {
        "preprocess.json": {"kind": "resize", "size": SIZE, "mean": 0.5, "std": 0.5},
        "postprocess.json": {"task": "classification"},
        "labels.json": ["red", "green", "blue"],
    }
    for name, document in documents.items():
        (folder / name).write_text(json.dumps(document))
    write_manifest(folder)
    return folder
