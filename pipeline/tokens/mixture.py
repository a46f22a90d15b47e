"""The pretraining-mix manifest, `mix.json`: which shards, what they hold, and how to weight them.

`mix.json` lists every shard (rows, tokens, sha256, rows and tokens per source), token counts
per source and per domain, and for each training phase (main, anneal, long_context) the share
of tokens each source should supply. Natural-data shards made elsewhere (same schema, same
tokenizer) are listed beside the synthetic ones. Counts are taken from the shard files
themselves, and `validate_mix` recounts them, so the manifest cannot drift from its shards.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synthmix.pipeline.storage import write_bytes_atomic
from synthmix.pipeline.tokens.shards import ShardSummary, summarize_shard

MIX_FILE_NAME = "mix.json"
MIX_FORMAT = "synthmix.mix/1"
PHASES = ("main", "anneal", "long_context")
Phase = Literal["main", "anneal", "long_context"]


class MixConfig(BaseModel):
    """The job's `mix` section.

    `phases` maps a phase to source -> relative weight; weights are normalised to fractions of
    tokens, and a source left out of a phase gets 0. A phase not given takes the sources'
    natural token shares. `natural_dirs` are folders of shards made elsewhere to list too.
    """

    model_config = ConfigDict(extra="forbid")

    phases: dict[Phase, dict[str, float]] = Field(default_factory=dict)
    natural_dirs: list[Path] = Field(default_factory=list)

    @field_validator("phases")
    @classmethod
    def _check_weights(cls, phases: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for phase, weights in phases.items():
            negative = {source: w for source, w in weights.items() if w < 0}
            if negative or sum(weights.values()) <= 0:
                raise ValueError(f"mix phase {phase!r} weights {weights} must be non-negative with a positive sum")
        return phases


class MixShard(BaseModel):
    """One shard as `mix.json` lists it; `path` is relative to mix.json's folder when inside it."""

    path: str
    origin: Literal["synthetic", "natural"]
    rows: int
    tokens: int
    sha256: str
    rows_by_source: dict[str, int]
    tokens_by_source: dict[str, int]
    tokens_by_domain: dict[str, int]


class Mix(BaseModel):
    """The parsed `mix.json`."""

    format: str = MIX_FORMAT
    tokenizer: dict[str, Any]
    rows: int
    tokens: int
    rows_by_source: dict[str, int]
    tokens_by_source: dict[str, int]
    tokens_by_domain: dict[str, int]
    phases: dict[Phase, dict[str, float]]
    # Sources a phase weights that no shard holds (every row of theirs was filtered out, or
    # a misspelt name): left out of that phase's fractions, listed here so nobody misses it.
    missing_sources: dict[Phase, list[str]] = {}
    natural_dirs: list[str]
    shards: list[MixShard]


class MixMismatchError(ValueError):
    """mix.json disagrees with the shard files it lists."""


def build_mix(shard_dir: Path, config: MixConfig, *, allow_empty: bool = False) -> Mix:
    """The mix of the synthetic shards in `shard_dir` plus the config's natural-data folders.

    Every shard must carry the same tokenizer. With `allow_empty` (the tokenize stage kept no
    row), no shards make an empty mix rather than an error.
    """
    synthetic = [] if allow_empty and not shard_dir.exists() else _shard_files(shard_dir)
    natural = [path for directory in config.natural_dirs for path in _shard_files(directory)]
    if not synthetic and not natural:
        if allow_empty:
            return Mix(
                tokenizer={},
                rows=0,
                tokens=0,
                rows_by_source={},
                tokens_by_source={},
                tokens_by_domain={},
                phases={phase: {} for phase in PHASES},
                natural_dirs=[str(d) for d in config.natural_dirs],
                shards=[],
            )
        raise ValueError(f"no *.parquet shards in {shard_dir} or {config.natural_dirs}; run the tokenize stage first")
    summaries = [(summarize_shard(path), "synthetic") for path in synthetic]
    summaries += [(summarize_shard(path), "natural") for path in natural]
    tokenizer = summaries[0][0].tokenizer
    for summary, _ in summaries:
        if summary.tokenizer != tokenizer:
            raise ValueError(
                f"shard {summary.path} was tokenized with {summary.tokenizer.get('name')} "
                f"(sha256 {summary.tokenizer.get('file_sha256')}), the mix with {tokenizer.get('name')} "
                f"(sha256 {tokenizer.get('file_sha256')}); retokenize it with the job's tokenizer"
            )
    shards = [_mix_shard(summary, origin, shard_dir) for summary, origin in summaries]
    totals = _totals(shards)
    return Mix(
        tokenizer=tokenizer,
        **totals,
        phases=_phase_fractions(config.phases, totals["tokens_by_source"]),
        missing_sources=_missing_sources(config.phases, totals["tokens_by_source"]),
        natural_dirs=[str(directory) for directory in config.natural_dirs],
        shards=shards,
    )


