"""The report's per-class table: class names from folder names are shown as text (no column
break, no line break, no HTML), and a class without images or predictions reads as a dash,
not as a score of zero."""

from __future__ import annotations

from pathlib import Path

from tango_ci.printable import markdown_cell
from tango_ci.tasks.classification import ClassificationTask


def test_class_names_are_one_cell_of_text_and_undefined_scores_are_dashes(tmp_path: Path) -> None:
    classes = ["a|pipe", "new\nline", "<img src=x onerror=alert(1)>"]
    confusion = [[2, 0, 0], [1, 1, 0], [0, 0, 0]]  # no image of the third; none predicted as it
    per_class = {
        "a|pipe": {"precision": 2 / 3, "recall": 1.0, "support": 2},
        "new\nline": {"precision": 1.0, "recall": 0.5, "support": 2},
        "<img src=x onerror=alert(1)>": {"precision": 0.0, "recall": 0.0, "support": 0},
    }
    metrics = {"task_metrics": {"per_class": per_class, "confusion": confusion, "classes": classes}}
    lines, images = ClassificationTask().report_details(None, "cpu", metrics, "t", tmp_path)
    assert lines[2:] == [
        "| a\\|pipe | 0.667 | 1.000 | 2 |",
        "| new\\nline | 1.000 | 0.500 | 2 |",
        "| &lt;img src=x onerror=alert(1)&gt; | – | – | 0 |",
        "",
        "–: no image of the class here (recall), or none predicted as it (precision)",
    ]
    assert (tmp_path / images["confusion-cpu"]).is_file()
    assert markdown_cell("x" * 500) == "x" * 200
