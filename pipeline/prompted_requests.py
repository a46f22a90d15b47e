"""From rows to LLM requests and back: rendering templates, deterministic choices, reading replies.

Model stages render one request per row (template + variables + per-row sampling seed) into
the columns `synthmix.pipeline.llm.processors.apply_llm` reads, and after generation read each reply into a
value or a reject reason. Every choice (template, task type, style, evolution operation) is a
hash of the row id and the job's seed, so a rerun of the same job makes the same requests
whatever the batch boundaries. A stage helper above the engine layer, like `synthmix.pipeline.model_stage`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import RejectReason
from synthmix.pipeline.llm.llm_output import parse_llm_json
from synthmix.pipeline.llm.prompts import PromptTemplate
from synthmix.pipeline.stage import with_columns

PROMPT_INFO = "prompt_info"  # JSON: template id/version/sha256 and the variables used


def stable_seed(*parts: Any) -> int:
    """A 31-bit integer from the parts: the same everywhere, every run."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def stable_choice(options: Sequence[Any], *parts: Any, weights: Sequence[float] | None = None) -> Any:
    """Pick one option by weight, deterministically from the parts."""
    if not options:
        raise ValueError("stable_choice needs at least one option")
    weights = list(weights) if weights is not None else [1.0] * len(options)
    point = stable_seed(*parts) / 0x80000000 * sum(weights)
    for option, weight in zip(options, weights):
        point -= weight
        if point < 0:
            return option
    return options[-1]


@dataclass
class Request:
    """One model call for one row."""

    template: PromptTemplate
    variables: dict[str, Any]
    seed: int
    sampling: dict[str, Any] = field(default_factory=dict)
    # Recorded with the variables; not passed to the template.
    notes: dict[str, Any] = field(default_factory=dict)


def attach_requests(batch: pa.Table, requests: Sequence[Request | None]) -> pa.Table:
    """Add the request columns apply_llm reads, plus `prompt_info` for provenance. A row whose
    request is None asks nothing: apply_llm passes it through unsent."""
    if len(requests) != batch.num_rows:
        raise ValueError(f"{len(requests)} requests for {batch.num_rows} rows; give one request per row")
    messages, schemas, sampling, info = [], [], [], []
    for request in requests:
        if request is None:
            messages.append(None)
            schemas.append(None)
            sampling.append(None)
            info.append(None)
            continue
        messages.append(json.dumps(request.template.render(**request.variables), ensure_ascii=False))
        schemas.append(json.dumps(request.template.schema) if request.template.schema else None)
        sampling.append(json.dumps({**request.sampling, "seed": request.seed}))
        shown = {key: value for key, value in request.variables.items() if key not in ("text", "instruction", "examples", "passage", "answer")}
        info.append(json.dumps({**request.template.provenance(), "variables": shown, **request.notes}, ensure_ascii=False))
    arrays = {contracts.MESSAGES: messages, contracts.JSON_SCHEMA: schemas, contracts.SAMPLING_PARAMS: sampling, PROMPT_INFO: info}
    return with_columns(batch, {name: pa.array(values, pa.string()) for name, values in arrays.items()})


@dataclass
class Reply:
    """A row's reply: a parsed value, or why there is none (a RejectReason and a detail)."""

    value: Any = None
    reason: RejectReason | None = None
    detail: str | None = None


def read_reply(row: dict[str, Any]) -> Reply:
    """The row's generated text, parsed against its schema when it has one.

    Every row gets a value or a reason: a failed request is its `llm_error_reason`
    (`prompt_too_long`, else `llm_error`), a reply with no text is `empty`, one that does not
    parse against the schema is `parse_error`."""
    if row.get(contracts.LLM_ERROR):
        reason = RejectReason(row.get(contracts.LLM_ERROR_REASON) or RejectReason.LLM_ERROR)
        return Reply(reason=reason, detail=str(row[contracts.LLM_ERROR])[:2000])
    text = row.get(contracts.GENERATED_TEXT)
    if not isinstance(text, str) or not text.strip():
        tokens = row.get(contracts.GENERATED_TOKENS)
        return Reply(reason=RejectReason.EMPTY, detail=f"the model returned no text ({tokens if tokens is not None else 'unknown'} tokens generated)")
    schema = row.get(contracts.JSON_SCHEMA)
    if not schema:
        return Reply(value=text.strip())
    value, error = parse_llm_json(text, json.loads(schema))
    if error is not None:
        return Reply(reason=RejectReason.PARSE_ERROR, detail=json.dumps({"error": error, "raw": (text or "")[:1000]}, ensure_ascii=False))
    return Reply(value=value)


def generation_meta(row: dict[str, Any], **extra: Any) -> str:
    """The `meta` JSON of a generated row: template, variables, model and sampling used."""
    meta = json.loads(row[contracts.META]) if row.get(contracts.META) else {}
    step = {
        **json.loads(row[PROMPT_INFO]),
        "model": row.get(contracts.LLM_MODEL),
        "sampling": json.loads(row["llm_sampling"]) if row.get("llm_sampling") else None,
        **extra,
    }
    meta.setdefault("steps", []).append(step)
    return json.dumps(meta, ensure_ascii=False, sort_keys=True)