def write_mix(mix: Mix, path: Path) -> None:
    """Write `mix.json` atomically (temporary name then rename; on an object store, one PUT)."""
    write_bytes_atomic(path, (json.dumps(mix.model_dump(), indent=2, sort_keys=False) + "\n").encode("utf-8"))


def read_mix(path: Path) -> Mix:
    """Parse a `mix.json`."""
    try:
        mix = Mix.model_validate_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"no mix manifest at {path}: run the mix stage first") from error
    if mix.format != MIX_FORMAT:
        raise ValueError(f"{path} has format {mix.format!r}; this reader knows {MIX_FORMAT!r}")
    return mix


def resolve_shard_path(mix_path: Path, shard: MixShard) -> Path:
    """Where a listed shard is on disk (relative paths are relative to mix.json's folder)."""
    return mix_path.parent / shard.path


def validate_mix(mix_path: Path) -> Mix:
    """Recount every listed shard; raise `MixMismatchError` listing each disagreement."""
    mix = read_mix(mix_path)
    problems: list[str] = []
    for shard in mix.shards:
        path = resolve_shard_path(mix_path, shard)
        if not path.is_file():
            problems.append(f"{shard.path}: missing")
            continue
        actual = _mix_shard(summarize_shard(path), shard.origin, mix_path.parent)
        for key in ("rows", "tokens", "sha256", "rows_by_source", "tokens_by_source", "tokens_by_domain"):
            if getattr(actual, key) != getattr(shard, key):
                problems.append(f"{shard.path}: {key} listed {getattr(shard, key)}, file has {getattr(actual, key)}")
    totals = _totals(mix.shards)
    for key, value in totals.items():
        if getattr(mix, key) != value:
            problems.append(f"total {key} listed {getattr(mix, key)}, shards sum to {value}")
    if problems:
        raise MixMismatchError(f"{mix_path} disagrees with its shards ({len(problems)} problems: {'; '.join(problems[:10])}); rerun the mix stage")
    return mix


def _shard_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise FileNotFoundError(f"shard folder {directory} does not exist; check the path in the mix config")
    return sorted(directory.glob("*.parquet"))


def _mix_shard(summary: ShardSummary, origin: Literal["synthetic", "natural"], mix_dir: Path) -> MixShard:
    path = summary.path.resolve()
    try:
        listed = str(path.relative_to(mix_dir.resolve()))
    except ValueError:
        listed = str(path)
    return MixShard(
        path=listed,
        origin=origin,
        rows=summary.rows,
        tokens=summary.tokens,
        sha256=summary.sha256,
        rows_by_source=summary.rows_by_source,
        tokens_by_source=summary.tokens_by_source,
        tokens_by_domain=summary.tokens_by_domain,
    )


def _totals(shards: Sequence[MixShard]) -> dict[str, Any]:
    rows_by_source: Counter[str] = Counter()
    tokens_by_source: Counter[str] = Counter()
    tokens_by_domain: Counter[str] = Counter()
    for shard in shards:
        rows_by_source.update(shard.rows_by_source)
        tokens_by_source.update(shard.tokens_by_source)
        tokens_by_domain.update(shard.tokens_by_domain)
    return {
        "rows": sum(shard.rows for shard in shards),
        "tokens": sum(shard.tokens for shard in shards),
        "rows_by_source": dict(sorted(rows_by_source.items())),
        "tokens_by_source": dict(sorted(tokens_by_source.items())),
        "tokens_by_domain": dict(sorted(tokens_by_domain.items())),
    }


def _phase_fractions(configured: dict[str, dict[str, float]], tokens_by_source: dict[str, int]) -> dict[str, dict[str, float]]:
    phases: dict[str, dict[str, float]] = {}
    for phase in PHASES:
        weights = configured.get(phase)
        if weights is None:
            weights = {source: float(tokens) for source, tokens in tokens_by_source.items()}
        total = sum(weight for source, weight in weights.items() if source in tokens_by_source)
        if total <= 0:
            phases[phase] = {}
            continue
        phases[phase] = {source: weights.get(source, 0.0) / total for source in sorted(tokens_by_source)}
    return phases


def _missing_sources(configured: dict[str, dict[str, float]], tokens_by_source: dict[str, int]) -> dict[str, list[str]]:
    missing = {phase: sorted(set(weights) - set(tokens_by_source)) for phase, weights in configured.items()}
    return {phase: sources for phase, sources in missing.items() if sources}
