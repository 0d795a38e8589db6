"""Active learning against random on the shift of benchmarks/continual.py.

A small network (``--family``/``--level`` at ``--size`` px, the project's own builder and
trainer) learns the synthetic shapes, unshifted. Then the shift of ``continual.py`` arrives
(``--shift``, default ``dim``; its ``shifted()``). From a pool of shifted images, each strategy
of ``tango label queue`` (entropy, margin, least-confidence, bald, coreset, random) picks K to
label through ``tango_ci.labelling.choose``, given records shaped as the prediction log holds
them (the answers' probabilities and the runtime's input statistics; bald: MC-dropout scores
of the same network). The network is then fine-tuned from its trained weights on its training
images plus the K labelled ones, the same epochs and settings for every strategy, and its
final weights (nothing is selected on shifted data) are scored on a separate shifted test set.

The network is trained once (seed 0), as the one in production would be. Each cell is the
median of three seeds; a seed draws the pool, orders the fine-tuning batches, and seeds
random's draw and bald's dropout masks. The same fine-tuning without any new label is quoted
beside them, so that what the labels add is told apart from what more training does. Quoted
whoever wins, random included.

    python benchmarks/active_learning.py [--shift dim] [--budgets 25,50,100] [--seeds 0,1,2]

Writes benchmarks/results/active_learning.json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT
from continual import SHIFTS, shifted

from tango_ci.bench.latency import host_facts
from tango_ci.data.dataset import preprocess
from tango_ci.data.synth import SHAPES, shape_image
from tango_ci.labelling import choose
from tango_ci.labelling.bald import bald_scores
from tango_ci.models import build_model
from tango_ci.runtime.logs import input_summary
from tango_ci.train.trainer import TrainConfig, evaluate, train_model

STRATEGIES = ("entropy", "margin", "least-confidence", "bald", "coreset", "random")


def shapes(seed: int, count: int, size: int, shift: str | None) -> tuple[np.ndarray, np.ndarray]:
    """``count`` shape images (classes in turn), shifted by ``shift`` unless it is None."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype=np.int64) % len(SHAPES)
    images = [np.asarray(shape_image(rng, SHAPES[label], size)) for label in labels]
    if shift is not None:
        images = [shifted(image, shift, rng) for image in images]
    return np.stack(images), labels


@torch.no_grad()
def log_records(model: torch.nn.Module, images: np.ndarray) -> list[dict]:
    """What the prediction log would hold for each image: the answer and input statistics."""
    model.eval()
    logits = model(torch.from_numpy(preprocess(images)))
    probabilities = torch.softmax(logits.double(), 1).numpy()
    records = []
    for image, p in zip(images, probabilities, strict=True):
        digest, summary = input_summary(None, image)
        records.append(
            {
                "input_hash": digest,
                "model_version": "base",
                "outputs": {"class": int(p.argmax()), "probabilities": p.tolist()},
                "input_summary": summary,
            }
        )
    return records


def fine_tune(base: dict, args, data, val, test, seed: int) -> float:
    """Accuracy on ``test`` after fine-tuning ``base`` weights on ``data``."""
    model = build_model(args.family, args.level, len(SHAPES))
    model.load_state_dict(base)
    config = TrainConfig(epochs=args.epochs, batch=64, lr=args.lr, seed=seed)
    train_model(model, data, val, config)
    return evaluate(model, *test)[0]


def train_base(args, test, unshifted_test):
    """The network in production: trained on unshifted images, its best weights by val."""
    train = shapes(10, args.train, args.size, None)
    val = shapes(20, args.val, args.size, None)
    torch.manual_seed(0)
    model = build_model(args.family, args.level, len(SHAPES))
    config = TrainConfig(epochs=args.base_epochs, batch=64, lr=args.base_lr, seed=0)
    trained = train_model(model, train, val, config)
    assert trained.best_state is not None  # at least one epoch ran
    model.load_state_dict(trained.best_state)
    figures = {
        "val_accuracy": trained.best_accuracy,
        "unshifted_test_accuracy": evaluate(model, *unshifted_test)[0],
        "shifted_test_accuracy": evaluate(model, *test)[0],
    }
    print(f"base network: {figures}", flush=True)
    return model, trained.best_state, train, val, figures


