"""The working columns a request carries between `apply_llm`'s steps, and what an engine's
replies are read into: the vocabulary shared by `synthmix.pipeline.llm.processors` and every engine.

`expand_requests` writes these columns, an engine sends the rows and adds its replies in a
column of its own, and its reply reader (`Engine.generate` returns it) turns them into `Replies`
for `finish_rows`. Every column here is dropped before rows leave `apply_llm`. The input row
travels packed in one struct column so Ray's processor columns (prompt, messages, ...) never
collide with ours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

ROW = "__synthmix_row"
SAMPLING = "__synthmix_sampling"
SAMPLE_INDEX = "__synthmix_sample_index"
SCHEMA = "__synthmix_schema"
UNSENT = "__synthmix_unsent"  # the row asked nothing (null messages)
PROMPT_COUNT = "__synthmix_prompt_tokens"  # the prompt's tokens, where they were counted
TOO_LONG = "__synthmix_prompt_too_long"  # why the prompt does not fit; such a row is not generated

# What Ray's processors are sent for a row that asks nothing; its reply is dropped.
PLACEHOLDER_MESSAGES = [{"role": "user", "content": "."}]


@dataclass(frozen=True)
class Replies:
    """One batch's replies as an engine read them, one entry per row, in the rows' order."""

    texts: list[str | None]
    errors: list[str | None]
    prompt_tokens: list[int | None]
    generated_tokens: list[int | None]
    top_logprobs: list[str | None]  # JSON, where the row asked for log-probabilities

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], *, generated_tokens_key: str = "generated_tokens") -> Replies:
        """From one reply dict per row, {text, error, prompt_tokens, <generated_tokens_key>, top_logprobs?}."""
        return cls(
            texts=[record["text"] for record in records],
            errors=[record["error"] for record in records],
            prompt_tokens=[record["prompt_tokens"] for record in records],
            generated_tokens=[record[generated_tokens_key] for record in records],
            top_logprobs=[record.get("top_logprobs") for record in records],
        )


def as_messages(value: Any) -> list[dict[str, str]]:
    """Chat messages from a row value: a list of {role, content} (or numpy array of them), or JSON."""
    if isinstance(value, str):
        value = json.loads(value)
    return [{"role": str(message["role"]), "content": str(message["content"])} for message in value]
