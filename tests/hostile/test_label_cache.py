"""ultralytics keeps the labels it scanned in ``labels/<split>.cache`` beside the data and
loads that file as a pickle (``np.load(allow_pickle=True)``): a ``.cache`` pushed with a
dataset would run code on the training runner. Through ``ultralytics_module`` such a file is
never read, and training writes none into the dataset."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tango_ci.data.synth import SynthRequest, synthesize
from tango_ci.detection.weights import ultralytics_module


class Planted:
    """Unpickling this makes the folder ``marker``: proof that the file was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_a_planted_label_cache_is_never_unpickled_and_none_is_written(tmp_path: Path) -> None:
    data = tmp_path / "shapes"
    synthesize(SynthRequest(out=data, task="detection", images_per_class=3, size=32, seed=0))
    marker = tmp_path / "code-ran"
    planted = data / "labels" / "train.cache"
    with open(planted, "wb") as handle:  # where ultralytics looks: beside labels/train/
        np.save(handle, np.array(Planted(marker), dtype=object), allow_pickle=True)
    before = planted.read_bytes()
    datasets = ultralytics_module("ultralytics.data.dataset")
    for split in ("train", "val"):
        built = datasets.YOLODataset(
            img_path=str(data / "images" / split),
            data={"names": {0: "circle", 1: "square", 2: "triangle"}, "channels": 3},
            task="detect",
            imgsz=32,
            augment=False,
        )
        assert len(built.labels) == len(list((data / "images" / split).iterdir()))
    assert not marker.exists()
    assert planted.read_bytes() == before
    assert sorted(p.name for p in (data / "labels").glob("*.cache")) == ["train.cache"]
