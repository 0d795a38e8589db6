"""The search stage of a supernet project: no trials, only the record of what is trained.

The search of a supernet project happens per target after training (``tango specialise``);
this stage states the elastic space, so the report and later stages read it from the run.
"""

from __future__ import annotations

from tango_ci.context import StageContext
from tango_ci.models import get_elastic_family
from tango_ci.rundir import write_json
from tango_ci.supernet.train import resolutions_of


def record_supernet_space(ctx: StageContext) -> None:
    spec = ctx.spec
    family = spec.search.families[0]
    space = get_elastic_family(family).space(spec.data.image_size, resolutions_of(spec))
    record = {
        "strategy": "supernet",
        "family": family,
        "resolutions": list(space.resolutions),
        "largest": space.largest(),
        "smallest": space.smallest(),
        "largest_text": space.describe(space.largest()),
        "smallest_text": space.describe(space.smallest()),
    }
    write_json(ctx.folder / "supernet.json", record)
    ctx.recorder.output_file("supernet", ctx.folder / "supernet.json")
    ctx.recorder.summary.update(
        {
            "strategy": "supernet",
            "family": family,
            "resolutions": list(space.resolutions),
            "largest": record["largest_text"],
            "smallest": record["smallest_text"],
        }
    )
