"""Job configuration: one YAML file per job, validated before Ray starts.

A job file has a few fixed sections (`name`, `run_dir`, `storage`, `ray`, `models`, `stages`) and one
section per stage, named after the stage, holding that stage's parameters. The fixed part is
validated here; each stage section is validated by the stage's own `params` model when the
graph is built (`synthmix.pipeline.graph`), so every error names the key and the file either way.
"""

from __future__ import annotations

import copy
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from synthmix.pipeline.contracts import ConfigError
from synthmix.pipeline.llm.engines import ModelSpec
from synthmix.pipeline.llm.engines.embedded import EmbeddedModel
from synthmix.pipeline.storage import RemotePath, as_path, endpoint_in_effect


class RayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # None: RAY_ADDRESS if set, else an embedded local Ray (never a silent attach).
    address: str | None = None
    # CPUs the embedded Ray may use; None lets Ray count them.
    num_cpus: int | None = Field(default=None, ge=1)


class StorageConfig(BaseModel):
    """Where `s3://` run directories and seeds live when that is not AWS itself."""

    model_config = ConfigDict(extra="forbid")

    # An S3-compatible endpoint, e.g. http://minio.storage:9000; None: SYNTHMIX_S3_ENDPOINT, else AWS.
    endpoint: str | None = None
    region: str | None = None


