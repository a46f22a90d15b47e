"""The stage graph: which stage reads which, checked and fingerprinted before Ray starts."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from synthmix.pipeline.config import ConfigError, JobConfig, describe_validation_error
from synthmix.pipeline.fingerprint import CodeVersion, canonical_hash, code_version, fingerprint_parts
from synthmix.pipeline.stage import Stage, StageContext


@dataclass
class PlannedStage:
    """A stage of this job: its instance, where it reads from, and its expected fingerprint."""

    name: str
    stage: Stage
    input_name: str | None
    columns: tuple[str, ...]  # columns available to the next stage
    fingerprint: str
    fingerprint_parts: dict[str, Any]
    publishes: tuple[Path, ...] = ()  # paths outside its folder the stage writes (Stage.publishes)


def build_graph(
    job: JobConfig,
    registry: dict[str, type[Stage]],
    run_dir: Path,
    job_dir: Path = Path("."),
    prompt_hash=None,
    code_hash: CodeVersion = code_version,
) -> list[PlannedStage]:
    """Validate every stage section and wire stages in order; raise ConfigError naming the fault.
    `prompt_hash` and `code_hash` stand in for reading prompt files and module sources (tests)."""
    if prompt_hash is None:
        prompt_hash = _prompt_file_hash

    planned: dict[str, PlannedStage] = {}
    order: list[PlannedStage] = []
    previous: PlannedStage | None = None
    for entry in job.stages:
        if entry.name in planned:
            raise ConfigError(f"{job.source}: stage '{entry.name}' is listed twice under 'stages'; give the second a new name and `kind: {entry.stage_kind}`")
        stage_class = registry.get(entry.stage_kind)
        if stage_class is None:
            raise ConfigError(
                f"{job.source}: stage '{entry.name}' has kind '{entry.stage_kind}', which does not exist; known kinds: {', '.join(sorted(registry))}"
            )
        section = job.sections.get(entry.name, {})
        try:
            params = stage_class.params(**section)
        except ValidationError as error:
            raise ConfigError(describe_validation_error(error, job.source, prefix=entry.name)) from None

        upstream = _resolve_input(job, entry, stage_class, previous, planned)
        available = upstream.columns if upstream else ()
        context = StageContext(
            run_dir=run_dir,
            stage_name=entry.name,
            models=dict(job.models),
            job_dir=job_dir,
            upstream_dirs={upstream.name: run_dir / upstream.name} if upstream else {},
            input_publishes=upstream.publishes if upstream else (),
        )
        stage = stage_class(params, context)
        stage.check_execution()
        missing = [name for name in stage_class.input_columns if name not in available]
        if missing:
            upstream_text = f"stage '{upstream.name}' writes {', '.join(available)}" if upstream else "it has no input stage"
            raise ConfigError(
                f"{job.source}: stage '{entry.name}' needs column(s) {', '.join(missing)}, which no upstream stage writes "
                f"({upstream_text}); add the stage that writes them before it, or set `input:`"
            )
        for model_name in stage.models_used():
            if model_name not in job.models:
                raise ConfigError(
                    f"{job.source}: stage '{entry.name}' uses model '{model_name}', which is not defined under 'models' "
                    f"(defined: {', '.join(sorted(job.models)) or 'none'})"
                )
        parts = fingerprint_parts(
            kind=entry.stage_kind,
            params=params.model_dump(mode="json"),
            prompt_hashes=_prompt_hashes(job, entry.name, stage, prompt_hash),
            models={name: job.models[name].model_dump(mode="json") for name in stage.models_used()},
            code=code_hash(stage_class),
            inputs=[upstream.fingerprint] if upstream else [],
            extra=stage.fingerprint_extra(),
        )
        node = PlannedStage(
            name=entry.name,
            stage=stage,
            input_name=upstream.name if upstream else None,
            columns=stage_class.output_columns(available),
            fingerprint=canonical_hash(parts),
            fingerprint_parts=parts,
            publishes=tuple(stage.publishes()),
        )
        planned[entry.name] = node
        order.append(node)
        previous = node
    if not order:
        raise ConfigError(f"{job.source}: 'stages' is empty; list at least the seeds stage")
    check_publications(order, run_dir, job.source)
    for node in order:
        try:
            node.stage.check_downstream([later.stage for later in downstream_of(order, node.name)])
        except ConfigError as error:
            raise ConfigError(f"{job.source}: {error}") from None
    return order


def check_publications(order: list[PlannedStage], run_dir: Path, source: str) -> None:
    """Each published path has one owner, outside every stage's folder: no stage can then write
    or delete another's files. A path inside another's publication is allowed (mix.json in the
    shard folder): the owner of the folder carries over what it does not own."""
    owners: dict[str, str] = {}
    folders = {os.path.normpath(str(run_dir / node.name)): node.name for node in order}
    for node in order:
        for path in node.publishes:
            key = os.path.normpath(str(path))
            if key in owners:
                raise ConfigError(f"{source}: stages '{owners[key]}' and '{node.name}' both publish {path}; give one of them its own path in its section")
            inside = next((name for folder, name in folders.items() if key == folder or key.startswith(folder + os.sep)), None)
            if inside is not None:
                raise ConfigError(
                    f"{source}: stage '{node.name}' publishes {path}, inside the folder of stage '{inside}', "
                    f"which only that stage writes; choose a path outside it"
                )
            owners[key] = node.name


def downstream_of(order: list[PlannedStage], name: str) -> list[PlannedStage]:
    """The stages that read `name`'s output, directly or through others, in plan order."""
    affected = {name}
    found = []
    for node in order:
        if node.input_name in affected:
            affected.add(node.name)
            found.append(node)
    return found


