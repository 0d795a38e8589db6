"""Two projects of one name would share runs/<name>/, its latest link, tags and reports."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import MINIMAL_PROJECT
from tests.hostile.conftest import tango


def test_a_second_project_of_the_same_name_is_refused(spec_repo: Path) -> None:
    for folder in ("first", "second"):
        (spec_repo / "projects" / folder).mkdir()
        (spec_repo / "projects" / folder / "project.yaml").write_text(MINIMAL_PROJECT)
    result = tango("validate", cwd=spec_repo)
    assert result.code == 1
    assert result.stdout.splitlines() == [
        "projects/second/project.yaml:1:7: name: 'demo' is also the name of "
        "projects/first/project.yaml; runs, registry tags and reports are kept by project name"
    ]
    renamed = MINIMAL_PROJECT.replace("name: demo", "name: other")
    (spec_repo / "projects" / "second" / "project.yaml").write_text(renamed)
    assert tango("validate", cwd=spec_repo).code == 0