class StageEntry(BaseModel):
    """One step of the job: `name` is its run-dir folder and config section, `kind` its stage class."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: str | None = None  # defaults to `name`
    input: str | None = None  # defaults to the previous stage in the list

    @property
    def stage_kind(self) -> str:
        return self.kind or self.name


class TargetAmount(BaseModel):
    """What one target asks for: kept pairs, kept tokens (instruction + answer, in the tokenize
    stage's tokenizer), or both; a target with both is met when both are."""

    model_config = ConfigDict(extra="forbid")

    pairs: int | None = Field(default=None, ge=1)
    tokens: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _asks_for_something(self):
        if self.pairs is None and self.tokens is None:
            raise ValueError("a target needs pairs, tokens or both, e.g. {pairs: 10}")
        return self

    def amounts(self) -> dict[str, int]:
        return {measure: value for measure, value in (("pairs", self.pairs), ("tokens", self.tokens)) if value is not None}


def check_target_key(key: str) -> str:
    """`DOMAIN` or `DOMAIN/LANGUAGE`; DOMAIN `*` is every domain (`*/zh`: all Chinese pairs)."""
    parts = key.split("/")
    if len(parts) > 2 or not all(part.strip() for part in parts):
        raise ValueError(f"target key {key!r} is not DOMAIN or DOMAIN/LANGUAGE; write e.g. math, code/en or */zh")
    return key


class BudgetConfig(BaseModel):
    """The most a run in rounds may spend; the first limit reached stops it. Engine hours are the
    seconds the job's engines generated plus their start-ups, summed over replicas and rounds
    (generation_cost's engine_s + startup_s); money is engine hours times `price_per_engine_hour`."""

    model_config = ConfigDict(extra="forbid")

    generated_tokens: int | None = Field(default=None, ge=1)
    engine_hours: float | None = Field(default=None, gt=0)
    money: float | None = Field(default=None, gt=0)
    price_per_engine_hour: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _limits_something(self):
        if self.money is not None and self.price_per_engine_hour is None:
            raise ValueError("money needs price_per_engine_hour (what one engine hour costs) to count spend against it")
        if self.generated_tokens is None and self.engine_hours is None and self.money is None:
            raise ValueError("a budget needs at least one of generated_tokens, engine_hours, money")
        return self


class RoundsConfig(BaseModel):
    """How a job with targets or a budget sizes its rounds (docs/targets.md)."""

    model_config = ConfigDict(extra="forbid")

    # The first round's slice: its yield per seed sizes every later one.
    pilot_seeds: int = Field(default=4, ge=1)
    # Floor and cap of a later round's slice: a tiny slice measures nothing, a huge one overshoots.
    min_seeds: int = Field(default=2, ge=1)
    max_seeds: int = Field(default=64, ge=1)
    max_rounds: int = Field(default=10, ge=1)
    # trim: pairs past every target that covers them (and pairs no target covers) leave the
    # shards, counted as past_target rejects; keep: every kept pair goes on to the shards.
    past_target: Literal["trim", "keep"] = "trim"
    # The dedup across rounds: synthmix.quality.lsh's MinHashConfig fields plus `text_columns`, checked
    # when the run starts (pipeline/cli/rounds.py). Not typed here: importing synthmix.quality.lsh into
    # the job config would put the MinHash code into every stage's code fingerprint.
    dedup: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _floor_under_cap(self):
        if self.min_seeds > self.max_seeds:
            raise ValueError(f"min_seeds {self.min_seeds} is above max_seeds {self.max_seeds}; lower min_seeds or raise max_seeds")
        return self


def _default_models() -> dict[str, ModelSpec]:
    return {"embedded": EmbeddedModel()}


class JobConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    run_dir: str | None = None  # default: runs/<name>, relative to the working directory; or s3://bucket/prefix
    storage: StorageConfig = StorageConfig()
    ray: RayConfig = RayConfig()
    models: dict[str, ModelSpec] = Field(default_factory=_default_models)
    stages: list[StageEntry]
    # Kept pairs/tokens wanted per `DOMAIN` or `DOMAIN/LANGUAGE`; with `budget`, the job runs in
    # rounds (pipeline/cli/rounds.py) that stop when every target is met or the budget is spent.
    targets: dict[str, TargetAmount] | None = None
    budget: BudgetConfig | None = None
    rounds: RoundsConfig | None = None
    # Stage sections, keyed by stage name; validated against each stage's params model later.
    sections: dict[str, dict[str, Any]] = Field(default_factory=dict)
    # Where the job came from, for error messages.
    source: str = "<job>"

    @field_validator("stages", mode="before")
    @classmethod
    def _expand_short_entries(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("targets")
    @classmethod
    def _target_keys(cls, targets: dict[str, TargetAmount] | None) -> dict[str, TargetAmount] | None:
        if targets is not None and not targets:
            raise ValueError("targets is empty; name at least one, e.g. {math: {pairs: 10}}, or remove the key")
        for key in targets or {}:
            check_target_key(key)
        return targets

    @model_validator(mode="after")
    def _rounds_need_a_goal(self):
        if self.rounds is not None and self.targets is None and self.budget is None:
            raise ValueError("rounds: sizes the rounds of a job with targets or a budget; add one of them, or remove rounds")
        return self

    @property
    def runs_in_rounds(self) -> bool:
        return self.targets is not None or self.budget is not None

    def rounds_settings(self) -> RoundsConfig:
        return self.rounds or RoundsConfig()

    def storage_in_effect(self) -> AbstractContextManager[None]:
        """Inside this block, every `s3://` path this process makes (run directory,
        seeds) uses the job's `storage:` endpoint, and the paths carry it into Ray workers;
        after it, the endpoint in effect before is back (storage.endpoint_in_effect)."""
        return endpoint_in_effect(self.storage.endpoint, self.storage.region)

    def resolved_run_dir(self) -> Path | RemotePath:
        """The run directory; an `s3://` one carries the job's endpoint, and nothing
        process-wide changes."""
        with self.storage_in_effect():
            return as_path(self.run_dir or Path("runs") / self.name)

    def snapshot(self) -> dict[str, Any]:
        """The resolved job as YAML-ready data: what `job.yaml` in the run directory records."""
        data = self.model_dump(mode="json", exclude={"sections", "source"})
        data.update(self.sections)
        return data


FIXED_KEYS = frozenset(JobConfig.model_fields) - {"sections", "source"}


def load_job(path: str | Path, overrides: list[str] | None = None, stage_names: set[str] | None = None) -> JobConfig:
    """Read a job file, apply `--set KEY=VALUE` overrides, and validate the fixed sections."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"job file {path} does not exist; pass the path of a job YAML such as jobs/quickstart.yaml") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (name, stages, ...), not {type(raw).__name__}")
    for override in overrides or []:
        apply_override(raw, override)
    return parse_job(raw, source=str(path))


def parse_job(raw: dict[str, Any], source: str = "<job>") -> JobConfig:
    """Validate job data: fixed sections by pydantic, stage sections must belong to a listed stage."""
    raw = copy.deepcopy(raw)
    fixed = {key: value for key, value in raw.items() if key in FIXED_KEYS}
    sections = {key: value for key, value in raw.items() if key not in FIXED_KEYS}
    try:
        job = JobConfig(**fixed, source=source)
    except ValidationError as error:
        raise ConfigError(describe_validation_error(error, source)) from None
    listed = {entry.name for entry in job.stages}
    for key, value in sections.items():
        if key not in listed:
            raise ConfigError(
                f"{source}: unknown key '{key}': it is neither a job setting ({', '.join(sorted(FIXED_KEYS))}) "
                f"nor a stage listed under 'stages' ({', '.join(entry.name for entry in job.stages)})"
            )
        if value is not None and not isinstance(value, dict):
            raise ConfigError(f"{source}: section '{key}' must be a mapping of parameters, not {value!r}")
    job.sections = {key: value or {} for key, value in sections.items()}
    return job


def apply_override(raw: dict[str, Any], override: str) -> None:
    """Set a dotted key in the raw job data: `dedup.threshold=0.7`; the value is read as YAML."""
    key, sep, text = override.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {override!r} is not KEY=VALUE; write e.g. --set dedup.threshold=0.7")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"--set {override!r}: the value is not valid YAML ({error})") from None
    parts = key.strip().split(".")
    node = raw
    for part in parts[:-1]:
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"--set {override!r}: '{part}' holds {child!r}, which has no keys to set")
        node = child
    node[parts[-1]] = value


def describe_validation_error(error: ValidationError, source: str, prefix: str = "") -> str:
    """Turn pydantic's report into lines naming the dotted key, the file and what was wrong."""
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in (prefix, *item["loc"]) if part != "")
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key (check its spelling against the documented parameters)"
        lines.append(f"{source}: key '{location}': {message}")
    return "\n".join(lines)
