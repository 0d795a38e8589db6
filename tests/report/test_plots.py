"""Report figures say what they leave out: outliers beyond the axis, empty predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg

from tango_ci.bench.latency import latency_stats
from tango_ci.report import plots


def _texts(figure) -> list[str]:
    return [t.get_text() for t in figure.texts] + [
        t.get_text() for axis in figure.axes for t in axis.texts
    ]


def test_outliers_do_not_stretch_the_latency_axis(tmp_path: Path) -> None:
    samples = [*np.random.default_rng(0).normal(0.09, 0.004, 2000), 33.0, 12.0]
    stats = latency_stats(samples, batch=1)
    figure = plots.latency_histogram(samples, stats, 2.0, "p95", "t", tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 0
    right = figure.axes[0].get_xlim()[1]
    assert stats["p99_ms"] < right < 0.2
    texts = _texts(figure)
    assert f"2 of 2002 runs beyond {right:.3g} ms, not shown (max 33 ms)" in texts
    assert f"Unstable measurement: {stats['unstable_reason']}" in texts
    assert "budget (p95) 2.0 ms, off scale" in figure.axes[0].get_legend_handles_labels()[1]


def test_a_quiet_histogram_shows_every_run_and_a_near_budget(tmp_path: Path) -> None:
    samples = list(np.random.default_rng(0).normal(0.09, 0.004, 2000))
    stats = latency_stats(samples, batch=1)
    figure = plots.latency_histogram(samples, stats, 0.11, "p95", "t", tmp_path / "h.png")
    assert figure.axes[0].get_xlim()[1] >= 0.11
    assert _texts(figure) == []
    assert "budget (p95) 0.11 ms" in figure.axes[0].get_legend_handles_labels()[1]


def test_the_grid_says_when_no_box_reaches_the_threshold(tmp_path: Path) -> None:
    images = np.zeros((8, 32, 32, 3))
    samples = [
        {"truth": [[0, 4, 4, 20, 20]], "predictions": [[5, 5, 19, 21, 0.9, 0]] if row == 0 else []}
        for row in range(8)
    ]
    title = "x86-cpu: onnxruntime fp32: truth and predictions (score >= 0.25)"
    figure = plots.detection_grid(
        images, samples, ["circle"], title, tmp_path / "g.png", threshold=0.25
    )
    assert _texts(figure).count("no box with score >= 0.25") == 7
    # the title sits above the column headers, not across them, as saved
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    headers = [axis.title.get_window_extent(renderer) for axis in figure.axes[:2]]
    [suptitle] = [
        t.get_window_extent(renderer) for t in figure.texts if t.get_text().startswith("x86-cpu")
    ]
    assert all(suptitle.y0 >= header.y1 for header in headers)
    assert suptitle.x0 >= 0 and suptitle.x1 <= figure.bbox.width
