"""One supernet specialised per budget against per-target search, on glyphs (12 classes).

Issue acceptance: "`benchmarks/supernet.py` on a harder synthetic set than the shapes example
(at least 10 classes) writes, for three latency budgets: (a) the specialised subnet with and
without fine-tuning, (b) the same architecture trained from scratch with equal epochs, (c)
`strategy: trials` at equal wall-clock, (d) the best fixed family/level that fits the budget;
and the total compute for 1, 3 and 10 targets, supernet against per-target search. Goal: (a) >=
(d) at every budget and (a) within 1 point of (b)."

Everything runs through `tango_ci.api.run` in a temporary git repository. The p95 budgets
(onnxruntime fp32, this host) lie 25/50/90% of the way from the smallest subnet's latency to
the largest's (timed untrained: latency does not depend on weights). (a) one supernet, trained
once, specialised per budget with fine-tuning; without it: the chosen subnet with inherited
weights and BatchNorm recalibrated as specialisation scored it. (b) that architecture from a
fresh initialisation for the supernet's epochs. (c) a `strategy: trials` project per budget,
`search.timeout_s` = the supernet's wall clock (training + specialisation) / 3, its winner then
trained for the same epochs. (e) the same without a time limit: `search.trials` 12, the
acceptance's "with strategy: trials on that set, the chosen model is within 1 point of the best
fixed baseline that fits each budget". (d) resnet, mobilenetv3, densenet at xs/s/m trained for the same
epochs where their p95 fits the loosest budget; per budget the fitting one with the best
validation accuracy. One test split for all (same images and split seed; no choice reads it).
Compute: supernet training + N specialisations against N searches (search + winner training),
measured for 3 targets and scaled to 1 and 10 from the per-target means.

    .venv/bin/python benchmarks/supernet.py            # about 25 minutes on an idle 2-core CPU
    .venv/bin/python benchmarks/supernet.py --quick    # about 5 minutes, fewer images/epochs
    .venv/bin/python benchmarks/supernet.py --trials-only  # (c) and (e) again, for the budgets
        # of the last results (the same data; (a), (b), (d) kept): after a change to the search

Writes benchmarks/results/supernet.json and .md (supernet-quick.* with --quick).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import torch
from _supernet_table import markdown, summarise

from tango_ci import api
from tango_ci.bench.feasibility import SECOND_LOOK, measure_candidate
from tango_ci.bench.latency import host_facts
from tango_ci.contracts import TrainedModel
from tango_ci.data.dataset import load_split, preprocess
from tango_ci.exceptions import TangoError
from tango_ci.export import export_onnx
from tango_ci.models import build_model, build_subnet, recalibrate_batchnorm
from tango_ci.progress import Reporter
from tango_ci.rundir import read_json, read_record
from tango_ci.spec import load_project
from tango_ci.supernet.train import build_supernet
from tango_ci.train.stage import load_network
from tango_ci.train.trainer import TrainConfig, evaluate, set_threads, train_model

ROOT = Path(__file__).resolve().parents[1]
FRACTIONS = (0.25, 0.5, 0.9)  # where the budgets lie between the smallest and largest subnet
FIXED = [(f, level) for f in ("resnet", "mobilenetv3", "densenet") for level in ("xs", "s", "m")]
LR = 0.002  # AdamW; 0.01 is too high for these networks
CLASSES = [str(i) for i in range(12)]  # glyphs has 12; here only the count matters


@dataclasses.dataclass(frozen=True)
class Settings:
    images_per_class: int
    epochs: int  # the supernet's, and every from-scratch training's
    finetune_epochs: int
    search_epochs: int  # per trial of strategy trials
    untimed_trials: int  # (e): strategy trials without a time limit
    specialise_s: float
    population: int
    generations: int


FULL = Settings(250, 15, 4, 6, 12, 40.0, 12, 4)
QUICK = Settings(60, 4, 1, 1, 4, 15.0, 6, 2)

PROJECT = """\
name: {name}
task: classification
data: {{path: data, format: imagefolder, image_size: 32, split: {{val: 0.2, test: 0.15, seed: 0}},
  synth: {{kind: glyphs, images_per_class: {s.images_per_class}, size: 32, seed: 0}}}}
search: {search}
train: {{epochs: {s.epochs}, batch: 32, lr: {lr}, patience: {s.epochs}, runner: local-cpu}}
specialise: {{population: {s.population}, generations: {s.generations},
  time_budget_s: {s.specialise_s}, finetune_epochs: {s.finetune_epochs}}}
