"""Bench's end-to-end latency: pre-processing, network and post-processing per image, as the
task says a device runs them."""

from __future__ import annotations

import time

import numpy as np

from tango_ci.tasks import Evaluator


class _Sleepy:
    """A predictor whose network takes a known time."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def run(self, batch):
        time.sleep(self.seconds)
        return [np.zeros((len(batch), 3), np.float32)]


class _Evaluator(Evaluator):
    def __init__(self, pre_s: float, post_s: float, images: int = 20) -> None:
        self.images = np.zeros((images, 8, 8, 3), np.uint8)
        self.pre_s, self.post_s = pre_s, post_s

    @property
    def reference(self) -> float:
        return 1.0

    def evaluate(self, predictor, batch):
        return {}

    def deployment(self):
        def pre(chunk):
            time.sleep(self.pre_s)
            return chunk.astype(np.float32)

        def post(raw, real):
            time.sleep(self.post_s)
            return raw[0][:real]

        return pre, post, {"thresholds": {"conf": 0.25}}


def test_each_part_is_timed_per_image_and_the_total_is_their_sum() -> None:
    result = _Evaluator(pre_s=0.002, post_s=0.004).end_to_end(_Sleepy(0.006), batch=2)
    assert result is not None
    # per image: each batch of 2 sleeps once per part
    assert 0.9 <= result["pre_ms"] < 2.0
    assert 2.9 <= result["network_ms"] < 4.5
    assert 1.9 <= result["post_ms"] < 3.0
    assert result["p50_ms"] >= result["pre_ms"] + result["network_ms"] + result["post_ms"] - 0.5
    assert result["p95_ms"] >= result["p50_ms"]
    assert result["images"] == 18  # 20 images in batches of 2, the first batch a warm-up
    assert result["settings"] == {"thresholds": {"conf": 0.25}}


def test_a_task_that_does_not_say_how_it_deploys_reports_nothing() -> None:
    class Silent(_Evaluator):
        def deployment(self):
            return None

    assert Silent(0, 0).end_to_end(_Sleepy(0), batch=1) is None
