"""A stage that sends one rendered request per row to one model of the job.

Subclasses implement `render_requests(batch)` (usually with `prompted_requests.attach_requests`)
and `transform(batch)` (reading each reply with `prompted_requests.read_reply`); their params
carry `model` (a name under the job's `models`) and `sampling` (defaults for this stage).

It lives beside `pipeline/stage.py`, above the engine layer it calls (`synthmix.pipeline.llm`), so that
the engine layer never imports the stage core (pyproject's layers contract).
"""

from __future__ import annotations

from typing import Any, ClassVar

import pyarrow as pa

from synthmix.pipeline.llm.processors import apply_llm
from synthmix.pipeline.stage import Stage

# Rendering is light Python; a quarter CPU leaves room beside an engine actor.
RENDER_CPUS = 0.25


class ModelStage(Stage):
    is_base: ClassVar[bool] = True

    def models_used(self) -> tuple[str, ...]:
        return (self.params.model,)

    def render_requests(self, batch: pa.Table) -> pa.Table:
        raise NotImplementedError(f"stage {self.name} must implement render_requests(batch)")

    def prepare(self, dataset: Any) -> Any:
        rendered = dataset.map_batches(self.render_requests, batch_format="pyarrow", num_cpus=RENDER_CPUS)
        return apply_llm(
            rendered,
            model=self.context.models[self.params.model],
            model_name=self.params.model,
            sampling=self.params.sampling.model_dump(exclude_unset=True),
        )
