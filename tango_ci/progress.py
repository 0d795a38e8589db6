"""How long work tells the outside world about itself. The API calls a Reporter; the CLI
gives it one that draws rich progress bars, tests give the silent default or a recorder."""

from __future__ import annotations

from typing import Any


class Task:
    """One bar: ``update`` sets how far it is, plus fields shown beside it."""

    def update(
        self, completed: float | None = None, total: float | None = None, **fields: Any
    ) -> None:
        """Set progress; optional."""

    def close(self) -> None:
        """The work ended; optional."""


class Reporter:
    """The silent reporter. Subclasses override what they show."""

    def stage_started(self, stage: str, run_id: str) -> None:
        """A stage began."""

    def stage_finished(self, stage: str, manifest: dict) -> None:
        """A stage wrote its manifest."""

    def task(self, description: str, total: float | None = None) -> Task:
        return Task()

    def log(self, message: str) -> None:
        """A line worth showing to a person (what was skipped, reused, decided)."""


SILENT = Reporter()
