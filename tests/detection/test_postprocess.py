"""The shared post-processing and mAP: exact on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest

from tango_ci.detection.metrics import detection_metrics, match
from tango_ci.detection.postprocess import Thresholds, box_iou, decode, nms

NAMES = ["circle", "square"]


def _dense(boxes_xywh, scores_per_class) -> np.ndarray:
    """A raw (1, 4 + classes, anchors) head output."""
    rows = np.concatenate(
        [np.asarray(boxes_xywh, np.float32), np.asarray(scores_per_class, np.float32)], 1
    )
    return rows.T[None]


def test_iou_and_nms() -> None:
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    assert box_iou(a, b)[0].tolist() == pytest.approx([1.0, 50 / 150, 0.0])
    keep = nms(b, np.array([0.9, 0.8, 0.7]), iou=0.3)
    assert keep.tolist() == [0, 2]


def test_decode_is_class_aware_and_thresholded() -> None:
    raw = _dense(
        [[10, 10, 8, 8], [11, 10, 8, 8], [11, 10, 8, 8], [40, 40, 4, 4]],
        [[0.9, 0.0], [0.8, 0.1], [0.0, 0.7], [0.0005, 0.0]],
    )
    (out,) = decode(raw, Thresholds(conf=0.001, iou=0.5, max_det=10))
    # the second circle overlaps the first and is suppressed; the square is another class;
    # the last box is under the confidence threshold
    assert out[:, 5].tolist() == [0, 1]
    assert out[0, :4].tolist() == [6, 6, 14, 14]
    assert out[:, 4].tolist() == pytest.approx([0.9, 0.7])


def test_decode_end_to_end_heads() -> None:
    raw = np.zeros((1, 300, 6), np.float32)
    raw[0, 0] = [1, 1, 5, 5, 0.8, 1]
    raw[0, 1] = [2, 2, 6, 6, 0.9, 0]
    (out,) = decode(raw, Thresholds(conf=0.5))
    assert out[:, 4].tolist() == pytest.approx([0.9, 0.8])


def test_perfect_predictions_score_one_and_mistakes_score_less() -> None:
    truth = [np.array([[0, 10, 10, 30, 30], [1, 50, 50, 70, 80]], np.float32)]
    perfect = [np.array([[10, 10, 30, 30, 0.9, 0], [50, 50, 70, 80, 0.8, 1]], np.float32)]
    # ultralytics' interpolated AP tops out at 0.995 for a perfect detector
    assert detection_metrics(perfect, truth, NAMES)["map50_95"] == pytest.approx(0.995, abs=1e-3)
    shifted = [np.array([[14, 10, 34, 30, 0.9, 0], [50, 50, 70, 80, 0.8, 1]], np.float32)]
    result = detection_metrics(shifted, truth, NAMES)
    assert result["map50"] == pytest.approx(0.995, abs=1e-3)  # IoU 0.67 passes 0.5
    assert result["map50_95"] < 0.8  # but not the stricter thresholds
    wrong_class = [np.array([[10, 10, 30, 30, 0.9, 1], [50, 50, 70, 80, 0.8, 0]], np.float32)]
    assert detection_metrics(wrong_class, truth, NAMES)["map50"] == pytest.approx(0.0)


def test_match_claims_each_truth_once() -> None:
    truth = np.array([[0, 0, 0, 10, 10]], np.float32)
    twice = np.array([[0, 0, 10, 10, 0.9, 0], [0, 0, 10, 10, 0.8, 0]], np.float32)
    correct = match(twice, truth)
    assert correct[:, 0].tolist() == [True, False]


def test_match_is_ultralytics_validator_matching() -> None:
    """Same detections, same true positives as ultralytics' validator: a gap between training's
    mAP and the bench's comes from inputs and NMS, not from the metric."""
    from types import SimpleNamespace

    import torch

    from tango_ci.detection.weights import ultralytics_module

    validator = ultralytics_module("ultralytics.engine.validator").BaseValidator
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 60, (12, 2))
    truth = np.concatenate(
        [rng.integers(0, 2, (12, 1)), corners, corners + rng.uniform(5, 30, (12, 2))], 1
    ).astype(np.float32)
    near = np.repeat(truth, 3, 0)[rng.permutation(36), 1:] + rng.normal(0, 3, (36, 4))
    scores = np.sort(rng.uniform(0, 1, (36, 1)), 0)[::-1]  # by descending score, as decoded
    predictions = np.concatenate([near, scores, rng.integers(0, 2, (36, 1))], 1).astype(np.float32)
    iou = box_iou(truth[:, 1:], predictions[:, :4])
    theirs = validator.match_predictions(
        SimpleNamespace(iouv=torch.linspace(0.5, 0.95, 10)),
        torch.from_numpy(predictions[:, 5]),
        torch.from_numpy(truth[:, 0]),
        torch.from_numpy(iou),
    ).numpy()
    assert theirs.any() and not theirs.all()
    assert (match(predictions, truth) == theirs).all()


def _textbook_nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> list[int]:
    """Greedy NMS one box at a time: the definition the fast one must equal."""
    order = list(np.argsort(-scores, kind="stable"))
    keep = []
    while order:
        best = order.pop(0)
        keep.append(int(best))
        order = [i for i in order if box_iou(boxes[best : best + 1], boxes[i : i + 1])[0, 0] <= iou]
    return keep


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("count", [1, 7, 200, 1300])
def test_fast_nms_keeps_exactly_the_greedy_boxes(seed: int, count: int) -> None:
    rng = np.random.default_rng(seed)
    centre = rng.uniform(0, 96, (count, 2))
    size = rng.uniform(4, 40, (count, 2))  # crowded: long suppression chains
    boxes = np.concatenate([centre - size / 2, centre + size / 2], 1)
    scores = rng.random(count).round(2)  # ties too, broken by position as the sort is stable
    expected = _textbook_nms(boxes, scores, 0.45)
    assert nms(boxes, scores, 0.45).tolist() == expected
    assert nms(boxes, scores, 0.45, max_det=5).tolist() == expected[:5]
