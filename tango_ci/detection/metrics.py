"""mAP50 and mAP50-95 with ultralytics' AP computation, on the shared post-processing.

The matching and the AP (101-point interpolation, as COCO) are those of ultralytics' validator:
given the same detections both give the same mAP. Where training's mAP and the bench's differ,
the inputs and the NMS differ (see ``detection/train.py``).
"""

from __future__ import annotations

import numpy as np

from tango_ci.detection.postprocess import box_iou

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)


def match(predictions: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(D, 10) booleans: is each prediction (by descending score) a true positive at each IoU
    threshold. ``truth`` is (M, 5): class, x1, y1, x2, y2. Greedy, as ultralytics does."""
    correct = np.zeros((len(predictions), len(IOU_THRESHOLDS)), dtype=bool)
    if not len(predictions) or not len(truth):
        return correct
    iou = box_iou(truth[:, 1:], predictions[:, :4])
    iou = iou * (truth[:, :1] == predictions[None, :, 5])
    matched = np.zeros((len(truth), len(IOU_THRESHOLDS)), dtype=bool)
    for j in np.flatnonzero((iou >= IOU_THRESHOLDS.min()).any(0)):
        available = np.where(matched, 0, iou[:, j, None])
        k = available.argmax(0)
        correct[j] = available[k, range(len(IOU_THRESHOLDS))] >= IOU_THRESHOLDS
        matched[k, range(len(IOU_THRESHOLDS))] |= correct[j]
    return correct


def detection_metrics(
    predictions: list[np.ndarray], truths: list[np.ndarray], names: list[str]
) -> dict:
    """mAP50, mAP50-95, precision and recall, overall and per class, plus PR curves."""
    from tango_ci.detection.weights import ultralytics_module

    ap_per_class = ultralytics_module("ultralytics.utils.metrics").ap_per_class
    tp = (
        np.concatenate([match(p, t) for p, t in zip(predictions, truths, strict=False)])
        if predictions
        else np.zeros((0, 10), bool)
    )
    conf = np.concatenate([p[:, 4] for p in predictions]) if predictions else np.zeros(0)
    pred_cls = np.concatenate([p[:, 5] for p in predictions]) if predictions else np.zeros(0)
    target_cls = np.concatenate([t[:, 0] for t in truths]) if truths else np.zeros(0)
    empty = {
        "map50": 0.0,
        "map50_95": 0.0,
        "precision": 0.0,
        "recall": 0.0,
        "per_class": {},
        "pr_curves": {},
        "images": len(truths),
        "instances": len(target_cls),
    }
    if not len(target_cls) or not len(tp):
        return empty
    (_, _, p, r, _, ap, classes, _, _, _, x, prec_values) = ap_per_class(
        tp, conf, pred_cls, target_cls
    )
    per_class = {
        names[int(c)]: {
            "ap50": float(ap[i, 0]),
            "ap50_95": float(ap[i].mean()),
            "precision": float(p[i]),
            "recall": float(r[i]),
            "instances": int((target_cls == c).sum()),
        }
        for i, c in enumerate(classes)
    }
    recall_axis = np.asarray(x)
    curves = (
        {names[int(c)]: np.asarray(prec_values)[i].tolist()[::10] for i, c in enumerate(classes)}
        if len(prec_values)
        else {}
    )
    return {
        "map50": float(ap[:, 0].mean()),
        "map50_95": float(ap.mean()),
        "precision": float(p.mean()),
        "recall": float(r.mean()),
        "per_class": per_class,
        "pr_curves": {"recall": recall_axis.tolist()[::10], "precision": curves},
        "images": len(truths),
        "instances": len(target_cls),
    }