targets:
{targets}"""
SUPERNET_SEARCH = (
    "{strategy: supernet, families: [ofa-resnet], seed: 0, supernet: {resolutions: [32, 24], "
    "random_subnets: 2, distill: true, progressive: true}}"
)
TRIALS_SEARCH = (
    "{{strategy: trials, families: [resnet, mobilenetv3, densenet], levels: [xs, s, m], "
    "trials: {trials}, epochs: {epochs}, timeout_s: {timeout}, seed: 0}}"
)
TARGET = (
    "  - {{name: {name}, runner: local-cpu, engine: onnxruntime, precision: fp32,\n"
    "     constraints: {{latency_ms: {budget}, latency_percentile: p95, max_accuracy_drop: 1}}}}\n"
)
BEGAN = time.perf_counter()


def log(message: str) -> None:
    print(f"[{time.perf_counter() - BEGAN:6.0f} s] {message}", file=sys.stderr, flush=True)


class StderrReporter(Reporter):
    """The pipeline's own progress lines (stages, decisions) on stderr."""

    def stage_started(self, stage: str, run_id: str) -> None:
        log(f"  stage {stage} ({run_id})")

    def log(self, message: str) -> None:
        log(f"    {message}")


def write_project(repo: Path, name: str, settings: Settings, search: str, budgets: dict) -> Path:
    folder = repo / "projects" / name
    folder.mkdir(parents=True, exist_ok=True)
    targets = "".join(TARGET.format(name=t, budget=b or "null") for t, b in budgets.items())
    text = PROJECT.format(name=name, s=settings, lr=LR, search=search, targets=targets)
    (folder / "project.yaml").write_text(text)
    return folder


def timed(project: Path, first: str, last: str) -> tuple[Path, float]:
    began = time.perf_counter()
    run = api.run(project, from_stage=first, until=last, reporter=StderrReporter())
    return run.root, time.perf_counter() - began


def p95(network: torch.nn.Module, spec, work: Path) -> float:
    """The network's p95 on the spec's first target, built as search candidates are and timed
    with the search's longer second look (onnxruntime reads only the ONNX file)."""
    work.mkdir(parents=True, exist_ok=True)
    onnx_path = work / "model.onnx"
    export_onnx(network.eval(), onnx_path, (1, 3, 32, 32), opset=spec.export.opset, simplify=False)
    one = dataclasses.replace(spec, targets=spec.targets[:1])
    calibration = np.zeros((8, 3, 32, 32), np.float32)  # fp32 targets calibrate nothing
    measured = measure_candidate(
        onnx_path, work, one, work / "build", calibration, 32, settings=SECOND_LOOK
    )
    return measured[one.targets[0].name]["latency"]["p95_ms"]


def train_scratch(model: torch.nn.Module, data: dict, settings: Settings) -> dict:
    """Train for the supernet's epochs (its lr, batch and augmentation); best by validation."""
    config = TrainConfig(epochs=settings.epochs, batch=32, lr=LR, seed=0)
    began = time.perf_counter()
    result = train_model(model, data["train"], data["val"], config)
    model.load_state_dict(result.best_state)
    seconds = round(time.perf_counter() - began, 1)
    return {"val": result.best_accuracy, "test": evaluate(model, *data["test"])[0], "s": seconds}


def inherited_subnet(spec, run: Path, config: dict, train_images: np.ndarray) -> torch.nn.Module:
    """The chosen subnet as specialisation scored it: the supernet's weights, BatchNorm
    recalibrated on the same training images (same seed and count)."""
    supernet = build_supernet(spec, CLASSES)
    supernet.load_state_dict(torch.load(run / "train" / "best.pt", weights_only=True))
    count = min(spec.specialise.calibration_images, len(train_images))
    pick = np.random.default_rng(spec.search.seed).choice(len(train_images), count, replace=False)
    network = supernet.eval().extract(config)
    recalibrate_batchnorm(network, torch.from_numpy(preprocess(train_images[pick])))
    return network.eval()


def budgets_from_subnets(repo: Path, settings: Settings) -> dict[str, float]:
    """p95 budgets between the smallest and the largest subnet's measured p95."""
    names = [f"budget-{i + 1}" for i in range(len(FRACTIONS))]
    project = write_project(repo, "supernet", settings, SUPERNET_SEARCH, dict.fromkeys(names))
    spec = load_project(project)
    supernet = build_supernet(spec, CLASSES)
    space, ends = supernet.space, []
    for config in (space.smallest(), space.largest()):
        ends.append(p95(supernet.extract(config), spec, repo / "probe" / space.key(config)))
        log(f"subnet {space.describe(config)}: p95 {ends[-1]:.3f} ms")
    low, high = ends
    return {n: round(low + f * (high - low), 4) for n, f in zip(names, FRACTIONS, strict=True)}


