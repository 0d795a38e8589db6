"""The train stage: train the search's winner fully, resumable, with its curves."""

from __future__ import annotations

from pathlib import Path

import torch

from tango_ci.bench.feasibility import latency_sources
from tango_ci.context import StageContext
from tango_ci.contracts import TrainedModel
from tango_ci.data.dataset import load_split
from tango_ci.models import build_model, count_parameters, trained_model
from tango_ci.report.plots import training_curves
from tango_ci.rundir import display, read_json, read_record, write_json, write_record
from tango_ci.train import checkpoints
from tango_ci.train.baselines import train_baselines
from tango_ci.train.device import device_for
from tango_ci.train.trainer import TrainConfig, evaluate, set_threads, train_model


def load_network(folder: Path) -> torch.nn.Module:
    """The network saved in ``folder`` (``model.json`` and ``best.pt``), in eval mode."""
    info = read_record(TrainedModel, folder)
    if "subnet" in info.shape:  # a subnet specialised from a supernet
        from tango_ci.models import build_subnet

        model = build_subnet(info)
    else:
        model = build_model(info.family, info.shape["level"], len(info.classes))
    model.load_state_dict(torch.load(folder / "best.pt", weights_only=True))
    return model.eval()


def pretrained_path(spec):
    """The spec's local weights file (validated to exist inside the repository)."""
    from tango_ci.spec.loader import find_repo_root
    from tango_ci.spec.paths import resolve_inside

    return resolve_inside(spec.train.pretrained, spec.folder, find_repo_root(spec.folder))


def load_pretrained(model: torch.nn.Module, path) -> int:
    """Copy every tensor of ``path`` whose name and shape match (a new head is kept new)."""
    from tango_ci.exceptions import TangoError

    state = checkpoints.load(path, check=False)  # the user's file: no hash of ours to match
    state = state.get("model", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise TangoError(
            f"{display(path)}: expected a state dict (tensor names to tensors), "
            "as torch.save(model.state_dict()) writes"
        )
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not matching:
        raise TangoError(
            f"{path}: no tensor matches the chosen network "
            f"({type(model).__name__}); weights of another architecture?"
        )
    model.load_state_dict(matching, strict=False)
    return len(matching)


def run(ctx: StageContext) -> None:
    spec, folder = ctx.spec, ctx.folder
    if spec.search.baselines:  # refuse before training when they cannot be measured here
        latency_sources(spec)
    set_threads()
    device = device_for(spec)
    ctx.reporter.log(f"training on {device.name} ({device.precision})")
    best = ctx.run.require("train", "search", "the chosen candidate")
    choice = read_json(ctx.run.stage_dir("search") / "best.json")
    params = choice["params"]
    classes = read_json(ctx.run.stage_dir("data") / "classes.json")
    data = ctx.run.stage_dir("data")
    train, val = load_split(data, "train"), load_split(data, "val")
    torch.manual_seed(spec.search.seed)  # the initial weights too: torch's own seed is random
    model = build_model(params["family"], params["level"], len(classes))
    if spec.train.pretrained:
        loaded = load_pretrained(model, pretrained_path(spec))
        ctx.reporter.log(f"started from {spec.train.pretrained}: {loaded} tensors loaded")
        ctx.recorder.input_file("pretrained", pretrained_path(spec))
    config = TrainConfig(
        epochs=spec.train.epochs,
        batch=params.get("batch", spec.train.batch),
        lr=params.get("lr", spec.train.lr),
        weight_decay=params.get("weight_decay", spec.train.weight_decay),
        patience=spec.train.patience,
        augment=params.get("augment", 0.5),
        seed=spec.search.seed,
    )
    checkpoint_dir = folder / "checkpoints"
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    result = train_model(
        model,
        train,
        val,
        config,
        checkpoint_dir=checkpoint_dir,
        device=device,
        reporter=ctx.reporter,
        description=f"training {params['family']}-{params['level']}",
    )
    if result.resumed_from is not None:
        ctx.reporter.log(f"resumed training at epoch {result.resumed_from + 1}")
    if result.best_state is None:  # train.epochs >= 1, so the first epoch sets it
        raise RuntimeError("training ended without best weights")
    model.load_state_dict(result.best_state)
    accuracy, loss, _ = evaluate(model.to(device.torch), *val)
    model.to("cpu")
    torch.save(result.best_state, folder / "best.pt")
    info = trained_model(
        spec.task,
        params["family"],
        params["level"],
        classes,
        spec.data.image_size,
        parameters=count_parameters(model),
        trial=choice["number"],
    )
    write_record(folder, info)
    write_json(folder / "history.json", result.history)
    metrics = {
        "val_accuracy": accuracy,
        "val_loss": loss,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "resumed_from_epoch": result.resumed_from,
        "config": config.__dict__,
    }
    write_json(folder / "metrics.json", metrics)
    training_curves(
        result.history,
        {"train": "train_loss", "validation": "val_loss"},
        {"train": "train_accuracy", "validation": "val_accuracy"},
        "accuracy",
        folder / "curves.png",
    )
    for name in ("best.pt", "model.json", "history.json", "metrics.json", "curves.png"):
        ctx.recorder.output_file(name.split(".")[0], folder / name)
    ctx.recorder.inputs["search_best"] = {"trial": choice["number"], "search_run": best["run"]}
    ctx.recorder.summary.update(
        {
            "val_accuracy": accuracy,
            "epochs": len(result.history),
            "best_epoch": result.best_epoch,
            "architecture": info.architecture,
            "parameters": info.parameters,
            "device": device.describe(),
        }
    )
    train_baselines(ctx, config, device)
