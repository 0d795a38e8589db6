"""Project and runner specs: YAML in, frozen dataclasses out, problems with file and line."""

from tango_ci.spec.loader import (
    check_file,
    display_path,
    find_repo_root,
    load_project,
    load_runner,
    spec_files,
)
from tango_ci.spec.models import (
    Constraints,
    DataSpec,
    EngineInfo,
    ProjectSpec,
    RunnerSpec,
    TargetSpec,
    to_dict,
)
from tango_ci.spec.names import name_taken
from tango_ci.spec.problems import Problem

__all__ = [
    "Constraints",
    "DataSpec",
    "EngineInfo",
    "Problem",
    "ProjectSpec",
    "RunnerSpec",
    "TargetSpec",
    "check_file",
    "display_path",
    "find_repo_root",
    "load_project",
    "load_runner",
    "name_taken",
    "spec_files",
    "to_dict",
]
