"""Rendering: a sample or a seed document becomes the token ids of one shard row.

Templates, chosen in the job:
- `plain`: pretraining text, `<bos> instruction + separator + answer <eos>`.
- `chat`: the target model's chat format, its markers encoded as control tokens, then the
  tokenizer's end-of-document id. Markers are strings in which the tokenizer's special-token
  strings become their ids and the rest is encoded as text, so one `ChatFormat` model covers
  Hunyuan-Large (`<|startoftext|>`/`<|extra_0|>`/`<|eos|>`), ChatML and others.

Seed documents (rows with only `text`) render as `<bos> text <eos>` under either template.
With `loss_mask`, a sample's mask is 1 on the answer, the closing marker and the end-of-document
id, 0 elsewhere; documents get a null mask (every token is a target).

Instruction and answer are encoded separately and concatenated, so the answer's first token
never merges with the prompt's last: the mask boundary is exact.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict

from synthmix.pipeline import contracts
from synthmix.pipeline.tokens.shards import LOSS_MASK, SHARD_SCHEMA
from synthmix.pipeline.tokens.tokenizers import Tokenizer


class ChatFormat(BaseModel):
    """Markers around one user turn and one assistant turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    user_prefix: str
    user_suffix: str
    assistant_prefix: str
    assistant_suffix: str


# Hunyuan-Large's chat template (tokenizer_config.json) for a single user turn without system.
HUNYUAN_CHAT = ChatFormat(user_prefix="<|startoftext|>", user_suffix="<|extra_0|>", assistant_prefix="", assistant_suffix="<|eos|>")
CHATML_CHAT = ChatFormat(
    user_prefix="<|im_start|>user\n",
    user_suffix="<|im_end|>\n",
    assistant_prefix="<|im_start|>assistant\n",
    assistant_suffix="<|im_end|>\n",
)
CHAT_FORMATS = {"hunyuan": HUNYUAN_CHAT, "chatml": CHATML_CHAT}

# A string shaped like a control token; one the tokenizer lacks means the format does not fit it.
_CONTROL_LIKE = re.compile(r"<\|[^|<>]+\|>")


class RenderConfig(BaseModel):
    """The job's rendering section."""

    model_config = ConfigDict(extra="forbid")

    template: Literal["plain", "chat"] = "plain"
    chat_format: Literal["hunyuan", "chatml"] | ChatFormat = "hunyuan"
    separator: str = "\n\n"  # plain template: between instruction and answer
    loss_mask: bool = False  # mask out everything but the answer of samples


