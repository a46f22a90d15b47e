"""gather_samples: the answer stage's sampled answers, gathered into one row per instruction.

The answer stage writes one row per sample, so an interrupted run resumes per sample. The
self-consistency vote needs an instruction's samples together: this global stage groups them
(answers of one instruction may sit in any part file) into the answer contract the filtering
stages read: `samples` (in sample order), `answer` (the first sample; `consistency` replaces
it with one from the majority), `id` = hash(instruction id), `parent_id` = the instruction.
Instructions whose every sample failed have no row here: those samples are in the answer
stage's rejects.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import content_id
from synthmix.pipeline.stage import GlobalStage, Resources, with_columns


class GatherSamples(GlobalStage):
    name = "gather_samples"
    input_columns = (contracts.PARENT_ID, contracts.ANSWER, contracts.SAMPLE_INDEX)
    output_fields = (
        pa.field(contracts.ID, pa.string()),
        pa.field(contracts.PARENT_ID, pa.string()),
        pa.field(contracts.ANSWER, pa.string()),
        pa.field(contracts.SAMPLES, pa.list_(pa.string())),
    )
    resources = Resources(num_cpus=0.5, batch_size=1024)

    def run(self, dataset):
        return dataset.groupby(contracts.PARENT_ID).map_groups(gather_group, batch_format="pyarrow", num_cpus=0.5)


def gather_group(group: pa.Table) -> pa.Table:
    """One instruction's sample rows -> one row carrying the first row's columns and every answer."""
    group = group.take(pc.sort_indices(group, [(contracts.SAMPLE_INDEX, "ascending")]))
    first = group.slice(0, 1)
    samples = pa.array([group[contracts.ANSWER].to_pylist()], pa.list_(pa.string()))
    instruction_id = first[contracts.PARENT_ID][0].as_py()
    return with_columns(first, {contracts.ID: pa.array([content_id(f"{instruction_id}\x1fpair")]), contracts.SAMPLES: samples})