def supernet_side(repo: Path, settings: Settings, budgets: dict[str, float]) -> dict:
    project = write_project(repo, "supernet", settings, SUPERNET_SEARCH, budgets)
    spec = load_project(project)
    log(f"budgets (p95 ms): {list(budgets.values())}; synthesising the data")
    api.run(project, until="search", reporter=StderrReporter())
    log(f"training the supernet ({settings.epochs} epochs)")
    root, train_s = timed(project, "train", "train")
    log(f"supernet trained in {train_s:.0f} s; specialising for {len(budgets)} targets")
    root, specialise_s = timed(project, "specialise", "specialise")
    data = {s: load_split(root / "data", s) for s in ("train", "val", "test")}
    rows = []
    for target, budget in budgets.items():
        folder = root / "specialise" / target
        result = read_json(folder / "result.json")
        chosen = result.pop("chosen")
        plain = inherited_subnet(spec, root, chosen["config"], data["train"][0])
        log(f"{target}: {chosen['architecture']}; training it from scratch")
        torch.manual_seed(0)
        scratch = train_scratch(build_subnet(read_record(TrainedModel, folder)), data, settings)
        finetuned = {"val": result["val_accuracy"]}  # chosen["accuracy"]: val before it
        finetuned["test"] = evaluate(load_network(folder), *data["test"])[0]
        rows.append(
            {"target": target, "budget_ms": budget, "chosen": chosen, "scored": result}
            | {"a_no_ft": {k: evaluate(plain, *data[k])[0] for k in ("val", "test")}}
            | {"a_ft": finetuned, "b_scratch": scratch}
        )
    trained = read_json(root / "train" / "metrics.json")
    compute = {
        "supernet_train_s": round(train_s, 1),
        "specialise_total_s": round(specialise_s, 1),
        "specialise_per_target_s": round(specialise_s / len(budgets), 1),
        "largest_val": trained["val_accuracy"],
        "smallest_val": trained["val_accuracy_smallest"],
    }
    return {"run": str(root), "rows": rows, "compute": compute, "data": data}


def trials_side(
    repo: Path, settings: Settings, budgets: dict[str, float], share_s: float | None
) -> list[dict]:
    """Strategy trials per budget: within ``share_s`` seconds (200 trials at most), or with
    ``settings.untimed_trials`` trials and no time limit when ``share_s`` is None."""
    rows = []
    timed_out = share_s is not None
    count = 200 if timed_out else settings.untimed_trials
    timeout = round(share_s, 1) if share_s is not None else "null"
    search = TRIALS_SEARCH.format(trials=count, epochs=settings.search_epochs, timeout=timeout)
    for index, (name, budget) in enumerate(budgets.items()):
        prefix = "trials" if timed_out else "untimed"
        project = write_project(repo, f"{prefix}-{index + 1}", settings, search, {name: budget})
        api.run(project, until="data", reporter=StderrReporter())
        log(f"{prefix} for {name} ({budget} ms): {count} trials, search.timeout_s {timeout}")
        try:
            root, seconds = timed(project, "search", "train")
        except TangoError as error:  # e.g. no candidate fits the budget
            log(f"trials for {name} failed: {error}")
            rows.append({"target": name, "budget_ms": budget, "error": str(error)})
            continue
        best = read_json(root / "search" / "best.json")
        trials = read_json(root / "search" / "trials.json")
        test = load_split(root / "data", "test")
        rows.append(
            {"target": name, "budget_ms": budget, "s": round(seconds, 1), "test_sha": sha(test)}
            | {"winner": "{family}-{level}".format(**best["params"]), "best_trial": best}
            | {"trials": len(trials), "trained": sum(1 for t in trials if t["epochs_trained"])}
            | {"finals": read_json(root / "search" / "manifest.json")["summary"].get("finals")}
            | {"val": read_json(root / "train" / "metrics.json")["val_accuracy"]}
            | {"test": evaluate(load_network(root / "train"), *test)[0]}
        )
    return rows


