"""A job with a deliberately slow stage, run as its own process so a test can kill -9 it.

python -m tests.pipeline.slow_job RUN_DIR CORPUS LOG
"""

import sys
import time
from pathlib import Path

import pyarrow as pa

from synthmix.pipeline.config import parse_job
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.stage import Execution, Resources, Stage
from synthmix.stages.seeds import Seeds


class SlowUpper(Stage):
    """Upper-cases text a few rows at a time, logging which ids each batch processed."""

    name = "slow_upper"
    input_columns = ("text",)
    output_fields = (pa.field("upper", pa.string()),)
    resources = Resources(num_cpus=0.5, batch_size=5)
    execution = Execution.FILE_TASKS

    def transform(self, batch: pa.Table) -> pa.Table:
        time.sleep(0.3)
        log = self.context.run_dir / "processed.log"
        with open(log, "a", encoding="utf-8") as handle:
            handle.write("\n".join(batch["id"].to_pylist()) + "\n")
        return batch.append_column("upper", pa.array([text.upper() for text in batch["text"].to_pylist()]))


REGISTRY = {"seeds": Seeds, "slow_upper": SlowUpper}


def make_job(run_dir: Path, corpus: Path):
    return parse_job(
        {"name": "slow", "run_dir": str(run_dir), "ray": {"num_cpus": 2}, "stages": ["seeds", "slow_upper"], "seeds": {"path": str(corpus)}},
        source="slow_job",
    )


if __name__ == "__main__":
    # Import by module name: classes of __main__ would travel to Ray workers by value.
    from tests.pipeline import slow_job

    run_dir, corpus = Path(sys.argv[1]), Path(sys.argv[2])
    run_job(slow_job.make_job(run_dir, corpus), slow_job.REGISTRY)
