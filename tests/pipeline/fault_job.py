"""The slow job of `slow_job`, run as a driver joined to a Ray cluster, so a test can kill its parts.

    python -m tests.pipeline.fault_job RUN_DIR CORPUS GCS_ADDRESS

Each batch also leaves its worker's pid under RUN_DIR/pids/, so a test knows which processes
run the stage. The project folder travels as the driver's working_dir, as with `synthmix submit`.
"""

import os
import sys
from pathlib import Path

import pyarrow as pa

from synthmix.stages.seeds import Seeds
from tests.pipeline.slow_job import SlowUpper, make_job

ROOT = Path(__file__).resolve().parents[2]


class PidRecordingUpper(SlowUpper):
    def transform(self, batch: pa.Table) -> pa.Table:
        pids = self.context.run_dir / "pids"
        pids.mkdir(exist_ok=True)
        (pids / str(os.getpid())).touch()
        return super().transform(batch)


REGISTRY = {"seeds": Seeds, "slow_upper": PidRecordingUpper}


if __name__ == "__main__":
    import ray

    from synthmix.pipeline.cli.submit import WORKING_DIR_EXCLUDES
    from synthmix.pipeline.runner import run_job

    # Import by module name: classes of __main__ would travel to Ray workers by value.
    from tests.pipeline import fault_job

    run_dir, corpus, address = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    ray.init(address=address, runtime_env={"working_dir": str(ROOT), "excludes": WORKING_DIR_EXCLUDES})
    run_job(make_job(run_dir, corpus), fault_job.REGISTRY)