def fixed_side(repo: Path, settings: Settings, budgets: dict[str, float], data: dict) -> list:
    spec = load_project(repo / "projects" / "supernet")
    loosest = dataclasses.replace(spec, targets=spec.targets[-1:])
    rows = []
    for family, level in FIXED:
        work = repo / "fixed" / f"{family}-{level}"
        latency = p95(build_model(family, level, len(CLASSES)), loosest, work)
        fits = latency <= max(budgets.values())
        row = {"name": f"{family}-{level}", "latency_ms": latency, "trained": fits}
        log(f"fixed {family}-{level}: p95 {latency:.3f} ms, {'training' if fits else 'too slow'}")
        if fits:
            torch.manual_seed(0)
            model = build_model(family, level, len(CLASSES))
            row.update(train_scratch(model, data, settings))
        rows.append(row)
    return rows


def sha(split: tuple) -> str:
    return hashlib.sha256(split[0].tobytes() + split[1].tobytes()).hexdigest()[:16]


def make_repo(work: Path) -> Path:
    repo = work / "repo"
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True)
    shutil.copytree(ROOT / "runners", repo / "runners")
    shutil.copytree(ROOT / "schemas", repo / "schemas")
    return repo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run of about 5 minutes")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--name", help="file name of the results (default supernet[-quick])")
    parser.add_argument("--work", type=Path, help="work here and keep it (default: a temp dir)")
    parser.add_argument(
        "--trials-only",
        action="store_true",
        help="rerun (c) and (e) only, at the budgets and time share of the last results",
    )
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    name = args.name or ("supernet-quick" if args.quick else "supernet")
    if args.trials_only:
        return rerun_trials(args.out / f"{name}.json", settings, args.work)
    threads = set_threads()
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(args.work or Path(tmp))
        budgets = budgets_from_subnets(repo, settings)
        supernet = supernet_side(repo, settings, budgets)
        compute, data = supernet["compute"], supernet.pop("data")
        share_s = (compute["supernet_train_s"] + compute["specialise_total_s"]) / len(budgets)
        trials = trials_side(repo, settings, budgets, share_s)
        untimed = trials_side(repo, settings, budgets, None)
        if any(t.get("test_sha", sha(data["test"])) != sha(data["test"]) for t in trials + untimed):
            raise SystemExit("a trials project's test split differs from the supernet's")
        log("fixed families and levels")
        fixed = fixed_side(repo, settings, budgets, data)
        summary = summarise(supernet["rows"], trials, untimed, fixed, compute)
    results = {
        "mode": "quick" if args.quick else "full",
        "settings": dataclasses.asdict(settings) | {"lr": LR, "budgets_ms": budgets},
        "share_s": share_s,
        "test_images": len(data["test"][1]),
        "host": host_facts(threads),
        "load_before": load_before,
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "wall_s": round(time.perf_counter() - BEGAN, 1),
        "summary": summary,
        "compute": compute,
        "runs": {"supernet": supernet, "trials": trials, "untimed": untimed, "fixed": fixed},
    }
    write_results(args.out, name, results)


def write_results(out: Path, name: str, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results)
    (out / f"{name}.md").write_text(text)
    print(text)


def rerun_trials(path: Path, settings: Settings, work: Path | None) -> None:
    """(c) and (e) for the budgets and time share in ``path``; its other columns are kept
    (the data is synthesised from the same seed; the test split's hash must match)."""
    results = json.loads(path.read_text())
    budgets, share_s = results["settings"]["budgets_ms"], results["share_s"]
    test_sha = results["runs"]["trials"][0]["test_sha"]
    with tempfile.TemporaryDirectory() as tmp:
        repo = make_repo(work or Path(tmp))
        trials = trials_side(repo, settings, budgets, share_s)
        untimed = trials_side(repo, settings, budgets, None)
    if any(t.get("test_sha", test_sha) != test_sha for t in trials + untimed):
        raise SystemExit("the test split differs from the one of the results")
    runs = results["runs"]
    compute = results["compute"]
    summary = summarise(runs["supernet"]["rows"], trials, untimed, runs["fixed"], compute)
    results |= {
        "settings": dataclasses.asdict(settings) | {"lr": LR, "budgets_ms": budgets},
        "summary": summary,
        "trials_rerun": {
            "wall_s": round(time.perf_counter() - BEGAN, 1),
            "host_load": [round(x, 2) for x in os.getloadavg()],
        },
        "runs": runs | {"trials": trials, "untimed": untimed},
    }
    write_results(path.parent, path.stem, results)


if __name__ == "__main__":
    main()
