"""What is searched for each task: parameters, candidate export, and candidate training.

The search stage drives Optuna, target awareness and resume the same way for every task; a
space only knows its task's models. What the stage asks of a space: ``suggest``, ``key``,
``export``, ``train`` and ``calibration``; optionally ``architectures()`` and ``defaults()``
(each architecture is tried once first, with those hyper-parameters) and ``accuracy_samples``
(the score is an accuracy on that many images: the pruner ignores gaps within its noise, and
a tie is settled by ``train(..., epochs=N)`` with more epochs, see ``finals``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from tango_ci.context import StageContext
from tango_ci.rundir import write_record
from tango_ci.train.device import TrainDevice

BATCH_CHOICES = (16, 32, 64)
CALIBRATION_IMAGES = 64
#: the learning rates searched, as factors of ``train.lr``: AdamW's useful range is narrow and
#: network-dependent (on 12-class glyphs resnet-m reaches 0.35 validation accuracy after three
#: epochs at lr 0.002, 0.26 at 0.001 and chance at 0.004), so the search stays near the
#: project's own rate instead of a fixed 1e-3..3e-2
LR_FACTORS = (0.2, 2.0)
AUGMENT = 0.5  # the trainer's default strength


class ClassificationSpace:
    score_name = "val_accuracy"

    def __init__(self, ctx: StageContext, device: TrainDevice) -> None:
        from tango_ci.data.dataset import load_split, preprocess
        from tango_ci.rundir import read_json

        self.spec = ctx.spec
        self.device = device
        self.classes = read_json(ctx.run.stage_dir("data") / "classes.json")
        self.train_data = load_split(ctx.run.stage_dir("data"), "train")
        self.val_data = load_split(ctx.run.stage_dir("data"), "val")
        #: the images behind each score (an accuracy): pruning ignores gaps within their noise
        self.accuracy_samples = len(self.val_data[1])
        images = self.train_data[0]
        rng = np.random.default_rng(self.spec.search.seed)
        pick = rng.choice(len(images), min(CALIBRATION_IMAGES, len(images)), False)
        self.calibration = preprocess(images[pick])
        self.image_size = self.spec.data.image_size

    def suggest(self, trial) -> dict:
        search, train = self.spec.search, self.spec.train
        low, high = (train.lr * f for f in LR_FACTORS)
        decay = (min(1e-5, train.weight_decay), max(1e-3, train.weight_decay))
        return {
            "family": trial.suggest_categorical("family", list(search.families)),
            "level": trial.suggest_categorical("level", list(search.levels)),
            "lr": trial.suggest_float("lr", low, high, log=True),
            "weight_decay": trial.suggest_float("weight_decay", *decay, log=True)
            if train.weight_decay > 0
            else trial.suggest_float("weight_decay", 0.0, 1e-3),
            "batch": trial.suggest_categorical("batch", sorted({*BATCH_CHOICES, train.batch})),
            "augment": trial.suggest_float("augment", 0.0, 1.0),
        }

    def defaults(self) -> dict:
        """The hyper-parameters each architecture is first tried with: the project's own
        training settings, so the first comparison of architectures is a fair one (a random
        learning rate each would compare learning rates instead)."""
        train = self.spec.train
        return {
            "lr": train.lr,
            "weight_decay": train.weight_decay,
            "batch": train.batch,
            "augment": AUGMENT,
        }

    def architectures(self) -> list[dict]:
        """Every distinct architecture ``suggest`` can give, as its categorical params."""
        search = self.spec.search
        return [{"family": f, "level": level} for f in search.families for level in search.levels]

    def key(self, params: dict) -> str:
        """Candidates with the same key have the same latency (architecture and input)."""
        return f"{params['family']}-{params['level']}"

    def export(self, params: dict, workdir: Path) -> tuple[Path, Path, int, dict]:
        """The untrained candidate as ONNX (and as the train stage saves it)."""
        import torch

        from tango_ci.export import export_onnx
        from tango_ci.models import build_model, count_parameters, get_family, trained_model

        model = build_model(params["family"], params["level"], len(self.classes))
        workdir.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), workdir / "best.pt")
        write_record(
            workdir,
            trained_model(
                self.spec.task, params["family"], params["level"], self.classes, self.image_size
            ),
        )
        onnx_path = workdir / "model.onnx"
        export_onnx(
            model,
            onnx_path,
            (1, 3, self.image_size, self.image_size),
            opset=self.spec.export.opset,
            simplify=self.spec.export.simplify,
        )
        return (
            onnx_path,
            workdir,
            self.image_size,
            {
                "parameters": count_parameters(model),
                "architecture": get_family(params["family"]).describe(params["level"]),
            },
        )

    def train(
        self, params: dict, number: int, on_epoch: Callable, reporter, epochs: int | None = None
    ) -> float:
        """Train a candidate for ``epochs`` (the search's by default); its best validation
        accuracy."""
        import torch

        from tango_ci.models import build_model
        from tango_ci.train.trainer import TrainConfig, train_model

        # every candidate from the initial weights the train stage would give it: trials then
        # differ in what they were given, not in the luck of their draw
        torch.manual_seed(self.spec.search.seed)
        model = build_model(params["family"], params["level"], len(self.classes))
        config = TrainConfig(
            epochs=epochs or self.spec.search.epochs,
            batch=params["batch"],
            lr=params["lr"],
            weight_decay=params["weight_decay"],
            augment=params["augment"],
            seed=self.spec.search.seed,
        )
        result = train_model(
            model,
            self.train_data,
            self.val_data,
            config,
            on_epoch=on_epoch,
            device=self.device,
            reporter=reporter,
            description=f"trial {number} {self.key(params)}",
        )
        return result.best_accuracy
