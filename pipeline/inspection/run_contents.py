"""What a run directory holds for inspection: its stages in job order and their Parquet files.

Stages come from the run's `job.yaml` (in the order the job lists them), then any other folder
with part files or a manifest (a stage since removed from the job, or one written by hand) in
the order they were written, then `shards/` when tokenized shards exist. Reading never needs the stage registry, so a run
stays inspectable after the code that made it has changed.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from synthmix.pipeline.config import ConfigError, JobConfig, parse_job
from synthmix.pipeline.store import MANIFEST, StageDir
from synthmix.pipeline.tokens.shards import INPUT_IDS, LOSS_MASK

SHARDS = "shards"
# Token id lists of tokenized rows: thousands of numbers per row that say nothing to a reader
# and are most of a shard's bytes. Inspection reads them only when a column list names them.
TOKEN_COLUMNS = (INPUT_IDS, LOSS_MASK)


class RunInspectionError(Exception):
    """A run, stage, row or filter that inspection cannot find or apply; the message says what to do."""


def stage_names(run_dir: Path) -> list[str]:
    """Stages of the run: job order first, then unlisted stage folders by name, then `shards`."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunInspectionError(f"run directory {run_dir} does not exist; pass the --run-dir of a `synthmix run`")
    listed = _job_stage_names(run_dir)
    unlisted = [
        path
        for path in run_dir.iterdir()
        if path.is_dir()
        and not path.name.startswith((".", "_"))
        and path.name != SHARDS
        and path.name not in listed
        and ((path / MANIFEST).exists() or any(path.glob("part-*.parquet")))
    ]
    unlisted.sort(key=lambda path: (path.stat().st_mtime_ns, path.name))
    names = [*listed, *(path.name for path in unlisted)]
    if shard_files(run_dir):
        names.append(SHARDS)
    return names


def _job_stage_names(run_dir: Path) -> list[str]:
    return [name for name, _ in job_stage_kinds(run_dir)]


def job_stage_kinds(run_dir: Path) -> list[tuple[str, str]]:
    """(name, kind) of each stage of the run's recorded job, in job order; none without job.yaml."""
    job = recorded_job(run_dir)
    return [(entry.name, entry.stage_kind) for entry in job.stages] if job is not None else []


def recorded_job(run_dir: Path) -> JobConfig | None:
    """The job the run recorded (`job.yaml`), or None when it has none."""
    snapshot = Path(run_dir) / "job.yaml"
    if not snapshot.exists():
        return None
    try:
        return parse_job(yaml.safe_load(snapshot.read_text(encoding="utf-8")), source=str(snapshot))
    except (ConfigError, yaml.YAMLError) as error:
        raise RunInspectionError(f"{snapshot} does not parse ({error}); the run directory is damaged") from None


def shard_files(run_dir: Path) -> list[Path]:
    return sorted((Path(run_dir) / SHARDS).glob("*.parquet"))


def data_files(run_dir: Path, stage: str, rejects: bool = False) -> list[Path]:
    """The stage's accepted part files (or its rejects); an error naming the stages when it has none."""
    run_dir = Path(run_dir)
    names = stage_names(run_dir)
    if stage not in names:
        raise RunInspectionError(f"stage '{stage}' is not in run {run_dir} (stages: {', '.join(names) or 'none'}); check the name")
    if stage == SHARDS:
        if rejects:
            raise RunInspectionError("shards have no rejects; inspect the stage that wrote them instead")
        return shard_files(run_dir)
    stage_dir = StageDir(run_dir, stage)
    files = stage_dir.reject_files() if rejects else stage_dir.part_files()
    if not files and not rejects and stage_dir.manifest() is None:
        raise RunInspectionError(f"stage '{stage}' of {run_dir} has no output yet; run it first (synthmix run JOB --run-dir {run_dir})")
    return files


def stage_manifest(run_dir: Path, stage: str) -> dict | None:
    """The committed manifest, or counts summed over committed units while a stage is unfinished."""
    if stage == SHARDS:
        return None
    stage_dir = StageDir(Path(run_dir), stage)
    manifest = stage_dir.manifest()
    if manifest is None and stage_dir.committed_units():
        return stage_dir.unit_counts().to_json()
    return manifest
