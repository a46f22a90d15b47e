"""Where each stage of a finished run stands: fresh, stale, missing, interrupted or undecided.

Reads the run directory (its recorded `job.yaml`, `run.json` and manifests) and plans the
recorded job with the stage classes it is given, to compare fingerprints; it needs no other
file of the job. Used by `synthmix status`, the funnel of `synthmix inspect` and the report.
"""

from __future__ import annotations

from pathlib import Path

from synthmix.pipeline.config import ConfigError, parse_job
from synthmix.pipeline.graph import build_graph
from synthmix.pipeline.inputs.seed_files import SeedInputError
from synthmix.pipeline.llm.models import ModelSpecError
from synthmix.pipeline.store import RUN_INFO, StageDir, StageState, read_json

UNDECIDED = "undecided"  # complete, but this machine lacks an input its fingerprint needs


def stage_statuses(run_dir: Path, registry: dict) -> list[dict]:
    """Each stage of the run's recorded job: state, counts and wall time from its manifest.

    Needs the run directory and this code, not the job's folder: a complete stage whose inputs
    are not on this machine (the run was copied away from them) is `undecided`, with `why`
    naming the missing input; its counts, reasons and wall time still come from its manifest.
    """
    from synthmix.pipeline.graph import stages_with_unreadable_inputs

    job = _recorded_job(run_dir)
    job_dir = recorded_job_dir(run_dir)
    undecided = stages_with_unreadable_inputs(job, registry, run_dir, job_dir)
    decidable = job.model_copy(update={"stages": [entry for entry in job.stages if entry.name not in undecided]})
    plan = {node.name: node for node in build_graph(decidable, registry, run_dir=run_dir, job_dir=job_dir)} if decidable.stages else {}
    rows = []
    for entry in job.stages:
        stage_dir = StageDir(run_dir, entry.name)
        node = plan.get(entry.name)
        state = stage_dir.state(node.fingerprint).value if node else _state_without_fingerprint(stage_dir)
        manifest = stage_dir.manifest() or {}
        if not manifest and stage_dir.progress() is not None:
            manifest = stage_dir.unit_counts().to_json()
        row = {
            "stage": entry.name,
            "state": state,
            "rows_in": manifest.get("rows_in"),
            "rows_out": manifest.get("rows_out"),
            "rejected": manifest.get("rejected", {}),
            "wall_s": manifest.get("wall_s"),
        }
        if state == UNDECIDED:
            row["why"] = undecided[entry.name]
        rows.append(row)
    return rows


def _recorded_job(run_dir: Path):
    snapshot = run_dir / "job.yaml"
    if not snapshot.exists():
        raise ConfigError(f"{run_dir} holds no job.yaml; is it a run directory? (run a job first: synthmix run JOB)")
    import yaml

    return parse_job(yaml.safe_load(snapshot.read_text(encoding="utf-8")), source=str(snapshot))


def recorded_job_dir(run_dir: Path) -> Path:
    """Where the job's relative paths were rooted when it ran (run.json); the working directory for older runs."""
    info = run_dir / RUN_INFO
    return Path(read_json(info)["job_dir"]) if info.exists() else Path(".")


def _state_without_fingerprint(stage_dir: StageDir) -> str:
    if stage_dir.manifest() is not None:
        return UNDECIDED
    return StageState.INTERRUPTED.value if stage_dir.progress() is not None else StageState.MISSING.value


def inspection_states(run_dir: Path, registry: dict) -> tuple[dict[str, str], dict[str, str]]:
    """States of the stages for the funnel and the report, and why the undecided ones are.

    Inspection never needs more than the run directory: when the recorded job does not plan
    with this code at all (a stage kind renamed since), every stage is judged by its folder
    alone (complete ones undecided) and the reason is the planning error.
    """
    from synthmix.pipeline.inspection.run_contents import SHARDS, stage_names

    try:
        rows = stage_statuses(run_dir, registry)
    except (ConfigError, ModelSpecError, SeedInputError) as error:
        names = [name for name in stage_names(run_dir) if name != SHARDS]
        states = {name: _state_without_fingerprint(StageDir(run_dir, name)) for name in names}
        return states, {name: f"the recorded job does not plan here: {error}" for name, state in states.items() if state == UNDECIDED}
    return {row["stage"]: row["state"] for row in rows}, {row["stage"]: row["why"] for row in rows if "why" in row}
