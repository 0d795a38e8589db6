"""What every stage function receives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tango_ci.progress import SILENT, Reporter
from tango_ci.rundir import RunDir, StageRecorder
from tango_ci.spec import ProjectSpec


@dataclass
class StageContext:
    run: RunDir
    spec: ProjectSpec
    recorder: StageRecorder
    reporter: Reporter = SILENT
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def folder(self):
        return self.recorder.folder
