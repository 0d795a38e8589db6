"""The CLI's Reporter: stage lines and rich progress bars on stderr."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from tango_ci.printable import printable
from tango_ci.progress import Reporter, Task


class _RichTask(Task):
    def __init__(self, progress: Progress, task_id: Any) -> None:
        self.progress, self.task_id = progress, task_id

    def update(
        self, completed: float | None = None, total: float | None = None, **fields: Any
    ) -> None:
        info = escape(
            printable(
                "  ".join(
                    f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                    for k, v in fields.items()
                )
            )
        )
        kwargs: dict[str, Any] = {"info": info} if fields else {}
        if completed is not None:
            kwargs["completed"] = completed
        if total is not None:
            kwargs["total"] = total
        self.progress.update(self.task_id, **kwargs)

    def close(self) -> None:
        self.progress.remove_task(self.task_id)


class RichReporter(Reporter):
    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        )

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def stage_started(self, stage: str, run_id: str) -> None:
        self.console.print(f"[bold cyan]▶ {stage}[/]  [dim]run {run_id}[/]")

    def stage_finished(self, stage: str, manifest: dict) -> None:
        outputs = ", ".join(sorted(manifest["outputs"])) or "nothing"
        self.console.print(
            f"[green]✓ {stage}[/] in {manifest['duration_s']:.1f} s  [dim]wrote {outputs}[/]"
        )

    def task(self, description: str, total: float | None = None) -> Task:
        return _RichTask(self.progress, self.progress.add_task(description, total=total, info=""))

    def log(self, message: str) -> None:
        # messages quote names from outside: one line however long (CI logs are not a
        # terminal), never read as markup
        self.console.print(f"  {escape(printable(message))}", highlight=False, soft_wrap=True)
