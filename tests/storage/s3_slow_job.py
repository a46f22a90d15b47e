"""A job with a slow stage whose run directory is an s3:// URI, run as its own process so a
test can kill -9 it mid-stage.

python -m tests.storage.s3_slow_job RUN_URI SEEDS_URI LOG     (LOG: a local file of processed ids)
"""

import sys
import time

import pyarrow as pa
import pyarrow.compute

from synthmix.pipeline.config import parse_job
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.stage import StageParams
from synthmix.stages.seeds import Seeds
from tests.pipeline.slow_job import SlowUpper


class LogParams(StageParams):
    log: str  # a local file: the run directory is a bucket now, which `open` cannot append to


class LocallyLoggedUpper(SlowUpper):
    """tests/pipeline/slow_job's stage, logging the ids it processed to the local file its params name."""

    params = LogParams

    def transform(self, batch: pa.Table) -> pa.Table:
        time.sleep(0.3)
        with open(self.params.log, "a", encoding="utf-8") as handle:
            handle.write("\n".join(batch["id"].to_pylist()) + "\n")
        return batch.append_column("upper", pa.compute.utf8_upper(batch["text"]))


REGISTRY = {"seeds": Seeds, "slow_upper": LocallyLoggedUpper}


def make_job(run_uri: str, seeds_uri: str, log: str):
    return parse_job(
        {
            "name": "s3-slow",
            "run_dir": run_uri,
            "ray": {"num_cpus": 2},
            "stages": ["seeds", "slow_upper"],
            "seeds": {"path": seeds_uri},
            "slow_upper": {"log": log},
        },
        source="s3_slow_job",
    )


if __name__ == "__main__":
    # Import by module name: classes of __main__ would travel to Ray workers by value.
    from tests.storage import s3_slow_job

    run_job(s3_slow_job.make_job(*sys.argv[1:4]), s3_slow_job.REGISTRY)
