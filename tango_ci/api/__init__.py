"""The Python API. The CLI is a thin layer over these functions; nothing here prints.

``_project``: a project on this machine (validate, data, run, the gate's verdict);
``_gitops``: plan, publish, promote, the registry and the local forge;
``_runners``: device runners' latency models (profile, report);
``_deploy``: deployment bundles.
"""

from tango_ci.api._deploy import deploy_run, deploy_version
from tango_ci.api._gitops import (
    artifact_history,
    artifact_versions,
    create_forge,
    forge_status,
    plan_change,
    promote,
    promote_merged,
    promotion_lines,
    publish_run,
    pull_artifact,
    registry_overview,
    rollback,
    write_github_output,
)
from tango_ci.api._project import (
    GateFailed,
    SynthRequest,
    check_gate,
    check_runner,
    check_yolo_dataset,
    load_project,
    probe_runner,
    pull_data,
    run,
    run_summary,
    synth_data,
    synth_project_data,
    track_data,
    validate,
)
from tango_ci.api._runners import ProfileOutcome, latency_report, profile_runner

__all__ = [
    "GateFailed",
    "ProfileOutcome",
    "SynthRequest",
    "artifact_history",
    "artifact_versions",
    "check_gate",
    "check_runner",
    "check_yolo_dataset",
    "create_forge",
    "deploy_run",
    "deploy_version",
    "forge_status",
    "latency_report",
    "load_project",
    "plan_change",
    "probe_runner",
    "profile_runner",
    "promote",
    "promote_merged",
    "promotion_lines",
    "publish_run",
    "pull_artifact",
    "pull_data",
    "registry_overview",
    "rollback",
    "run",
    "run_summary",
    "synth_data",
    "synth_project_data",
    "track_data",
    "validate",
    "write_github_output",
]
