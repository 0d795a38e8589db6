"""The model registry: git tags in GTO's formats, written and read with GTO.

Each (project, target) pair is one artifact named ``<project>-<target>``: every device gets its
own network. Versions are annotated tags ``NAME@vX.Y.Z``; stage assignments are
``NAME#STAGE#N``. A version tag's message is ``tango-ci/1`` followed by a JSON record: where
the artifact lives in the DVC remote (directory hash and each file's sha256), its metrics, its
architecture and the run id, so a device fetches exactly what was promoted.

Nothing is ever deleted or moved: a rollback is a new assignment of an earlier version.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tango_ci.exceptions import TangoError
from tango_ci.gitrepo import clean_environment, git, has_remote
from tango_ci.registry.records import UntrustedDataError, check_record, parse_json

RECORD_HEADER = "tango-ci/1"
_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)\Z")


class PromotionConflict(TangoError):
    _template = (
        "{name}: another promotion was pushed to {remote} meanwhile ({tags} already "
        "there with other contents); {remote} was not changed and this promotion was "
        "withdrawn. Run `git fetch --tags {remote}`, look at `tango registry show "
        "{name}`, and promote again if it is still wanted"
    )


def _quiet():
    """GTO's writing functions echo what they did; the CLI says it its own way."""
    import contextlib
    import io

    return contextlib.redirect_stdout(io.StringIO())


def artifact_name(project: str, target: str) -> str:
    return f"{project}-{target}"


def parse_reference(text: str) -> tuple[str, str | None, str | None]:
    """``NAME``, ``NAME@v1.2.3`` or ``NAME#stage`` -> (name, version, stage)."""
    if "@" in text:
        name, version = text.split("@", 1)
        if not _VERSION.match(version):
            raise TangoError(f"'{version}' in '{text}' is not a version like v1.2.3")
        return name, version, None
    if "#" in text:
        name, stage = text.split("#", 1)
        if not stage or not name:
            raise TangoError(f"'{text}' is not NAME#STAGE, NAME@vX.Y.Z or NAME")
        return name, None, stage
    if not text:
        raise TangoError("an empty artifact name; give NAME#STAGE, NAME@vX.Y.Z or NAME")
    return text, None, None


def encode_record(record: dict) -> str:
    return f"{RECORD_HEADER}\n{json.dumps(record, indent=1, sort_keys=True)}"


def decode_record(message: str | None) -> dict | None:
    """The record in a tag message; None when there is none, or it is not a JSON object."""
    if not message or not message.startswith(RECORD_HEADER):
        return None
    try:
        record = parse_json(message[len(RECORD_HEADER) :], "a tag message")
    except UntrustedDataError:
        return None
    return record if isinstance(record, dict) else None


def bump(previous: dict | None, record: dict) -> tuple[str, str]:
    """The next version and why: task or classes changed -> major; another architecture ->
    minor; a retrain of the same architecture -> patch. The first version is v1.0.0."""
    if previous is None:
        return "v1.0.0", "first version"
    match = _VERSION.match(previous["version"])
    if match is None:
        raise TangoError(
            f"the latest version '{previous['version']}' is not like v1.2.3; "
            "the next version cannot be derived from it"
        )
    major, minor, patch = (int(x) for x in match.groups())
    old = previous.get("record") or {}
    if old.get("task") != record.get("task") or old.get("classes") != record.get("classes"):
        return f"v{major + 1}.0.0", "task or classes changed (major)"
    if old.get("architecture") != record.get("architecture"):
        return f"v{major}.{minor + 1}.0", (
            f"architecture {old.get('architecture')} -> {record.get('architecture')} (minor)"
        )
    return f"v{major}.{minor}.{patch + 1}", "retrain of the same architecture (patch)"