def replicate(args, seed: int, network, test) -> dict:
    """One seed: draw a pool, and fine-tune with every strategy's picks (and with none)."""
    model, base, train, val = network
    pool_images, pool_labels = shapes(30 + seed, args.pool, args.size, args.shift)
    records = log_records(model, pool_images)
    wrong = np.asarray([r["outputs"]["class"] for r in records]) != pool_labels
    bald = bald_scores(model, pool_images, samples=args.samples, seed=seed)
    without_labels = fine_tune(base, args, train, val, test, seed)
    cells: dict[str, dict[str, dict]] = {s: {} for s in STRATEGIES}
    for strategy in STRATEGIES:
        for budget in args.budgets:
            picked = choose(records, budget, strategy, seed, bald if strategy == "bald" else None)
            data = (
                np.concatenate([train[0], pool_images[picked]]),
                np.concatenate([train[1], pool_labels[picked]]),
            )
            accuracy = fine_tune(base, args, data, val, test, seed)
            cells[strategy][str(budget)] = {
                "accuracy": accuracy,
                "base_errors_picked": int(wrong[picked].sum()),
                "classes_picked": np.bincount(pool_labels[picked], minlength=3).tolist(),
            }
            print(f"seed {seed} {strategy:>16} K={budget:<4} accuracy {accuracy:.4f}", flush=True)
    return {
        "seed": seed,
        "pool_base_errors": int(wrong.sum()),
        "fine_tuned_without_labels": without_labels,
        "cells": cells,
    }


