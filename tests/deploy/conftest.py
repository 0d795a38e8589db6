"""A tiny classification project measured once, and its bundle, for the deploy tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tango_ci import api
from tests.pipeline_helpers import make_repo


@pytest.fixture(scope="package")
def measured(tmp_path_factory):
    """A tiny classification project run through bench, and its project folder."""
    # 30 images a class: validation and test hold enough for monitoring's reference
    project = make_repo(tmp_path_factory.mktemp("deploy") / "repo", trials=1, per_class=30)
    run = api.run(project, bench_seconds=1, until="bench")
    return project, run


@pytest.fixture(scope="package")
def bundle(measured, tmp_path_factory) -> Path:
    project, run = measured
    out = tmp_path_factory.mktemp("bundles") / "cpu"
    target = api.load_project(project).targets[0].name
    api.deploy_run(project, target, out, run.id)
    return out
