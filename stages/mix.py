"""mix: write `mix.json` beside the shards of its input tokenize stage, and check it against them.

Reads the tokenize stage's rows (only `id`, `seed_id`, `source`, `num_tokens`: the token ids stay
in the shards) and writes them as the list of rows the mix holds. `finalize` builds the mix from
the shard folder its input stage publishes, plus the `natural_dirs` of shards made elsewhere
(same schema and tokenizer), with per-phase weights (main, anneal, long_context) as fractions of
tokens; writes `<shard_dir>/mix.json` atomically, recounts every shard against it, and records
the totals in the stage manifest. Publishes: `<shard_dir>/mix.json`, which only this stage
writes; the runner withdraws it when tokenize is rerun under it and it no longer holds.
Rejects: none.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pyarrow as pa

from synthmix.pipeline import contracts
from synthmix.pipeline.config import ConfigError
from synthmix.pipeline.contracts import Lineage
from synthmix.pipeline.stage import GlobalStage, Resources
from synthmix.pipeline.store import StageDir
from synthmix.pipeline.tokens.mixture import MIX_FILE_NAME, MixConfig, MixMismatchError, build_mix, validate_mix, write_mix
from synthmix.pipeline.tokens.shards import NUM_TOKENS

_log = logging.getLogger(__name__)

_LISTED_COLUMNS = (contracts.ID, contracts.SEED_ID, contracts.SOURCE, NUM_TOKENS)


class MixMismatch(RuntimeError):
    """The shard folder does not hold the rows the tokenize stage committed."""


class Mix(GlobalStage):
    name = "mix"
    input_columns = _LISTED_COLUMNS
    output_fields = (
        pa.field(contracts.ID, pa.string()),
        pa.field(contracts.SEED_ID, pa.string()),
        pa.field(contracts.SOURCE, pa.string()),
        pa.field(NUM_TOKENS, pa.int32()),
    )
    carries_input = False
    lineage = Lineage.SAME_ROW
    params = MixConfig
    resources = Resources(num_cpus=0.25, batch_size=65536)

    def natural_dirs(self) -> list[Path]:
        return [path if path.is_absolute() else (self.context.job_dir / path).resolve() for path in self.params.natural_dirs]

    def fingerprint_extra(self) -> dict[str, Any]:
        """Natural shards decide the mix too: their names, sizes and mtimes."""
        listed = []
        for directory in self.natural_dirs():
            for path in sorted(directory.glob("*.parquet")) if directory.is_dir() else []:
                listed.append([str(path), path.stat().st_size, path.stat().st_mtime_ns])
        return {"natural_shards": listed}

    @property
    def shard_dir(self) -> Path:
        """The shard folder its input stage publishes."""
        folders = self.context.input_publishes
        if len(folders) != 1:
            upstream = ", ".join(self.context.upstream_dirs) or "no stage"
            raise ConfigError(
                f"stage '{self.context.stage_name}' reads {upstream}, which publishes no shard folder; a mix reads a tokenize stage: set `input:` to one"
            )
        return folders[0]

    def publishes(self) -> tuple[Path, ...]:
        return (self.shard_dir / MIX_FILE_NAME,)

    def publications_hold(self) -> bool:
        """A tokenize rerun on unchanged rows makes identical shards: the mix still describes them."""
        try:
            validate_mix(self.shard_dir / MIX_FILE_NAME)
        except (MixMismatchError, ValueError):
            return False
        return True

    def run(self, dataset):
        # Projection is pushed down to the Parquet read: the token ids are never loaded.
        return dataset.select_columns(list(_LISTED_COLUMNS))

    def finalize(self, stage_dir: StageDir) -> dict[str, Any]:
        shard_dir, tokenized_rows = self.shard_dir, self._tokenized_rows()
        config = MixConfig(phases=self.params.phases, natural_dirs=self.natural_dirs())
        mix = build_mix(shard_dir, config, allow_empty=tokenized_rows == 0)
        for phase, sources in mix.missing_sources.items():
            _log.warning("mix phase %s weights %s, which no shard holds; they are left out of its fractions", phase, sources)
        synthetic_rows = sum(shard.rows for shard in mix.shards if shard.origin == "synthetic")
        if synthetic_rows != tokenized_rows:
            raise MixMismatch(
                f"stage '{self.context.stage_name}': {shard_dir} holds {synthetic_rows} rows but its tokenize stage "
                f"committed {tokenized_rows}; the folder was changed after tokenizing: rerun with --from tokenize"
            )
        path = shard_dir / MIX_FILE_NAME
        write_mix(mix, path)
        validate_mix(path)
        return {
            "mix_path": str(path),
            "shards": len(mix.shards),
            "natural_shards": sum(1 for shard in mix.shards if shard.origin == "natural"),
            "rows": mix.rows,
            "tokens": mix.tokens,
            "rows_by_source": mix.rows_by_source,
            "tokens_by_source": mix.tokens_by_source,
            "tokens_by_domain": mix.tokens_by_domain,
            "phases": mix.phases,
            "tokenizer": mix.tokenizer.get("name"),
        }

    def _tokenized_rows(self) -> int:
        """The rows the input stage's manifest says it published as shards."""
        ((upstream_name, upstream_path),) = self.context.upstream_dirs.items()
        return int(StageDir(upstream_path.parent, upstream_name).manifest()["extra"]["rows"])
