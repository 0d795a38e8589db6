"""Box decoding and NMS: one implementation for every backend, so differences in mAP come from
the artifacts only. Inputs are the raw network outputs of ultralytics detection heads:

- ``(B, 4 + classes, anchors)``: centre x, centre y, width, height in pixels, then class
  scores (yolov8, yolo11);
- ``(B, K, 6)``: x1, y1, x2, y2, score, class, already one box per object (end-to-end heads,
  yolo26).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRE_NMS_TOP_K = 3000


@dataclass(frozen=True)
class Thresholds:
    conf: float = 0.001
    iou: float = 0.7
    max_det: int = 300


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N, 4) with every box in ``b`` (M, 4), xyxy."""
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(2)
    area_a = (a[:, 2:] - a[:, :2]).clip(0).prod(1)
    area_b = (b[:, 2:] - b[:, :2]).clip(0).prod(1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


#: candidates resolved together by :func:`nms` (an IoU matrix of this many squared)
NMS_BLOCK = 512


def nms(
    boxes: np.ndarray, scores: np.ndarray, iou: float, max_det: int | None = None
) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best first, at most ``max_det``.

    The same boxes as the textbook loop (a test keeps them equal), without a Python step per
    box: candidates are taken by descending score in blocks; a block first loses what the boxes
    already kept overlap, then is resolved at once by Cluster-NMS (Zheng et al., 2021: iterate
    "kept unless a kept better box overlaps it" to its fixed point, which is the greedy result);
    it stops as soon as ``max_det`` are kept. At ``conf: 0.001`` a dense image gives thousands
    of candidates, of which only the first ``max_det`` survivors matter.
    """
    order = np.argsort(-scores, kind="stable")
    boxes = np.asarray(boxes, dtype=np.float64)[order]
    limit = len(order) if max_det is None else min(max_det, len(order))
    kept: list[np.ndarray] = []
    count = 0
    for start in range(0, len(order), NMS_BLOCK):
        if count >= limit:
            break
        block = np.arange(start, min(start + NMS_BLOCK, len(order)))
        if kept:
            previous = np.concatenate(kept)
            block = block[(box_iou(boxes[previous], boxes[block]) <= iou).all(0)]
        if block.size == 0:
            continue
        overlaps = np.triu(box_iou(boxes[block], boxes[block]) > iou, k=1)
        alive = np.ones(block.size, dtype=bool)
        while True:  # at most the length of the longest suppression chain
            updated = np.asarray(~(overlaps & alive[:, None]).any(axis=0), dtype=bool)
            if np.array_equal(updated, alive):
                break
            alive = updated
        chosen = block[alive][: limit - count]
        kept.append(chosen)
        count += chosen.size
    if not kept:
        return np.zeros(0, dtype=np.int64)
    return order[np.concatenate(kept)]


def decode(raw: np.ndarray, thresholds: Thresholds) -> list[np.ndarray]:
    """Per image an array (D, 6): x1, y1, x2, y2, score, class, by descending score."""
    if _is_end_to_end(raw):
        return [_end_to_end(image, thresholds) for image in raw]
    return [_dense(image.T, thresholds) for image in raw]


def normalise_boxes(raw: np.ndarray, height: int, width: int) -> np.ndarray:
    """A copy of ``raw`` (either layout) with box coordinates as fractions of the input's
    width and height, so that one absolute tolerance means the same at every input size."""
    out = np.array(raw, dtype=np.float64)
    scale = np.array([width, height, width, height], np.float64)
    if _is_end_to_end(out):
        out[..., :4] /= scale
    else:
        out[:, :4] /= scale[None, :, None]
    return out


def _is_end_to_end(raw: np.ndarray) -> bool:
    return raw.ndim == 3 and raw.shape[-1] == 6 and raw.shape[1] != 6


def _end_to_end(rows: np.ndarray, t: Thresholds) -> np.ndarray:
    rows = rows[rows[:, 4] > t.conf]
    return rows[rows[:, 4].argsort()[::-1]][: t.max_det].astype(np.float32)


def _dense(rows: np.ndarray, t: Thresholds) -> np.ndarray:
    scores_all = rows[:, 4:]
    classes = scores_all.argmax(1)
    scores = scores_all[np.arange(len(rows)), classes]
    keep = scores > t.conf
    rows, classes, scores = rows[keep], classes[keep], scores[keep]
    if len(scores) > PRE_NMS_TOP_K:
        top = scores.argsort()[::-1][:PRE_NMS_TOP_K]
        rows, classes, scores = rows[top], classes[top], scores[top]
    xy, wh = rows[:, :2], rows[:, 2:4]
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)
    offset = classes[:, None] * 4096.0  # class-aware NMS in one pass
    kept = nms(boxes + offset, scores, t.iou, t.max_det)
    return np.concatenate([boxes[kept], scores[kept, None], classes[kept, None]], 1).astype(
        np.float32
    )


def softmax(logits: np.ndarray) -> np.ndarray:
    """Class probabilities of a batch of logits (N, C)."""
    logits = np.asarray(logits, dtype=np.float64)
    exp = np.exp(logits - logits.max(1, keepdims=True))
    return (exp / exp.sum(1, keepdims=True)).astype(np.float32)


def unletterbox(boxes: np.ndarray, how: dict, height: int, width: int) -> np.ndarray:
    """Boxes (D, 6) from the letterboxed input back to the original image's pixels."""
    out = np.array(boxes, dtype=np.float32)
    if len(out):
        out[:, [0, 2]] = ((out[:, [0, 2]] - how["left"]) / how["scale"]).clip(0, width)
        out[:, [1, 3]] = ((out[:, [1, 3]] - how["top"]) / how["scale"]).clip(0, height)
    return out
