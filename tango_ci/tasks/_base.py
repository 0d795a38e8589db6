"""A task (classification, detection, ...): what differs by task, behind one interface.

Stages, engines and reports ask the task instead of comparing its name. Abstract methods are
what every task must give; the others are hooks with a sensible default.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

    from tango_ci.context import StageContext

#: A stage function: does its work in ``ctx.folder`` and records it in ``ctx.recorder``.
StageFunction = Callable[["StageContext"], None]


@dataclass(frozen=True)
class QualityMetric:
    """The task's headline metric: its key in the evaluator's results and how people read it."""

    name: str  # accuracy, map50
    label: str  # accuracy, mAP50
    higher_is_better: bool = True


def evaluation_split(data_dir: Path) -> str:
    """The split the gate reads: ``test`` when the data stage saved one (``test.npz``), else
    ``val``."""
    return "test" if (data_dir / "test.npz").is_file() else "val"


class Evaluator(abc.ABC):
    """Scores artifacts of one trained network in the task's metrics, on the test split (the
    validation split when the run has none)."""

    quality: QualityMetric
    #: the split it scores on: "test", or "val" when the run has no test split
    split: str
    #: how many images that split holds
    size: int

    @property
    @abc.abstractmethod
    def reference(self) -> float:
        """The quality of the trained network in PyTorch fp32 on the same images."""

    @abc.abstractmethod
    def evaluate(self, predictor: Any, batch: int) -> dict:
        """Every metric of the task; ``quality.name`` among them."""

    @property
    def reference_metrics(self) -> dict[str, float]:
        """The reference's headline metrics (the report shows them beside each artifact's)."""
        return {self.quality.name: self.reference}

    #: the evaluation images timed end to end (after one warm-up batch)
    END_TO_END_IMAGES = 64

    def deployment(self) -> tuple[Callable, Callable, dict] | None:
        """How a device runs the network: pre-processing (uint8 images in, network input out),
        post-processing (raw outputs in, answers out) and the settings they use; None where
        the task does not say, and then bench reports no end-to-end latency."""
        return None

    def end_to_end(self, predictor: Any, batch: int) -> dict | None:
        """Per-image milliseconds of pre-processing, network and post-processing, timed here
        on the evaluation images at the deployment settings: medians of each and the p50 and
        p95 of their sum."""
        import time

        import numpy as np

        from tango_ci.bench.accuracy import fixed_batches

        stages = self.deployment()
        images = getattr(self, "images", None)
        if stages is None or images is None or not len(images):
            return None
        pre, post, settings = stages
        parts: dict[str, list[float]] = {"pre": [], "network": [], "post": []}
        chunks = list(fixed_batches(images[: self.END_TO_END_IMAGES + batch], batch))
        for index, (chunk, real) in enumerate(chunks):
            began = time.perf_counter()
            x = pre(chunk)
            ran = time.perf_counter()
            raw = predictor.run(x)
            done = time.perf_counter()
            post(raw, real)
            ended = time.perf_counter()
            if index == 0 and len(chunks) > 1:
                continue  # warm-up: first-run allocations are not what a device pays
            for name, seconds in (
                ("pre", ran - began),
                ("network", done - ran),
                ("post", ended - done),
            ):
                parts[name].append(seconds * 1000.0 / batch)
        total = np.sum([parts[k] for k in parts], axis=0)
        return {
            **{f"{k}_ms": float(np.median(v)) for k, v in parts.items()},
            "p50_ms": float(np.percentile(total, 50)),
            "p95_ms": float(np.percentile(total, 95)),
            "images": len(total) * batch,
            "settings": settings,
        }


class BaseTask(abc.ABC):
    name: ClassVar[str]
    #: model families this task's search can draw from (first is the default order)
    families: ClassVar[tuple[str, ...]]
    #: weight-sharing families a supernet search trains once (``search.strategy: supernet``)
    elastic_families: ClassVar[tuple[str, ...]] = ()
    #: whether the train stage trains ``search.baselines`` beside the search's winner
    trains_baselines: ClassVar[bool] = False
    #: the data stage reads ``gate.challenger``'s folders and its evaluator scores them, so the
    #: gate can compare production and the new model on new data and a frozen holdout
    challenger_data: ClassVar[bool] = False
    #: data formats the task reads (``data.format`` in the project file)
    data_formats: ClassVar[tuple[str, ...]]
    quality: ClassVar[QualityMetric]
    #: task metrics the gate can compare with production, besides latency_ms; first = default
    gate_metrics: ClassVar[tuple[str, ...]]

    #: how people read the task's metric names (``gate.metric`` values and metric keys)
    metric_labels: ClassVar[Mapping[str, str]] = {}

    # ------------------------------------------------------------------ declarations
    def metric_label(self, name: str) -> str:
        """``map50`` -> ``mAP50``: a metric key as reports show it."""
        if name == self.quality.name:
            return self.quality.label
        return self.metric_labels.get(name, name)

    def data_problem(self, data_format: str, path: Path) -> str | None:
        """Why ``path`` is not a dataset of ``data_format``, or None."""
        return None

    def lineage(self, model: Any) -> str:
        """What stays the same across retrains of "the same architecture" (a ``TrainedModel``);
        the registry bumps the minor version when it changes, the patch version otherwise."""
        return str(model.name)

    # ------------------------------------------------------------------ stages
    @abc.abstractmethod
    def stages(self) -> Mapping[str, StageFunction]:
        """The task's own stage functions: ``data``, ``train`` and ``export``."""

    def prepare(self, ctx: StageContext) -> None:
        """Set up what the task's libraries need before any of its stages (a no-op here)."""

    @abc.abstractmethod
    def search_space(self, ctx: StageContext, device: Any) -> Any:
        """The search space of this task (see :mod:`tango_ci.search.spaces`)."""

    @abc.abstractmethod
    def calibration(self, ctx: StageContext, count: int) -> np.ndarray:
        """A seeded sample of training inputs, preprocessed as the network takes them."""

    @abc.abstractmethod
    def evaluator(self, ctx: StageContext, model_dir: Path, split: str | None = None) -> Evaluator:
        """Scores artifacts of the network in ``model_dir`` (``RunDir.model_dir(target)``) on
        ``split``; by default the test split, or the validation split when the run has none
        (``engine: auto``'s recipe search asks for ``val``: the test split stays the gate's)."""

    def split_images(self, run: Any, split: str) -> np.ndarray | None:
        """The uint8 HWC images of ``split`` of ``run`` at the network's input size, as the
        data stage kept them; None where the task keeps none."""
        return None

    def reference_images(self, run: Any, limit: int = 500) -> tuple[np.ndarray, str] | None:
        """Up to ``limit`` images training never fitted (validation and test) and their
        splits: the reference a deployed model's answers are monitored against."""
        import numpy as np

        data = run.stage_dir("data")
        splits = [s for s in ("val", "test") if (data / f"{s}.npz").is_file()]
        arrays = [a for a in (self.split_images(run, s) for s in splits) if a is not None]
        if not splits or len(arrays) != len(splits):
            return None
        return np.concatenate(arrays)[:limit], "+".join(splits)

    def reference_from_data(self, spec: Any, limit: int = 500) -> tuple[np.ndarray, str] | None:
        """The reference of a version deployed from its pulled artifact (its run is elsewhere):
        up to ``limit`` validation and test images of the project's data as the spec splits it
        (those training never fitted, as :meth:`reference_images` takes from a run); None
        where the task cannot say or the data is not here."""
        return None

    def labelling(self, spec: Any) -> tuple[Path, list[str], bool] | None:
        """Where imported labels go for project ``spec``: the data folder, the class names in
        order, and whether labels are boxes; None where the task takes no imports."""
        return None

    def bundle_specs(self, spec: Any, model: Any) -> tuple[dict, dict] | None:
        """``preprocess.json`` and ``postprocess.json`` of a deployment bundle for the trained
        network ``model`` (a TrainedModel) of project ``spec``, in the runtime's terms
        (:mod:`tango_ci.runtime`); None where the task cannot be bundled."""
        return None

    @abc.abstractmethod
    def load_trained(self, folder: Path) -> nn.Module:
        """The network saved in ``folder`` (``model.json`` and ``best.pt``), in eval mode."""

    # ------------------------------------------------------------------ reports
    def training_summary(self, training: Mapping[str, Any]) -> str:
        """One phrase for the report: the trained network's validation quality."""
        value = training.get(f"val_{self.quality.name}")
        return f"validation {self.quality.label} {value:.4f}" if value is not None else ""

    def report_details(
        self, ctx: StageContext, target: str, metrics: Mapping[str, Any], title: str, folder: Path
    ) -> tuple[list[str], dict[str, str]]:
        """Markdown lines and plots (name -> file in ``folder``) of one target's quality."""
        return [], {}

    # ------------------------------------------------------------------ synthetic data
    def synthesize(
        self, out: Path, request: Any, progress: Callable[[int, int], None] | None
    ) -> None:
        """Write a synthetic dataset of this task to ``out`` (a fresh folder)."""
        from tango_ci.exceptions import TangoError

        raise TangoError(f"no synthetic data for task '{self.name}'")

    def count_synthetic(self, out: Path, request: Any) -> dict[str, int]:
        return {}


__all__ = ["BaseTask", "Evaluator", "QualityMetric", "StageFunction", "evaluation_split"]