def parse_list(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shift", choices=SHIFTS, default="dim")
    parser.add_argument("--budgets", type=parse_list, default=[25, 50, 100])
    parser.add_argument("--seeds", type=parse_list, default=[0, 1, 2])
    parser.add_argument("--family", default="resnet")
    parser.add_argument("--level", default="s")
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--train", type=int, default=1500, help="unshifted training images")
    parser.add_argument("--val", type=int, default=150, help="unshifted validation images")
    parser.add_argument("--pool", type=int, default=600, help="shifted unlabelled pool")
    parser.add_argument("--test", type=int, default=1500, help="shifted test images")
    parser.add_argument("--base-epochs", type=int, default=20)
    parser.add_argument("--base-lr", type=float, default=0.006)
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs")
    parser.add_argument("--lr", type=float, default=0.001, help="fine-tuning learning rate")
    parser.add_argument("--samples", type=int, default=20, help="bald's MC-dropout passes")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    test = shapes(3, args.test, args.size, args.shift)
    unshifted_test = shapes(3, args.test, args.size, None)  # the same scenes, unshifted
    model, base_state, train, val, base = train_base(args, test, unshifted_test)
    network = (model, base_state, train, val)
    replicates = [replicate(args, seed, network, test) for seed in args.seeds]

    def median(values) -> float:
        return statistics.median(values)

    medians = {
        s: {
            str(k): median(r["cells"][s][str(k)]["accuracy"] for r in replicates)
            for k in args.budgets
        }
        for s in STRATEGIES
    }
    results = {
        "benchmark": "active_learning",
        "shift": args.shift,
        "network": f"{args.family}-{args.level}",
        "image_size": args.size,
        "sizes": {k: getattr(args, k) for k in ("train", "val", "pool", "test")},
        "base_training": {"epochs": args.base_epochs, "lr": args.base_lr, "batch": 64},
        "fine_tune": {"epochs": args.epochs, "lr": args.lr, "batch": 64, "weights": "final"},
        "bald": {"samples": args.samples, "p": 0.5},
        "budgets": args.budgets,
        "seeds": args.seeds,
        "base": base,
        "median_accuracy": medians,
        "beats_random": beats_random(medians, args.budgets),
        "replicates": replicates,
        "wall_s": round(time.perf_counter() - began, 1),
        "host": host_facts(args.threads),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "active_learning.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    (args.out / "active_learning.md").write_text(text)
    print(text)


def beats_random(medians: dict, budgets: list[int]) -> dict[str, list[str]]:
    """Per K, the strategies whose median is above random's."""
    return {
        str(k): [
            s
            for s in STRATEGIES
            if s != "random" and medians[s][str(k)] > medians["random"][str(k)]
        ]
        for k in budgets
    }


def markdown(results: dict) -> str:
    budgets, replicates, base = results["budgets"], results["replicates"], results["base"]
    host, sizes, tune = results["host"], results["sizes"], results["fine_tune"]

    def cell(strategy: str, k: int) -> str:
        runs = [r["cells"][strategy][str(k)] for r in replicates]
        values = [run["accuracy"] for run in runs]
        errors = statistics.median(run["base_errors_picked"] for run in runs)
        median = results["median_accuracy"][strategy][str(k)]
        return f"**{median:.3f}** ({min(values):.3f}–{max(values):.3f}; {errors:g} wrong)"

    wins = [f"{', '.join(s)} at K = {k}" for k, s in results["beats_random"].items() if s]
    verdict = (
        "Strategies whose median is above random's: " + "; ".join(wins) + "."
        if wins
        else "**No strategy beats random** at any K."
    )

    def values(strategy: str, k: int) -> list[float]:
        return [r["cells"][strategy][str(k)]["accuracy"] for r in replicates]

    clear = [
        f"{s} at K = {k}"
        for k in budgets
        for s in results["beats_random"][str(k)]
        if min(values(s, k)) > max(values("random", k))
    ]
    without = [r["fine_tuned_without_labels"] for r in replicates]
    lines = [
        f"# Active learning against random on the `{results['shift']}` shift\n",
        f"{results['network']} at {results['image_size']} px, trained "
        f"{results['base_training']['epochs']} epochs on {sizes['train']} unshifted shape "
        f"images: test accuracy {base['unshifted_test_accuracy']:.3f} unshifted and "
        f"**{base['shifted_test_accuracy']:.3f}** under the shift of `benchmarks/continual.py`, "
        "with no labels. Each strategy picks K of "
        f"{sizes['pool']} shifted pool images to label; the network is fine-tuned from its "
        f"weights on its training images plus those K ({tune['epochs']} epochs, lr "
        f"{tune['lr']}, final weights, the same for every strategy) and scored on "
        f"{sizes['test']} shifted test images. Fine-tuned the same way with no new label: "
        f"**{statistics.median(without):.3f}** ({min(without):.3f}–{max(without):.3f}).\n",
        f"Median accuracy of seeds {', '.join(map(str, results['seeds']))} (their range; the "
        "median count of picked images the network had answered wrongly, of "
        f"{statistics.median(r['pool_base_errors'] for r in replicates):g} in the pool). bald: "
        f"{results['bald']['samples']} MC-dropout passes, p = {results['bald']['p']}.\n",
        "| strategy | " + " | ".join(f"K = {k}" for k in budgets) + " |",
        "|---|" + "---|" * len(budgets),
    ]
    lines += [f"| {s} | " + " | ".join(cell(s, k) for k in budgets) + " |" for s in STRATEGIES]
    if base["unshifted_test_accuracy"] < 0.9:  # the example project's gate: min_accuracy 0.9
        lines += ["", "**The base network is below 0.9 unshifted: not one a gate would deploy.**"]
    lines += [
        "",
        verdict + f" One test image is {1 / sizes['test']:.4f}. Above random in every seed, even "
        f"random's best: {'; '.join(clear) if clear else 'none'}; the rest is within the "
        "spread of seeds.",
        "",
        f"{host['cpu']}, {host['threads']} torch threads; {results['wall_s'] / 60:.1f} min.",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
