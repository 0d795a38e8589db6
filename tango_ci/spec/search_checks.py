"""The search block's cross-field checks: families that fit the strategy, and baselines."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from tango_ci.tasks import BaseTask


class Checker(Protocol):
    def add(self, field_path: tuple, message: str, *, prefer_key: bool = False) -> None: ...


def check_search(checker: Checker, search: dict, task: BaseTask) -> None:
    """Families fit the strategy: plain ones for trials (and baselines), one elastic family
    for a supernet."""
    supernet = search.get("strategy") == "supernet"
    if supernet and not task.elastic_families:
        checker.add(
            ("search", "strategy"),
            f"task {task.name} has no elastic family to train a supernet of; use trials",
        )
        return
    allowed = task.elastic_families if supernet else task.families
    how = " to train a supernet of" if supernet else ""
    for index, family in enumerate(search.get("families", [])):
        if family not in allowed:
            checker.add(
                ("search", "families", index),
                f"'{family}' is not a {task.name} family{how}; use {', '.join(allowed)}",
            )
    if supernet and len(search.get("families", [])) > 1:
        checker.add(("search", "families"), "a supernet is trained of one elastic family")
    if search.get("baselines") and (supernet or not task.trains_baselines):
        why = "a trials search" if supernet else f"task {task.name}"
        checker.add(
            ("search", "baselines"),
            f"baselines are trained beside {why} only; remove them"
            if supernet
            else f"baselines are not supported for {why} yet; remove them",
        )
    for index, baseline in enumerate(search.get("baselines", [])):
        if baseline["family"] not in task.families:
            checker.add(
                ("search", "baselines", index, "family"),
                f"'{baseline['family']}' is not a {task.name} family; "
                f"use {', '.join(task.families)}",
            )