@dataclass
class Registry:
    root: Path
    remote: str = "origin"

    # ------------------------------------------------------------------ reading (GTO)
    def _show(self, name: str | None = None):
        import gto.api

        try:  # GTO's defaults: what `gto show` prints
            return gto.api.show(self.root, name)
        except Exception as error:  # GTO raises its own types for unknown names etc.
            raise TangoError(f"registry: {error}") from None

    def names(self) -> list[str]:
        return sorted(self._show())

    def overview(self) -> list[dict]:
        """One row per artifact: its latest version and the version(s) in each stage."""
        return [
            {"name": name, "latest": row["version"], "stages": row["stage"]}
            for name, row in sorted(self._show().items())
        ]

    def require(self, name: str) -> None:
        """An error listing the known artifacts when ``name`` is not one of them."""
        names = self.names()
        if name not in names:
            raise TangoError(
                f"no artifact '{name}' in the registry; artifacts: {', '.join(names) or 'none'}"
            )

    def versions(self, name: str) -> list[dict]:
        """Every version of ``name``, newest first, with its current stages and its record."""
        self.require(name)
        current = self._stages(name)
        out = []
        for version in self._show(name):
            registration = (version.get("registrations") or [{}])[0]
            out.append(
                {
                    "version": version["version"],
                    "commit": version["commit_hexsha"],
                    "created_at": str(version["created_at"]),
                    "tag": version.get("ref"),
                    "stages": sorted(s for s, v in current.items() if v == version["version"]),
                    "record": decode_record(registration.get("message")),
                }
            )
        return out

    def stages(self, name: str) -> dict[str, str]:
        """stage -> the version assigned to it last (what `gto show` lists as #stage)."""
        self.require(name)
        return self._stages(name)

    def _stages(self, name: str) -> dict[str, str]:
        latest: dict[str, str] = {}
        for event in self._history(name):
            if event["event"] == "assignment":
                latest[event["stage"]] = event["version"]
            elif (
                event["event"] == "unassignment" and latest.get(event["stage"]) == event["version"]
            ):
                del latest[event["stage"]]
        return latest

    def stage_version(self, name: str, stage: str) -> str | None:
        return self.stages(name).get(stage)

    def history(self, name: str) -> list[dict]:
        """Registrations and assignments in the order they happened (tag number breaks ties)."""
        self.require(name)
        return self._history(name)

    def _history(self, name: str) -> list[dict]:
        import gto.api

        def order(event: dict) -> tuple:
            number = event.get("ref", "").rsplit("#", 1)[-1]
            return (event["timestamp"], int(number) if number.isdigit() else 0)

        events = sorted(gto.api.history(self.root, name, ascending=True), key=order)
        return [
            {
                "event": e["event"],
                "version": e["version"],
                "stage": e.get("stage"),
                "tag": e.get("ref"),
                "created_at": str(e["timestamp"]),
                "author": e.get("author"),
                "message": (e.get("message") or "").split("\n")[0],
            }
            for e in events
        ]

    def resolve(self, reference: str) -> dict:
        """``NAME#stage`` / ``NAME@vX.Y.Z`` / ``NAME`` (latest) -> that version's entry."""
        name, version, stage = parse_reference(reference)
        versions = self.versions(name)
        if stage:
            version = self._stages(name).get(stage)
            if version is None:
                raise TangoError(f"{name} has no version in stage '{stage}'")
        chosen = next((v for v in versions if version in (None, v["version"])), None)
        if chosen is None:
            raise TangoError(
                f"{name} has no version {version}; versions: "
                f"{', '.join(v['version'] for v in versions)}"
            )
        if chosen["record"] is None:
            raise TangoError(
                f"{name}@{chosen['version']} was not registered by TANGO-CI "
                "(its tag message holds no artifact record)"
            )
        check_record(chosen["record"], f"{name}@{chosen['version']}: the record in its tag")
        return {"name": name, **chosen}

    # ------------------------------------------------------------------ writing (GTO)
    def fetch(self) -> None:
        if has_remote(self.root, self.remote):
            git(self.root, "fetch", "--quiet", self.remote, "refs/tags/*:refs/tags/*")

    def _new_tags(self, before: set[str]) -> list[str]:
        return sorted(set(git(self.root, "tag", "--list").splitlines()) - before)

    def register(
        self, name: str, record: dict, ref: str = "HEAD", version: str | None = None
    ) -> tuple[str, str]:
        """Register a new version of ``name`` at ``ref``; returns (version, why)."""
        import gto.api

        previous = self.versions(name)[0] if name in self.names() else None
        why = "given"
        if version is None:
            version, why = bump(previous, record)
        try:
            self._after_last_tag(name)
            with _quiet():
                gto.api.register(
                    self.root,
                    name,
                    ref=ref,
                    version=version,
                    message=encode_record(record | {"version": version}),
                )
        except Exception as error:
            raise TangoError(f"registry: cannot register {name}@{version}: {error}") from None
        return version, why

    def _after_last_tag(self, name: str) -> None:
        """GTO orders events by their tags' times, to the second: make this one later."""
        import time

        stamps = git(
            self.root,
            "for-each-ref",
            "--format=%(creatordate:unix)",
            f"refs/tags/{name}@*",
            f"refs/tags/{name}#*",
        ).split()
        last = max((int(s) for s in stamps), default=0)
        deadline = time.time() + 2  # a tag from a clock ahead of ours must not hang us
        while time.time() < last + 1 and time.time() < deadline:
            time.sleep(0.05)

    def assign(self, name: str, version: str, stage: str, message: str) -> str:
        import gto.api

        before = set(git(self.root, "tag", "--list").splitlines())
        self._after_last_tag(name)
        try:
            with _quiet():  # force: a rollback assigns a version that held the stage before
                gto.api.assign(self.root, name, stage, version=version, message=message, force=True)
        except Exception as error:
            raise TangoError(
                f"registry: cannot assign {name}@{version} to {stage}: {error}"
            ) from None
        created = self._new_tags(before)
        return created[0] if created else ""

    def publish(self, name: str, tags: list[str]) -> None:
        """Push ``tags`` atomically; on failure the local tags of this attempt (never
        published) are withdrawn. A tag already on the remote with other contents is a lost
        race (:class:`PromotionConflict`); any other failure gives git's own message."""
        if not tags or not has_remote(self.root, self.remote):
            return
        refs = [f"refs/tags/{t}" for t in tags]
        result = subprocess.run(
            ["git", "push", "--atomic", "--porcelain", self.remote, *refs],
            cwd=self.root,
            capture_output=True,
            text=True,
            env=clean_environment(),
        )
        if result.returncode == 0:
            return
        ours = {t: git(self.root, "rev-parse", f"refs/tags/{t}") for t in tags}
        listed = git(self.root, "ls-remote", "--tags", self.remote, *refs, check=False)
        theirs = {
            line.split()[1][len("refs/tags/") :]: line.split()[0]
            for line in listed.splitlines()
            if len(line.split()) == 2
        }
        taken = [t for t in tags if t in theirs and theirs[t] != ours[t]]
        for tag in tags:
            git(self.root, "tag", "-d", tag, check=False)
        if taken:
            raise PromotionConflict(name=name, remote=self.remote, tags=", ".join(taken))
        lines = (result.stderr.strip() or result.stdout.strip()).splitlines()
        raise TangoError(
            f"{name}: pushing {', '.join(tags)} to {self.remote} failed "
            f"({lines[-1] if lines else 'no output'}); the local tags were "
            "withdrawn, nothing was published"
        )

    def promote(
        self,
        name: str,
        version: str,
        stage: str = "prod",
        *,
        message: str = "",
        push: bool = True,
        fetch: bool = True,
    ) -> str:
        """Assign ``version`` to ``stage`` and publish the tag; returns the new tag."""
        if fetch:
            self.fetch()
        versions = {v["version"] for v in self.versions(name)}
        if version not in versions:
            raise TangoError(
                f"{name} has no version {version}; versions: {', '.join(sorted(versions))}"
            )
        if self.stage_version(name, stage) == version:
            raise TangoError(f"{name}@{version} is already in stage {stage}")
        tag = self.assign(name, version, stage, message or f"promote {version} to {stage}")
        if push:
            self.publish(name, [tag])
        return tag

    def rollback(
        self, name: str, stage: str = "prod", *, push: bool = True, fetch: bool = True
    ) -> tuple[str, str, str]:
        """Assign again the version that held ``stage`` before the current one.

        Returns (from version, to version, new tag); nothing is deleted.
        """
        if fetch:
            self.fetch()
        current = self.stage_version(name, stage)
        if current is None:
            raise TangoError(f"{name} has no version in stage {stage}; nothing to roll back")
        # the stage's history as a stack: a promotion pushes, a rollback pops, so rolling
        # back twice goes two versions back
        stack: list[str] = []
        for event in self.history(name):
            if event["event"] != "assignment" or event["stage"] != stage:
                continue
            if event["message"].startswith("rollback") and stack:
                stack.pop()
                while stack and stack[-1] != event["version"]:
                    stack.pop()
                if not stack:
                    stack.append(event["version"])
            elif not stack or stack[-1] != event["version"]:
                stack.append(event["version"])
        if len(stack) < 2:
            raise TangoError(
                f"{name}: {current} is the only version left in the history of "
                f"stage {stage}; there is nothing to roll back to"
            )
        previous = stack[-2]
        tag = self.assign(name, previous, stage, f"rollback {stage} from {current} to {previous}")
        if push:
            self.publish(name, [tag])
        return current, previous, tag
