"""A job with a slow stage whose run directory is an s3:// URI, run as its own process so a
test can kill -9 it mid-stage.

python -m tests.storage.s3_slow_job RUN_URI SEEDS_URI     (PROCESSED_LOG: a local file of ids)
"""

import os
import sys
import time

import pyarrow as pa
import pyarrow.compute

from pipeline.config import parse_job
from pipeline.runner import run_job
from stages.seeds import Seeds
from tests.pipeline.slow_job import SlowUpper

PROCESSED_LOG = "SYNTHMIX_TEST_PROCESSED_LOG"


class LocallyLoggedUpper(SlowUpper):
    """tests/pipeline/slow_job's stage, logging the ids it processed to a local file: its run
    directory is a bucket now, which a plain `open` cannot append to."""

    def transform(self, batch: pa.Table) -> pa.Table:
        time.sleep(0.3)
        with open(os.environ[PROCESSED_LOG], "a", encoding="utf-8") as handle:
            handle.write("\n".join(batch["id"].to_pylist()) + "\n")
        return batch.append_column("upper", pa.compute.utf8_upper(batch["text"]))


REGISTRY = {"seeds": Seeds, "slow_upper": LocallyLoggedUpper}


def make_job(run_uri: str, seeds_uri: str):
    return parse_job(
        {"name": "s3-slow", "run_dir": run_uri, "ray": {"num_cpus": 2}, "stages": ["seeds", "slow_upper"], "seeds": {"path": seeds_uri}},
        source="s3_slow_job",
    )


if __name__ == "__main__":
    # Import by module name: classes of __main__ would travel to Ray workers by value.
    from tests.storage import s3_slow_job

    run_job(s3_slow_job.make_job(sys.argv[1], sys.argv[2]), s3_slow_job.REGISTRY)