def encode_marker(marker: str, tokenizer: Tokenizer) -> list[int]:
    """Ids of a chat marker: special-token strings become control ids, the rest is text."""
    specials = tokenizer.special_tokens
    if not marker:
        return []
    unknown = sorted(set(_CONTROL_LIKE.findall(marker)) - set(specials))
    if unknown:
        raise ValueError(
            f"chat marker {marker!r} uses {unknown}, which tokenizer '{tokenizer.name}' has no special "
            "token for: they would be encoded as text; choose a chat_format made for this tokenizer"
        )
    pattern = re.compile("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)))
    ids: list[int] = []
    position = 0
    for match in pattern.finditer(marker):
        if match.start() > position:
            ids += tokenizer.encode_batch([marker[position : match.start()]])[0]
        ids.append(specials[match.group()])
        position = match.end()
    if position < len(marker):
        ids += tokenizer.encode_batch([marker[position:]])[0]
    return ids


def render_table(batch: pa.Table, tokenizer: Tokenizer, config: RenderConfig) -> pa.Table:
    """Shard rows (`shards.SHARD_SCHEMA`) for `batch`, in its row order.

    Reads `id`, `seed_id`, `source`, `domain`, optional `meta`, `source_id` and `origin`, and per row either
    `instruction` + `answer` (a synthetic sample) or `text` (a seed document).
    """
    _require_columns(batch)
    instructions = _optional_column(batch, contracts.INSTRUCTION)
    answers = _optional_column(batch, contracts.ANSWER)
    texts = _optional_column(batch, contracts.TEXT)
    is_sample = [instruction is not None and answer is not None for instruction, answer in zip(instructions, answers, strict=True)]
    missing = [i for i, sample in enumerate(is_sample) if not sample and texts[i] is None]
    if missing:
        row_id = batch.column(contracts.ID)[missing[0]].as_py()
        raise ValueError(f"{len(missing)} rows have neither instruction+answer nor text (first id {row_id!r}); reject empty rows before tokenizing")
    sample_rows = [i for i, sample in enumerate(is_sample) if sample]
    document_rows = [i for i, sample in enumerate(is_sample) if not sample]

    prompt_ids, answer_ids, before_prompt, between, after_answer = _encode_samples(
        [instructions[i] for i in sample_rows], [answers[i] for i in sample_rows], tokenizer, config
    )
    document_ids = tokenizer.encode_arrays([texts[i] for i in document_rows])
    bos = _ids([tokenizer.bos_id] if tokenizer.bos_id is not None else [])
    eos = _ids([tokenizer.eos_id])

    # Each row is a run of pieces; ids are flattened in one pass and masks built from lengths.
    row_pieces: list[tuple[np.ndarray, ...]] = [()] * batch.num_rows
    masked_lengths = np.zeros(batch.num_rows, dtype=np.int64)  # tokens before the answer
    target_lengths = np.zeros(batch.num_rows, dtype=np.int64)  # answer and what closes it
    if sample_rows:
        for k, row in enumerate(sample_rows):
            row_pieces[row] = (before_prompt, prompt_ids[k], between, answer_ids[k], after_answer)
        rows = np.asarray(sample_rows)
        masked_lengths[rows] = _lengths(prompt_ids) + len(before_prompt) + len(between)
        target_lengths[rows] = _lengths(answer_ids) + len(after_answer)
    if document_rows:
        for k, row in enumerate(document_rows):
            row_pieces[row] = (bos, document_ids[k], eos)
        target_lengths[np.asarray(document_rows)] = _lengths(document_ids) + len(bos) + len(eos)
    pieces = [piece for row in row_pieces for piece in row]
    lengths = masked_lengths + target_lengths
    flat = np.concatenate(pieces, dtype=np.int32, casting="unsafe") if pieces else np.zeros(0, np.int32)
    offsets = np.zeros(batch.num_rows + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    input_ids = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat))

    sample_mask = np.asarray(is_sample, dtype=bool)
    if config.loss_mask and sample_rows:
        values = np.repeat(np.tile(np.array([0, 1], dtype=np.uint8), batch.num_rows), np.column_stack([masked_lengths, target_lengths]).ravel())
        loss_mask = pa.ListArray.from_arrays(pa.array(offsets), pa.array(values), mask=pa.array(~sample_mask))
    else:
        loss_mask = pa.nulls(batch.num_rows, SHARD_SCHEMA.field(LOSS_MASK).type)

    meta = batch.column(contracts.META) if contracts.META in batch.column_names else pa.array(["{}"] * batch.num_rows)
    source_id, origin = record_identity(batch)
    return pa.Table.from_arrays(
        [
            input_ids,
            loss_mask,
            pa.array(lengths.astype(np.int32)),
            batch.column(contracts.ID),
            batch.column(contracts.SEED_ID),
            batch.column(contracts.SOURCE),
            batch.column(contracts.DOMAIN),
            pa.array(sample_mask),
            meta,
            source_id,
            origin,
        ],
        schema=SHARD_SCHEMA,
    )


def record_identity(batch: pa.Table) -> tuple[pa.Array, pa.Array]:
    """The rows' `source_id` and `origin`, or nulls where the upstream stages carry none."""
    return tuple(
        batch.column(name) if name in batch.column_names else pa.nulls(batch.num_rows, pa.string()) for name in (contracts.SOURCE_ID, contracts.ORIGIN)
    )


def _encode_samples(
    instructions: list[str], answers: list[str], tokenizer: Tokenizer, config: RenderConfig
) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Prompt ids, answer ids, and the fixed ids before the prompt, between, and after the answer."""
    bos = [tokenizer.bos_id] if tokenizer.bos_id is not None else []
    eos = [tokenizer.eos_id]
    if config.template == "plain":
        prompts = [instruction + config.separator for instruction in instructions]
        before, between, after = bos, [], eos
    else:
        chat = CHAT_FORMATS[config.chat_format] if isinstance(config.chat_format, str) else config.chat_format
        prefix = encode_marker(chat.user_prefix, tokenizer)
        # Formats that open with the begin-of-document token (Hunyuan's) must not get it twice.
        before = prefix if prefix[: len(bos)] == bos else bos + prefix
        between = encode_marker(chat.user_suffix, tokenizer) + encode_marker(chat.assistant_prefix, tokenizer)
        after = encode_marker(chat.assistant_suffix, tokenizer) + eos
        prompts = instructions
    before, between, after = _ids(before), _ids(between), _ids(after)
    if not instructions:
        return [], [], before, between, after
    return tokenizer.encode_arrays(prompts), tokenizer.encode_arrays(answers), before, between, after


def _lengths(arrays: list[np.ndarray]) -> np.ndarray:
    return np.fromiter(map(len, arrays), dtype=np.int64, count=len(arrays))


def _ids(values: Sequence[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


def _require_columns(batch: pa.Table) -> None:
    needed = [contracts.ID, contracts.SEED_ID, contracts.SOURCE, contracts.DOMAIN]
    missing = [name for name in needed if name not in batch.column_names]
    if missing:
        raise ValueError(
            f"tokenizing needs lineage and mix-key columns {missing}, absent from {batch.column_names}; "
            "run the rows through the seeds stage (it sets them) first"
        )


def _optional_column(batch: pa.Table, name: str) -> list[str | None]:
    if name not in batch.column_names:
        return [None] * batch.num_rows
    return batch.column(name).to_pylist()
