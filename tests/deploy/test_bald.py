"""BALD with MC dropout before the head: zero where the passes agree, high where they
disagree, the same under a seed, and how ``choose`` and ``write_queue`` take its scores."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tango_ci.exceptions import TangoError
from tango_ci.labelling import choose, write_queue
from tango_ci.labelling.bald import bald_scores, kept_scores, last_linear, mutual_information

CLASSES = 3


class Tiny(nn.Module):
    """Mean colour -> 8 features -> 3 classes; BatchNorm so that eval mode matters."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Linear(3, 8), nn.BatchNorm1d(8), nn.ReLU())
        self.fc = nn.Linear(8, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x.mean((2, 3))))


class HeadThenCopy(Tiny):
    """The head's output is not the network's (a copy): BALD re-runs the whole network."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * 1.0


def _images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (count, 6, 6, 3), dtype=np.uint8)


def _network(cls: type[Tiny] = Tiny) -> Tiny:
    torch.manual_seed(0)
    return cls().eval()


def test_identical_passes_without_dropout_score_zero() -> None:
    scores = bald_scores(_network(), _images(10), samples=5, p=0.0)
    assert scores.shape == (10,) and np.abs(scores).max() < 1e-9


def test_mutual_information_is_high_only_where_confident_passes_disagree() -> None:
    confident_a, confident_b = [0.98, 0.01, 0.01], [0.01, 0.98, 0.01]
    unsure = [1 / 3, 1 / 3, 1 / 3]
    probabilities = torch.tensor(
        [
            [confident_a, unsure, confident_a],  # pass 1: image 0, image 1, image 2
            [confident_b, unsure, confident_a],  # pass 2
        ],
        dtype=torch.float64,
    )
    disagree, uncertain, agree = mutual_information(probabilities).tolist()
    assert disagree > 0.5 and uncertain < 1e-12 and agree < 1e-12


def test_images_whose_dropout_passes_disagree_score_higher() -> None:
    # one image's evidence sits in one feature, so dropping it flips the answer; the other's
    # is spread over fifteen, and dropout leaves it as sure as before
    model = _network()
    model.fc = head = nn.Linear(16, CLASSES)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[8.0] + [1.0] * 15] + [[0.0] * 16] * 2))
        head.bias.zero_()
    fragile = torch.tensor([1.0] + [0.0] * 15)
    robust = torch.tensor([0.0] + [1.0] * 15)
    model.features = _Fixed(torch.stack([fragile, robust]))
    scores = bald_scores(model, _images(2), samples=50, p=0.5, seed=1)
    assert scores[0] > 0.2 and scores[1] < 0.01
    assert last_linear(model) is head


class _Fixed(nn.Module):
    def __init__(self, features: torch.Tensor) -> None:
        super().__init__()
        self.values = features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.values[: len(x)]


def test_scores_are_the_same_under_a_seed_and_differ_across_seeds() -> None:
    model, images = _network(), _images(40)
    first = bald_scores(model, images, samples=8, seed=3, batch=16)
    assert np.array_equal(first, bald_scores(model, images, samples=8, seed=3, batch=16))
    assert not np.array_equal(first, bald_scores(model, images, samples=8, seed=4, batch=16))
    assert (first >= 0).all() and first.max() > 0


def test_bald_keeps_batchnorm_frozen_and_the_mode_it_was_given() -> None:
    model = _network()
    model.train()
    before = model.features[1].running_mean.clone()
    bald_scores(model, _images(8), samples=3)
    assert torch.equal(before, model.features[1].running_mean) and model.training


def test_rerunning_the_whole_network_gives_the_scores_of_rerunning_the_head() -> None:
    images = _images(12)
    head_only = bald_scores(_network(), images, samples=6, p=0.5, seed=2)
    whole = bald_scores(_network(HeadThenCopy), images, samples=6, p=0.5, seed=2)
    assert head_only.max() > 0 and np.allclose(head_only, whole, atol=1e-12)


def test_bald_refuses_a_network_without_a_linear_head_and_bad_settings() -> None:
    with pytest.raises(TangoError, match=r"no nn\.Linear"):
        bald_scores(nn.Sequential(nn.Conv2d(3, 3, 1), nn.Flatten()), _images(2))
    with pytest.raises(TangoError, match="at least 2"):
        bald_scores(_network(), _images(2), samples=1)
    with pytest.raises(TangoError, match=r"\[0, 1\)"):
        bald_scores(_network(), _images(2), p=1.0)


def _records(count: int) -> list[dict]:
    rng = np.random.default_rng(0)
    return [
        {
            "input_hash": f"{i:064x}",
            "model_version": "v1",
            "outputs": {"label": "a", "probabilities": rng.dirichlet(np.ones(3)).tolist()},
            "input_summary": {"mean": [float(i)], "std": [1.0]},
        }
        for i in range(count)
    ]


def test_choose_ranks_bald_by_the_given_scores_and_needs_them() -> None:
    records = _records(6)
    assert choose(records, 3, "bald", scores=[0.1, 0.9, 0.0, 0.5, 0.7, 0.2]) == [1, 4, 3]
    with pytest.raises(TangoError, match="none were given"):
        choose(records, 3, "bald")
    with pytest.raises(TangoError, match="2 bald scores for 6 records"):
        choose(records, 3, "bald", scores=[0.1, 0.2])
    boxes = [{"outputs": {"boxes": []}, "input_summary": {}}]
    with pytest.raises(TangoError, match="classification answers only"):
        choose(boxes, 1, "bald", scores=[1.0])


def test_the_queue_takes_bald_scores_of_the_kept_images(tmp_path: Path) -> None:
    kept, records = tmp_path / "kept", _records(5)
    kept.mkdir()
    for i, record in enumerate(records):
        buffer = io.BytesIO()
        Image.fromarray(_images(1, seed=i)[0]).save(buffer, format="PNG")
        (kept / f"{record['input_hash']}.img").write_bytes(buffer.getvalue())
    files = [(r["input_hash"], kept / f"{r['input_hash']}.img") for r in records]
    scores = kept_scores(_network(), files, 6, samples=4)
    assert set(scores) == {r["input_hash"] for r in records}
    scores = {h: float(i) for i, h in enumerate(scores)}  # the last image is the most unsure
    done = write_queue(records, kept, tmp_path / "q", 2, "bald", ["a", "b", "c"], scores=scores)
    assert done["queued"] == 2
    queued = (tmp_path / "q" / "tasks.json").read_text()
    assert records[4]["input_hash"] in queued and records[3]["input_hash"] in queued
    (kept / "bad.img").write_bytes(b"not an image")
    with pytest.raises(TangoError, match=r"bad\.img: not a readable image"):
        kept_scores(_network(), [("bad", kept / "bad.img")], 6)


@pytest.mark.slow
def test_label_queue_bald_runs_the_run_s_network_on_the_kept_images(
    measured, bundle: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from tango_ci.cli import app
    from tango_ci.runtime import Bundle
    from tango_ci.runtime.logs import PredictionLog
    from tango_ci.runtime.server import Service

    _, run = measured
    log, kept = tmp_path / "log.sqlite", tmp_path / "kept"
    service = Service(Bundle(bundle), log=PredictionLog(log), keep_images=kept)
    for seed in range(12):
        buffer = io.BytesIO()
        Image.fromarray(_images(1, seed)[0].repeat(4, 0).repeat(4, 1)).save(buffer, format="PNG")
        service.image(buffer.getvalue())
    service.log.close()
    base = ["label", "queue", str(log), "--bundle", str(bundle), "--images", str(kept), "-k", "4"]
    model = ["--model", str(run.stage_dir("train"))]
    done = CliRunner().invoke(
        app, [*base, "--strategy", "bald", *model, "--out", str(tmp_path / "q")]
    )
    assert done.exit_code == 0, done.output
    tasks = json.loads((tmp_path / "q" / "tasks.json").read_text())
    assert len(tasks) == 4 and {t["meta"]["strategy"] for t in tasks} == {"bald"}
    refused = CliRunner().invoke(app, [*base, "--strategy", "bald", "--out", str(tmp_path / "r")])
    assert "needs --model" in str(refused.exception) and not (tmp_path / "r").exists()
    refused = CliRunner().invoke(app, [*base, *model, "--out", str(tmp_path / "r")])
    assert "bald only, not entropy" in str(refused.exception)
