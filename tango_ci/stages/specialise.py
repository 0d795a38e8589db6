"""The specialise stage: one subnet of the trained supernet per target (strategy supernet).

In the workflows it runs on each target's device runner (``tango specialise --target T``), so
the latencies it judges subnets by are that device's. With ``search.strategy: trials`` there
is nothing to specialise: every target deploys the train stage's network, and the stage only
records that.
"""

from __future__ import annotations

from tango_ci.context import StageContext
from tango_ci.stages.compile import selected_targets


def run(ctx: StageContext) -> None:
    if ctx.spec.search.strategy != "supernet":
        ctx.recorder.summary["skipped"] = (
            "search.strategy is trials: every target deploys the trained network"
        )
        return
    from tango_ci.supernet.specialise import specialise_target

    ctx.run.require("specialise", "train", "the trained supernet")
    targets = {}
    for target in selected_targets(ctx):
        summary = specialise_target(ctx, target)
        ctx.reporter.log(
            f"{target.name}: {summary['architecture']}, validation accuracy "
            f"{summary['val_accuracy']:.4f}, {summary['latency_ms']:.3g} ms "
            f"({summary['latency_source']}), {summary['subnets_scored']} subnets in "
            f"{summary['seconds']:.0f} s"
        )
        targets[target.name] = summary
    ctx.recorder.summary["targets"] = targets
