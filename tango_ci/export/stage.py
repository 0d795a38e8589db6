"""The export stage: ONNX, checked, simplified, and proven equal to PyTorch on real images."""

from __future__ import annotations

from tango_ci.context import StageContext
from tango_ci.contracts import TrainedModel
from tango_ci.data.dataset import load_split, preprocess
from tango_ci.export.onnx_export import export_onnx, parity
from tango_ci.rundir import read_record, write_json
from tango_ci.train.stage import load_network

PARITY_IMAGES = 32


def run(ctx: StageContext) -> None:
    spec, folder = ctx.spec, ctx.folder
    ctx.run.require("export", "train", "trained weights")
    if spec.search.strategy == "supernet":  # each target's subnet is exported as specialised
        ctx.recorder.summary["per_target"] = "specialise/<target>/model.onnx"
        return
    model = load_network(ctx.run.stage_dir("train"))
    size = read_record(TrainedModel, ctx.run.stage_dir("train")).image_size
    path = folder / "model.onnx"
    details = export_onnx(
        model, path, (1, 3, size, size), opset=spec.export.opset, simplify=spec.export.simplify
    )
    images, _ = load_split(ctx.run.stage_dir("data"), "val")
    check = parity(model, path, preprocess(images[:PARITY_IMAGES]), spec.export.tolerance)
    write_json(folder / "parity.json", check)
    ctx.recorder.input_file("weights", ctx.run.stage_dir("train") / "best.pt")
    ctx.recorder.output_file("onnx", path)
    ctx.recorder.output_file("parity", folder / "parity.json")
    ctx.recorder.summary.update({**details, "parity": check})
