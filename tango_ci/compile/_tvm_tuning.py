"""MetaSchedule tuning for the TVM backend, with a database reused across builds.

Needs ``cloudpickle`` and ``xgboost`` (MetaSchedule imports them without declaring them) and an
``apache-tvm-ffi`` release whose TuneContext works (0.1.14.post1; 0.1.15.post2 crashes).
Builder workers spend 20-30 s importing TVM's tensor intrinsics before their first build, so
the build timeout is raised well above MetaSchedule's default of 30 s.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from tango_ci.exceptions import MissingDependencyError

BUILD_TIMEOUT_S = 240
RECORDS = "database_tuning_record.json"


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
            builder=ms.builder.LocalBuilder(timeout_sec=BUILD_TIMEOUT_S),
            seed=0,
        )
    mod = relax.transform.MetaScheduleApplyDatabase(str(database))(mod)
    return mod, {
        "trials": trials,
        "database": str(database),
        "reused": reused,
        "seconds": round(time.perf_counter() - began, 1),
    }
