"""One root exception; the CLI prints its message as one red line and exits 1."""

from __future__ import annotations

from typing import Any


class TangoError(Exception):
    """Root of every error a user can cause or fix.

    Subclasses set ``_template``; keyword arguments fill it and stay available as attributes.
    """

    _template = "{message}"

    def __init__(self, message: str | None = None, **fields: Any) -> None:
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)
        self.message = message if message is not None else self._template.format(**fields)
        super().__init__(self.message)


class SpecError(TangoError):
    """A project or runner file is invalid; ``problems`` holds every finding."""

    _template = "{count} problem(s) in spec files"

    def __init__(self, problems: list) -> None:
        self.problems = problems
        first = problems[0].format() if problems else ""
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        super().__init__(first + more, count=len(problems))


class UnknownNameError(TangoError):
    _template = "unknown {kind} '{name}'; valid names: {valid}"


class MissingDependencyError(TangoError):
    _template = "{feature} needs the Python package '{package}', which is not installed ({hint})"


class StageInputError(TangoError):
    """A stage run before the one it needs; with ``project`` (its folder as the user would
    type it) the hint names it and the one command that runs every stage still missing."""

    _template = "stage '{stage}' needs {what}; run `tango {previous}` first"

    def __init__(self, project: str | None = None, **fields: Any) -> None:
        super().__init__(**fields)
        if project:
            self.message = (
                f"stage '{fields['stage']}' needs {fields['what']}; run `tango "
                f"{fields['previous']} {project}` first, or `tango run {project} --resume` "
                "for every stage still missing"
            )
            self.args = (self.message,)


class UnsupportedRequestError(TangoError):
    """A backend was asked for something its capability table does not list."""

    _template = "{backend} cannot {request}: {reason}"
