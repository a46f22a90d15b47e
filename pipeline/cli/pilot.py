"""`synthmix run JOB --pilot N`: the whole recipe over the first N seed chunks, in a run folder of its own.

The pilot is an ordinary job override, `<seeds stage>.max_chunks=N`, so it enters the seeds
stage's fingerprint and, through it, every stage downstream: a pilot's stages are never taken
for a full run's (or another pilot size's), whichever folder they land in. By default the pilot
also gets its own folder, `<run_dir>-pilot-N`, so trying a pilot does not turn a finished full
run stale. `synthmix plan` reads the pilot and projects it to a target.
"""

from __future__ import annotations

from pathlib import Path

from synthmix.pipeline.config import ConfigError, JobConfig, load_job

SEEDS_KIND = "seeds"


def load_pilot_job(job_file: str | Path, overrides: list[str], chunks: int) -> JobConfig:
    """The job with its seeds stage capped at `chunks` chunks and its run folder named for the pilot."""
    if chunks < 1:
        raise ConfigError(f"--pilot {chunks}: a pilot needs at least one seed chunk; pass e.g. --pilot 4")
    job = load_job(job_file, overrides)
    sources = [entry.name for entry in job.stages if entry.stage_kind == SEEDS_KIND]
    if not sources:
        raise ConfigError(f"{job_file}: --pilot caps the seeds stage, and this job has none; run it without --pilot")
    job = load_job(job_file, [*overrides, *(f"{name}.max_chunks={chunks}" for name in sources)])
    job.run_dir = pilot_run_dir(job, chunks)
    return job


def pilot_run_dir(job: JobConfig, chunks: int) -> str:
    """`runs/<name>-pilot-N` (or the job's own run_dir with that suffix): beside the full run, not in it."""
    base = job.run_dir or str(Path("runs") / job.name)
    return f"{base.rstrip('/')}-pilot-{chunks}"
