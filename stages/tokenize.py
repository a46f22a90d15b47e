"""tokenize: render rows to token ids and write them as budget-sized shards (DESIGN.md's shard schema).

Reads synthetic samples (`instruction` + `answer`) or seed documents (`text`), with the lineage
and mix-key columns `id`, `seed_id`, `source`, `domain` (and `meta` where present).
Runs as plain Ray tasks, one per CPU slot over byte-balanced runs of the input part files;
each task streams its rows through `transform` into a shard writer, and every shard it closes
(about `shard_tokens` tokens; the task's last one smaller) is committed at once as a unit
(pipeline/tokens/shard_units.py). Every token is written once. `finalize` links the parts into
`<run>/<shard_dir>/shard-NNNNN.parquet` in task order and swaps the folder in atomically; the
same input files on the same number of CPU slots give byte-identical shards, resumed or not.
Rejects: missing_field (neither text nor instruction+answer, or a null seed_id/source/domain),
empty (blank text or blank answer), too_large (more than `max_tokens` tokens; ids kept in the reject).

Tokenizer: the job's `tokenizer:` spec, or by default Hunyuan-Large's `hy.tiktoken`, which ships
inside synthmix (pipeline/tokens/hunyuan_tokenizer/, under the Tencent Hunyuan Community License).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from synthmix.pipeline import contracts
from synthmix.pipeline.config import ConfigError
from synthmix.pipeline.contracts import Lineage, RejectReason, with_reject_columns
from synthmix.pipeline.file_digest import sha256_file
from synthmix.pipeline.stage import Execution, Resources, Stage, StageParams
from synthmix.pipeline.storage import remove_tree
from synthmix.pipeline.store import StageDir
from synthmix.pipeline.tokens.rendering import RenderConfig, record_identity, render_table
from synthmix.pipeline.tokens.shard_units import SCRATCH, balanced_groups, commit_files_as_shards, publish_shards
from synthmix.pipeline.tokens.shards import (
    DEFAULT_ROW_GROUP_TOKENS,
    DEFAULT_SHARD_TOKENS,
    INPUT_IDS,
    LOSS_MASK,
    NUM_TOKENS,
    SHARD_SCHEMA,
    read_shard_tokenizer,
)
from synthmix.pipeline.tokens.tokenizers import Tokenizer, TokenizerSpec, hunyuan_file, load_tokenizer

# Hunyuan-Large's vocabulary, shipped as package data: the same default on every machine.
DEFAULT_TOKENIZER = TokenizerSpec(kind="hunyuan")

# Rows as the stage returns them: shard columns, nullable for rejects, plus the reject columns.
_OUTPUT_SCHEMA = with_reject_columns(SHARD_SCHEMA)


class TokenizeParams(StageParams):
    tokenizer: TokenizerSpec | None = Field(
        default=None,
        description="none: Hunyuan-Large's hy.tiktoken, shipped inside synthmix",
    )
    render: RenderConfig = RenderConfig()
    max_tokens: int | None = Field(default=None, ge=1, description="longer rows are rejected as too_large; none: no limit")
    shard_tokens: int = Field(default=DEFAULT_SHARD_TOKENS, ge=1, description="token budget of one shard file")
    row_group_tokens: int = Field(default=DEFAULT_ROW_GROUP_TOKENS, ge=1, description="token budget of one Parquet row group")
    shard_dir: str = Field(default="shards", description="folder under the run directory that receives the shards")
    tasks: int | None = Field(
        default=None,
        ge=1,
        description="parallel tasks, each ending in one partial shard; none: one per CPU slot. Fix it to get the same shards on any cluster size",
    )


def resolve_tokenizer_spec(spec: TokenizerSpec | None, job_dir: Path) -> tuple[TokenizerSpec, bool]:
    """The spec to load (relative paths rooted at the job file's folder) and whether it is the default."""
    if spec is None:
        return DEFAULT_TOKENIZER, True
    if spec.path is not None and not spec.path.is_absolute():
        spec = spec.model_copy(update={"path": (job_dir / spec.path).resolve()})
    return spec, False


def vocabulary_file(spec: TokenizerSpec) -> Path | None:
    """The file whose bytes define the vocabulary (None for a tiktoken encoding named by name)."""
    if spec.kind == "hunyuan":
        return hunyuan_file(spec)
    if spec.path is None:
        return None
    if spec.path.is_dir():
        return spec.path / "tokenizer.json"
    return spec.path


class Tokenize(Stage):
    name = "tokenize"
    input_columns = (contracts.ID, contracts.SEED_ID, contracts.SOURCE, contracts.DOMAIN)
    output_fields = tuple(SHARD_SCHEMA)
    carries_input = False
    lineage = Lineage.SAME_ROW
    params = TokenizeParams
    # One whole CPU per task: encoding is CPU-bound, two tasks on one core only take turns.
    resources = Resources(num_cpus=1, batch_size=1024)
    execution = Execution.FILE_TASKS

    def __init__(self, params: TokenizeParams, context) -> None:
        super().__init__(params, context)
        self.tokenizer_spec, self.tokenizer_is_default = resolve_tokenizer_spec(params.tokenizer, context.job_dir)
        file = vocabulary_file(self.tokenizer_spec)
        if file is not None and not file.is_file():
            raise ConfigError(
                f"stage '{context.stage_name}': tokenizer file {file} does not exist; fix tokenizer.path "
                f"(relative paths start at the job file's folder {context.job_dir})"
            )
        self._tokenizer: Tokenizer | None = None

    def fingerprint_extra(self) -> dict[str, Any]:
        file = vocabulary_file(self.tokenizer_spec)
        return {
            "tokenizer": self.tokenizer_spec.model_dump(mode="json"),
            "tokenizer_file_sha256": sha256_file(file) if file is not None else None,
        }

    @property
    def shard_path(self) -> Path:
        return self.context.run_dir / self.params.shard_dir

    def publishes(self) -> tuple[Path, ...]:
        return (self.shard_path,)

    def setup(self) -> None:
        self._tokenizer = load_tokenizer(self.tokenizer_spec)

    def plan_file_tasks(self, files: list[Path], slots: int) -> list[list[Path]]:
        return balanced_groups(files, self.params.tasks or slots)

    def commit_files(self, files: list[Path], *, task_index: int, done_ids: pa.Array | None) -> pa.Table:
        return commit_files_as_shards(
            self,
            files,
            task_index=task_index,
            done_ids=done_ids,
            tokenizer=self._tokenizer.describe(),
            shard_tokens=self.params.shard_tokens,
            row_group_tokens=self.params.row_group_tokens,
        )

    def transform(self, batch: pa.Table) -> pa.Table:
        reasons, details = screen_rows(batch)
        if reasons.null_count == batch.num_rows:
            # Every row renders: no filter, which would copy the batch's texts.
            return _mark_too_large(render_table(_with_meta(batch), self._tokenizer, self.params.render), self.params.max_tokens)
        accepted = pc.is_null(reasons)
        rendered = render_table(_with_meta(batch.filter(accepted)), self._tokenizer, self.params.render)
        rendered = _mark_too_large(rendered, self.params.max_tokens)
        screened = _rejected_rows(batch.filter(pc.invert(accepted)), reasons.filter(pc.invert(accepted)), details.filter(pc.invert(accepted)))
        return pa.concat_tables([rendered.cast(_OUTPUT_SCHEMA), screened.cast(_OUTPUT_SCHEMA)])

    def finalize(self, stage_dir: StageDir) -> dict[str, Any]:
        """Publish the committed parts (each one shard) as the shard folder; the manifest lists them.
        Other files in that folder (the mix stage's mix.json) are not this stage's: they stay."""
        remove_tree(stage_dir.path / SCRATCH)  # what killed tasks left
        parts = stage_dir.part_files()
        # Every part carries the description its writer was given; no need to load the vocabulary again.
        tokenizer = read_shard_tokenizer(parts[0]) if parts else load_tokenizer(self.tokenizer_spec).describe()
        shards = publish_shards(parts, self.shard_path)
        return {
            "shard_dir": str(self.shard_path),
            "tokenizer": tokenizer,
            "tokenizer_default": self.tokenizer_is_default,
            "rows": sum(info.rows for info in shards),
            "tokens": sum(info.tokens for info in shards),
            "shards": [{"path": info.path.name, "rows": info.rows, "tokens": info.tokens, "sha256": info.sha256} for info in shards],
        }


def screen_rows(batch: pa.Table) -> tuple[pa.Array, pa.Array]:
    """Reject reason and detail per row (null where the row can be rendered), vectorised."""
    rows = batch.num_rows
    reason = pa.nulls(rows, pa.string())
    detail = pa.nulls(rows, pa.string())

    def mark(condition: pa.Array, why: RejectReason, text: str) -> None:
        nonlocal reason, detail
        fresh = pc.and_(pc.fill_null(condition, True), pc.is_null(reason))
        reason = pc.if_else(fresh, pa.scalar(why.value), reason)
        detail = pc.if_else(fresh, pa.scalar(text), detail)

    for name in (contracts.SEED_ID, contracts.SOURCE, contracts.DOMAIN):
        mark(pc.is_null(batch.column(name)), RejectReason.MISSING_FIELD, f"{name} is null; lineage and mix keys are required")
    is_sample = pc.and_(_present(batch, contracts.INSTRUCTION), _present(batch, contracts.ANSWER))
    has_text = _present(batch, contracts.TEXT)
    mark(pc.invert(pc.or_(is_sample, has_text)), RejectReason.MISSING_FIELD, "neither text nor instruction+answer")
    if contracts.ANSWER in batch.column_names:
        mark(pc.and_(is_sample, _blank(batch.column(contracts.ANSWER))), RejectReason.EMPTY, "answer is blank")
    if contracts.TEXT in batch.column_names:
        is_document = pc.and_(pc.invert(is_sample), has_text)
        mark(pc.and_(is_document, _blank(batch.column(contracts.TEXT))), RejectReason.EMPTY, "text is blank")
    return reason, detail


def _present(batch: pa.Table, name: str) -> pa.Array:
    if name not in batch.column_names:
        return pa.array([False] * batch.num_rows, pa.bool_())
    return pc.is_valid(batch.column(name))


def _blank(values) -> pa.Array:
    return pc.fill_null(pc.equal(pc.utf8_trim_whitespace(values), ""), False)


def _with_meta(batch: pa.Table) -> pa.Table:
    """Shards need `meta` on every row: `{}` where the upstream has none."""
    if contracts.META not in batch.column_names:
        return batch
    index = batch.schema.get_field_index(contracts.META)
    return batch.set_column(index, contracts.META, pc.fill_null(batch.column(contracts.META), "{}"))


def _mark_too_large(rendered: pa.Table, max_tokens: int | None) -> pa.Table:
    rows = rendered.num_rows
    reason = pa.nulls(rows, pa.string())
    detail = pa.nulls(rows, pa.string())
    if max_tokens is not None and rows:
        tokens = rendered.column(NUM_TOKENS)
        too_large = pc.greater(tokens, max_tokens)
        reason = pc.if_else(too_large, pa.scalar(RejectReason.TOO_LARGE.value), reason)
        detail = pc.if_else(
            too_large,
            pc.binary_join_element_wise(pc.cast(tokens, pa.string()), pa.scalar(f"tokens > max_tokens {max_tokens}"), " "),
            detail,
        )
    return rendered.append_column(contracts.REJECT_REASON, reason).append_column(contracts.REJECT_DETAIL, detail)


def _rejected_rows(batch: pa.Table, reasons: pa.Array, details: pa.Array) -> pa.Table:
    """Screened-out rows in the output schema: lineage and mix keys kept, no token ids."""
    rows = batch.num_rows
    is_sample = pc.and_(_present(batch, contracts.INSTRUCTION), _present(batch, contracts.ANSWER))
    meta = batch.column(contracts.META) if contracts.META in batch.column_names else pa.array(["{}"] * rows, pa.string())
    source_id, origin = record_identity(batch)
    return pa.table(
        {
            INPUT_IDS: pa.nulls(rows, SHARD_SCHEMA.field(INPUT_IDS).type),
            LOSS_MASK: pa.nulls(rows, SHARD_SCHEMA.field(LOSS_MASK).type),
            NUM_TOKENS: pa.nulls(rows, SHARD_SCHEMA.field(NUM_TOKENS).type),
            contracts.ID: batch.column(contracts.ID),
            contracts.SEED_ID: batch.column(contracts.SEED_ID),
            contracts.SOURCE: batch.column(contracts.SOURCE),
            contracts.DOMAIN: batch.column(contracts.DOMAIN),
            contracts.SYNTHETIC: is_sample,
            contracts.META: meta,
            contracts.SOURCE_ID: source_id,
            contracts.ORIGIN: origin,
            contracts.REJECT_REASON: reasons,
            contracts.REJECT_DETAIL: details,
        }
    )
