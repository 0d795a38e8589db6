from __future__ import annotations

import json

from tango_ci.spec.problems import Problem, format_field, problems_to_json


def test_field_paths_read_like_code() -> None:
    assert (
        format_field(("targets", 0, "constraints", "latency_ms"))
        == "targets[0].constraints.latency_ms"
    )
    assert format_field(()) == ""


def test_github_annotation_escapes_what_would_break_the_command() -> None:
    problem = Problem("projects/a,b/project.yaml", 3, 5, "name", "50% bad\nsecond line")
    assert problem.github_annotation() == (
        "::error file=projects/a%2Cb/project.yaml,line=3,col=5,title=tango validate::"
        "name: 50%25 bad\\nsecond line"  # the newline is shown, not kept: one line
    )
    assert problem.format() == "projects/a,b/project.yaml:3:5: name: 50% bad\\nsecond line"


def test_json_output_keeps_every_field() -> None:
    problem = Problem("f.yaml", 1, 2, "a.b", "bad")
    data = json.loads(problems_to_json([problem]))
    assert data == {
        "count": 1,
        "problems": [{"file": "f.yaml", "line": 1, "col": 2, "field": "a.b", "message": "bad"}],
    }