def _prompt_hashes(job: JobConfig, stage_name: str, stage: Stage, prompt_hash) -> dict[str, str]:
    from synthmix.pipeline.llm.prompts import PromptError

    try:
        return {template_id: prompt_hash(template_id) for template_id in stage.prompt_ids()}
    except PromptError as error:
        raise ConfigError(f"{job.source}: stage '{stage_name}': {error}") from None


def _prompt_file_hash(template_id: str) -> str:
    from synthmix.pipeline.llm.prompts import load_prompt

    return load_prompt(template_id).sha256


def _resolve_input(job: JobConfig, entry, stage_class: type[Stage], previous: PlannedStage | None, planned: dict[str, PlannedStage]) -> PlannedStage | None:
    if stage_class.is_source:
        if entry.input is not None:
            raise ConfigError(f"{job.source}: stage '{entry.name}' reads files, not a stage; remove its `input: {entry.input}`")
        return None
    if entry.input is not None:
        if entry.input not in planned:
            raise ConfigError(
                f"{job.source}: stage '{entry.name}' reads from '{entry.input}', which is not a stage listed before it "
                f"(listed before: {', '.join(planned) or 'none'})"
            )
        return planned[entry.input]
    if previous is None:
        raise ConfigError(f"{job.source}: stage '{entry.name}' needs an input stage; list a source such as 'seeds' before it")
    return previous


def select_stages(order: list[PlannedStage], *, start: str | None = None, only: str | None = None, stop: str | None = None) -> list[PlannedStage]:
    """The stages `--from/--only/--to` name, in order."""
    names = [node.name for node in order]
    for flag, value in (("--from", start), ("--only", only), ("--to", stop)):
        if value is not None and value not in names:
            raise ConfigError(f"{flag} {value}: no such stage in this job; its stages are {', '.join(names)}")
    if only is not None:
        if start is not None or stop is not None:
            raise ConfigError("--only cannot be combined with --from or --to; use --from A --to B for a range")
        return [node for node in order if node.name == only]
    first = names.index(start) if start else 0
    last = names.index(stop) if stop else len(names) - 1
    if first > last:
        raise ConfigError(f"--from {start} comes after --to {stop} in this job's stage order ({', '.join(names)})")
    return order[first : last + 1]


def with_input_schema(node: PlannedStage, schema, rows: int | None = None) -> Stage:
    """The stage instance with its runtime input schema (carried columns keep their types) and row count."""
    node.stage.context = dataclasses.replace(node.stage.context, input_schema=schema, input_rows=rows)
    return node.stage


def stages_with_unreadable_inputs(job: JobConfig, registry: dict[str, type[Stage]], run_dir: Path, job_dir: Path) -> dict[str, str]:
    """Stages this machine cannot fingerprint, each with the reason: an input file the stage reads
    or stats to fingerprint itself is missing (a seeds path, a tokenizer, classifier or benchmark
    file), or it reads from such a stage, directly or through others.

    `synthmix status` on a run copied away from its job folder plans the job without them: their
    staleness cannot be decided, every other stage's can. A run never skips them: there a missing
    input is the error `build_graph` raises, naming it.
    """
    from synthmix.pipeline.inputs.seed_files import SeedInputError

    found: dict[str, str] = {}
    root_of: dict[str, str] = {}
    for index, entry in enumerate(job.stages):
        stage_class = registry.get(entry.stage_kind)
        if stage_class is None:
            continue  # build_graph names the unknown kind
        reads = entry.input if entry.input is not None else None if stage_class.is_source or index == 0 else job.stages[index - 1].name
        if reads in found:
            root_of[entry.name] = root_of[reads]
            found[entry.name] = f"it reads from stage '{root_of[reads]}' (directly or through others), whose inputs are missing here"
            continue
        try:
            params = stage_class.params(**job.sections.get(entry.name, {}))
        except ValidationError:
            continue  # build_graph names the key
        context = StageContext(run_dir=run_dir, stage_name=entry.name, models=dict(job.models), job_dir=job_dir)
        try:
            stage_class(params, context).fingerprint_extra()
        except (ConfigError, SeedInputError) as error:
            found[entry.name] = str(error)
            root_of[entry.name] = entry.name
    return found
