"""The confusion matrix stays a readable, bounded picture at any class count."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

import numpy as np
from matplotlib.image import imread

from tango_ci.report import plots


def _tick_texts(axis, which: str) -> list[str]:
    ticks = axis.get_xticklabels() if which == "x" else axis.get_yticklabels()
    return [t.get_text() for t in ticks if t.get_text()]


def test_a_thousand_classes_make_a_bounded_plot_quickly(tmp_path: Path) -> None:
    count = 1000
    matrix = np.random.default_rng(0).integers(0, 50, (count, count)).tolist()
    classes = [f"class_{i}" for i in range(count)]
    start = time.perf_counter()
    figure = plots.confusion_matrix(matrix, classes, "t", tmp_path / "cm.png")
    assert time.perf_counter() - start < 20
    height, width = imread(tmp_path / "cm.png").shape[:2]
    assert max(height, width) <= 2000
    axis = figure.axes[0]
    assert len(axis.texts) == 0  # no per-cell numbers
    assert 0 < len(_tick_texts(axis, "x")) <= 60
    assert 0 < len(_tick_texts(axis, "y")) <= 60


def test_a_long_class_name_is_shortened(tmp_path: Path) -> None:
    classes = ["a" * 100, "cat", "dog"]
    figure = plots.confusion_matrix(np.eye(3, dtype=int).tolist(), classes, "t", tmp_path / "c.png")
    labels = _tick_texts(figure.axes[0], "x")
    assert labels[1:] == ["cat", "dog"]
    assert len(labels[0]) <= 24 and labels[0].endswith("…")
    assert _tick_texts(figure.axes[0], "y") == labels


def test_a_class_name_with_dollar_signs_is_text_not_tex(tmp_path: Path) -> None:
    classes = ["a$x^$b", "$5", "ok"]  # mathtext could not parse the first: the stage failed
    figure = plots.confusion_matrix(np.eye(3, dtype=int).tolist(), classes, "t", tmp_path / "c.png")
    assert _tick_texts(figure.axes[0], "x") == classes


def test_a_few_classes_keep_every_label_and_number(tmp_path: Path) -> None:
    classes = ["cat", "dog", "bird"]
    matrix = [[5, 1, 0], [2, 7, 0], [0, 0, 9]]
    figure = plots.confusion_matrix(matrix, classes, "t", tmp_path / "c.png")
    axis = figure.axes[0]
    assert _tick_texts(axis, "x") == classes
    assert [t.get_text() for t in axis.texts] == ["5", "1", "0", "2", "7", "0", "0", "0", "9"]


def test_missing_glyphs_do_not_warn(tmp_path: Path) -> None:
    classes = ["ünïcødé 猫", "犬"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plots.confusion_matrix([[1, 0], [0, 1]], classes, "猫 t", tmp_path / "c.png")
    assert [str(w.message) for w in caught] == []


def test_other_warnings_still_show(tmp_path: Path) -> None:
    figure, _ = plots.plt.subplots()
    figure.text(0, 0, "x")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("something else", UserWarning, stacklevel=1)
        plots.save_figure(figure, tmp_path / "f.png")
    assert [str(w.message) for w in caught] == ["something else"]
