"""A bounded list of problems: a million bad label lines must not flood the terminal or the
memory."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from tango_ci.spec.problems import Problem

MAX_PROBLEMS = 1000


def _file_and_line(problem: Problem) -> tuple[str, int]:
    return problem.file, problem.line


@dataclass
class ProblemList:
    """The first ``limit`` problems (in the order found, or by file and line when ``ordered``)
    and how many there were in all, in memory that does not grow with their number."""

    ordered: bool = False
    limit: int = MAX_PROBLEMS
    kept: list[Problem] = field(default_factory=list)
    total: int = 0

    def add(self, problems: Iterable[Problem]) -> None:
        for problem in problems:
            self.total += 1
            if self.ordered or len(self.kept) < self.limit:
                self.kept.append(problem)
            if len(self.kept) > 2 * self.limit:  # sorting is stable: ties keep their order
                self.kept = sorted(self.kept, key=_file_and_line)[: self.limit]

    def result(self, where: str) -> list[Problem]:
        """The kept problems and a last one at ``where`` saying how many more there were."""
        found = sorted(self.kept, key=_file_and_line) if self.ordered else self.kept
        found = found[: self.limit]
        if self.total > len(found):
            more = self.total - len(found)
            found = [
                *found,
                Problem(where, 0, 0, "", f"... and {more} more problem(s), {self.total} in all"),
            ]
        return found
