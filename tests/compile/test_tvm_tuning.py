"""TVM tuning's speed-up for TVMScript parsing: inspect's module cache names the frozen import
machinery's files by their true modules, so the parser's ``inspect.stack()`` finds them at
once instead of walking all of ``sys.modules`` (and finding nothing) once per frame."""

from __future__ import annotations

import inspect
import subprocess
import sys

from tango_ci.compile._tvm_tuning import quick_source_lookup

PROBE = """
import inspect, sys
{seed}
import importlib._bootstrap as frozen
found = inspect.getmodule(frozen._find_and_load.__code__, "<frozen importlib._bootstrap>")
print(found.__name__ if found else None)
"""


def test_frozen_import_frames_are_found_by_their_own_module() -> None:
    quick_source_lookup()
    for name in ("importlib._bootstrap", "importlib._bootstrap_external"):
        assert sys.modules[inspect.modulesbyfile[f"<frozen {name}>"]] is sys.modules[name]
    # in a fresh interpreter: found by the cache with the seed, not at all without it
    seed = "from tango_ci.compile._tvm_tuning import quick_source_lookup; quick_source_lookup()"
    answers = [
        subprocess.run(
            [sys.executable, "-c", PROBE.format(seed=code)], capture_output=True, text=True
        ).stdout.strip()
        for code in (seed, "")
    ]
    assert answers == ["importlib._bootstrap", "None"]
