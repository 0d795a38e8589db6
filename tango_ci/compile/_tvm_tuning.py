"""MetaSchedule tuning for the TVM backend, with a database reused across builds.

Needs ``cloudpickle`` and ``xgboost`` (MetaSchedule imports them without declaring them) and an
``apache-tvm-ffi`` release whose TuneContext works (0.1.14.post1; 0.1.15.post2 crashes).
Builder workers import TVM's tensor intrinsics before their first build, so the build timeout
is raised well above MetaSchedule's default of 30 s.

That import parses about 500 TVMScript functions, and TVM's parser calls ``inspect.stack()``
for each. For every frame of the frozen import machinery on the stack, ``inspect.getmodule``
finds no module by that file name and walks the whole of ``sys.modules``, each time: about
100 s on a 2-core host. :func:`quick_source_lookup` names those frames' modules in inspect's
own cache first (in this process and in each builder and runner worker): about 10 s.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tango_ci.exceptions import MissingDependencyError

BUILD_TIMEOUT_S = 240
RECORDS = "database_tuning_record.json"


def quick_source_lookup() -> None:
    """Tell ``inspect`` which modules the frozen import machinery's frames belong to (their
    true modules), so looking up a frame's source never walks ``sys.modules`` for them."""
    import inspect

    for name in ("importlib._bootstrap", "importlib._bootstrap_external"):
        inspect.modulesbyfile.setdefault(f"<frozen {name}>", name)


def _check_dependencies() -> None:
    for module, package in (("cloudpickle", "cloudpickle"), ("xgboost", "xgboost-cpu")):
        try:
            __import__(module)
        except ImportError:
            raise MissingDependencyError(
                feature="TVM tuning (MetaSchedule)", package=package, hint=f"pip install {package}"
            ) from None


def has_records(database: Path) -> bool:
    path = database / RECORDS
    return path.is_file() and path.stat().st_size > 0


def tune(mod, target, database: Path, trials: int):
    """Tune ``mod`` for ``target`` (or reuse ``database``) and apply the best schedules."""
    quick_source_lookup()
    import tvm
    from tvm import relax
    from tvm.s_tir import meta_schedule as ms

    _check_dependencies()
    logging.getLogger("tvm.s_tir.meta_schedule").setLevel(logging.WARNING)
    reused = has_records(database)
    began = time.perf_counter()
    mod = tvm.transform.Sequential(
        [
            relax.transform.DecomposeOpsForInference(),
            relax.transform.CanonicalizeBindings(),
            relax.pipeline.zero_pipeline(),
        ]
    )(mod)
    if not reused:
        database.mkdir(parents=True, exist_ok=True)
        ms.relax_integration.tune_relax(
            mod,
            params={},
            target=target,
            work_dir=str(database),
            max_trials_global=trials,
            num_trials_per_iter=min(64, trials),
            builder=ms.builder.LocalBuilder(
                timeout_sec=BUILD_TIMEOUT_S, initializer=quick_source_lookup
            ),
            runner=ms.runner.LocalRunner(initializer=quick_source_lookup),
            seed=0,
        )
    mod = relax.transform.MetaScheduleApplyDatabase(str(database))(mod)
    return mod, {
        "trials": trials,
        "database": str(database),
        "reused": reused,
        "seconds": round(time.perf_counter() - began, 1),
    }
