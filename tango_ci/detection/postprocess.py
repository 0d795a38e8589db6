"""Box decoding and NMS live in :mod:`tango_ci.runtime.postprocess`, the code a deployment
bundle carries, so that bench and the device cannot drift apart; re-exported here."""

from tango_ci.runtime.postprocess import (
    NMS_BLOCK,
    PRE_NMS_TOP_K,
    Thresholds,
    box_iou,
    decode,
    nms,
    normalise_boxes,
)

__all__ = [
    "NMS_BLOCK",
    "PRE_NMS_TOP_K",
    "Thresholds",
    "box_iou",
    "decode",
    "nms",
    "normalise_boxes",
]
