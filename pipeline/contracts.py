"""The contracts between stages: column names, reject reasons, row shapes, ids and errors.

One leaf module that imports nothing of synthmix, so every layer may depend on it: stages,
the run core, `quality/` (which may import nothing else of ours) and the tests, which import
these shapes instead of restating them. A stage module never imports another stage module;
what two stages share lives here or in a `pipeline` module.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

import pyarrow as pa

# --- column names: one place, so a typo is an import error, not a silent null -------------------
# Lineage: every row, down to a tokenized shard row, traces back to its seed document.
ID = "id"  # stable content hash of the row
SEED_ID = "seed_id"  # id of the seed chunk this row descends from
PARENT_ID = "parent_id"  # id of the row this one was made from (for seeds: the source record locator)
# Record identity: where a seed record came from, carried unchanged by every stage to the shards.
SOURCE_ID = "source_id"  # the record's own id (`seeds.id_field`), as the user gave it; null when it has none
ORIGIN = "origin"  # JSON: {"file", "line" (JSONL) or "row" (Parquet, datasets), "chunk", "fields": keep_fields}

# Mix keys.
SOURCE = "source"  # where the seed came from: "pydoc_topics", "stdlib", a file name, ...
DOMAIN = "domain"  # "general", "code", "math", "science", ...
LANG = "lang"  # ISO 639-1 language code of the main text
SYNTHETIC = "synthetic"

# Content.
TEXT = "text"  # seed chunk text
KIND = "kind"  # kind of seed document: "web", "qa", "code", "book"
INSTRUCTION = "instruction"
# The seed text an instruction was made from (what synthesize showed the model), carried to the
# pairs so the critique judges an answer against its source; null where there is none (probes,
# instructions made by self-instruct expansion).
PASSAGE = "passage"
ANSWER = "answer"
SAMPLES = "samples"  # list<string>: k answers drawn for self-consistency
META = "meta"  # JSON string: generator models, template ids, evolution ops, scores

# Rejects: set only on rows written to `<stage>/rejects/`.
REJECT_REASON = "reject_reason"
REJECT_DETAIL = "reject_detail"

# Read by the LLM layer (`synthmix.pipeline.llm.processors.apply_llm`) on every request row.
MESSAGES = "messages"  # chat messages, a list of {role, content} or its JSON
SAMPLING_PARAMS = "sampling_params"  # optional per-row overrides (JSON or struct)
JSON_SCHEMA = "json_schema"  # optional per-row JSON schema of the expected output
# Written by the LLM layer on every generated row; the runner sums tokens per model.
GENERATED_TEXT = "generated_text"
LLM_ERROR = "llm_error"
LLM_ERROR_REASON = "llm_error_reason"  # a failed request's RejectReason: prompt_too_long, else llm_error
LLM_MODEL = "llm_model"
PROMPT_TOKENS = "num_input_tokens"
GENERATED_TOKENS = "num_generated_tokens"
LLM_SAMPLING = "llm_sampling"  # JSON of the sampling parameters used
LLM_SAMPLE_INDEX = "llm_sample_index"
# Requests behind a row's token counts, where a stage asked several (critique: one per signal);
# a generated row without it counts as one request.
LLM_REQUESTS = "llm_requests"
# JSON, only where the request asked for `logprobs`: per generated position, the most likely
# tokens and their log-probabilities ([{"Yes": -0.1, "No": -2.4, ...}, ...]), for judges read by probability.
LLM_TOP_LOGPROBS = "llm_top_logprobs"

# Synthesis and filtering contract between stages.
EVOLUTION_OP = "evolution_op"  # which evolution produced the instruction ("" for originals)
EVOLUTION_DEPTH = "evolution_depth"  # evolution rounds behind the instruction (0 for originals)
TASK_TYPE = "task_type"  # the kind of task the generator was asked for ("question", "math", ...)
OBJECTIVE = "objective"  # bool: the task has one checkable answer (math, short fact, choice)
CRITIQUE_SCORE = "critique_score"  # the critique's decision score on [0, 1] (the judge's P(yes) by default)
CRITIQUE = "critique"  # JSON: per-dimension scores and the rationale
VOTES = "votes"  # JSON: self-consistency vote over `samples`
QUALITY_SCORE = "quality_score"  # fastText quality classifier P(high)
LANG_PROB = "lang_prob"  # fastText language-id probability of `lang`
HEURISTIC_SCORES = "heuristic_scores"  # JSON: the heuristic scores the quality stage judged by
SAMPLE_INDEX = "sample_index"  # which of an instruction's answer samples a row is
NUM_SAMPLES = "num_samples"
ANSWER_MODEL = "answer_model"
# Verifiable probes (stages/probes.py): problems with known answers, measured by `synthmix eval`.
PROBE = "probe"  # JSON marker of a probe row: set, key, reference answer; null on every other row
TESTS = "tests"  # Python run after the answer's code; it passes when it exits without error


# --- reject reasons --------------------------------------------------------------------------------
class RejectReason(StrEnum):
    """Why a row was dropped: machine-readable, named by the fault."""

    # input
    EMPTY = "empty"  # no text after normalisation
    NOT_UTF8 = "not_utf8"  # bytes that are not valid UTF-8
    TOO_LARGE = "too_large"  # over the configured size limit
    PARSE_ERROR = "parse_error"  # a line/record or an LLM output that does not parse
    MISSING_FIELD = "missing_field"  # a record without the configured text field
    EXACT_DUPLICATE = "exact_duplicate"  # same normalised text as a row kept elsewhere
    NOT_DRAWN = "not_drawn"  # a sound seed chunk past `seeds.max_chunks` (a pilot's slice): left for a larger run
    # generation
    LLM_ERROR = "llm_error"  # the request failed (engine error, timeout, 5xx, context overflow)
    PROMPT_TOO_LONG = "prompt_too_long"  # the rendered prompt has more tokens than the model takes (detail: count, limit)
    COPIES_SEED = "copies_seed"  # an instruction that repeats its seed text
    NOT_A_REQUEST = "not_a_request"  # an instruction that asks for nothing
    INCOMPLETE = "incomplete"  # an instruction or answer cut off mid-sentence ("What is the difference between")
    NOT_SELF_CONTAINED = "not_self_contained"  # an instruction that points at a text it does not include
    NO_INFORMATION_GAIN = "no_information_gain"  # an evolution that adds nothing over its parent
    TEMPLATE_LEAK = "template_leak"  # prompt-template words copied into the output
    REFUSAL = "refusal"  # the model declined
    NOT_AN_ANSWER = "not_an_answer"  # a reply that asks a question back instead of answering
    WRONG_CODE_LANGUAGE = "wrong_code_language"  # code in a programming language the instruction did not ask for
    CODE_SYNTAX_ERROR = "code_syntax_error"  # Python in the answer that does not parse
    WRONG_ARITHMETIC = "wrong_arithmetic"  # a calculation of plain numbers in the answer with a wrong result
    MISSING_ASKED_API = "missing_asked_api"  # code that never uses the construct the instruction asks for (a "class method" without @classmethod)
    DESCRIBES_ABSENT_CODE = "describes_absent_code"  # prose naming a construct (`@property`, `pass`) its code does not have
    MISLABELLED_ATTRIBUTE = "mislabelled_attribute"  # a class attribute called an instance attribute, or the other way round
    IGNORES_CONSTRAINT = "ignores_constraint"  # an answer without the length, format or example its instruction asks for
    CONTAINS_ANSWER = "contains_answer"  # an instruction that states its own answer after the question
    NOT_HARDER = "not_harder"  # a "harder" rewrite whose answers show it no harder than its parent
    TOO_SHORT = "too_short"
    # filtering
    CRITIQUE_LOW = "critique_low"
    CONTRADICTS_SOURCE = "contradicts_source"  # the judge finds the answer contradicts its instruction's seed passage
    INCONSISTENT = "inconsistent"  # self-consistency vote below the agreement threshold
    NEAR_DUPLICATE = "near_duplicate"
    LANG = "lang"  # language not wanted, or instruction/answer languages differ
    QUALITY_LOW = "quality_low"
    REPETITIVE = "repetitive"
    BOILERPLATE = "boilerplate"
    CONTAMINATED = "contaminated"  # shares a long n-gram with a benchmark
    # code verification (stages/verify_code.py; the outcomes of quality/sandbox.py)
    NO_CODE = "no_code"  # a code answer with no Python program to run
    TESTS_FAILED = "tests_failed"  # the answer's code failed its tests (detail: the failing assertion)
    TIMEOUT = "timeout"  # the answer's code ran past its CPU or wall-clock limit
    CRASHED = "crashed"  # the answer's code could not run: syntax error, exception, memory, signal
    SANDBOX_VIOLATION = "sandbox_violation"  # it started a process, used the network, wrote outside its directory or flooded its output
    PROBE = "probe"  # a verifiable probe set aside after the last filter: measured, never trained on
    # a job run in rounds (pipeline/cli/rounds.py) with `rounds.past_target: trim`
    PAST_TARGET = "past_target"  # a kept pair beyond every target covering it (or covered by none)


# --- how output rows relate to input rows ----------------------------------------------------------
class Lineage(StrEnum):
    """How a stage's output rows relate to its input rows; the runner checks it on every batch."""

    SAME_ROW = "same_row"  # one output row per input row, same `id`
    CHILDREN = "children"  # one or more output rows per input row, each with `parent_id` = the input's `id`


# --- row shapes ------------------------------------------------------------------------------------
# Every row, down to a shard row, traces back to its seed chunk through these.
LINEAGE_FIELDS = (
    pa.field(ID, pa.string()),
    pa.field(SEED_ID, pa.string()),
    pa.field(PARENT_ID, pa.string()),
)
# The seed record's identity (stages/seeds.py), carried unchanged to the shards.
RECORD_FIELDS = (
    pa.field(SOURCE_ID, pa.string()),
    pa.field(ORIGIN, pa.string()),
)
# What synthesize and evolve write: one row per instruction.
INSTRUCTION_FIELDS = (
    *LINEAGE_FIELDS,
    pa.field(SOURCE, pa.string()),
    pa.field(DOMAIN, pa.string()),
    pa.field(LANG, pa.string()),
    pa.field(INSTRUCTION, pa.string()),
    pa.field(TASK_TYPE, pa.string()),
    pa.field(OBJECTIVE, pa.bool_()),
    pa.field(EVOLUTION_OP, pa.string()),
    pa.field(EVOLUTION_DEPTH, pa.int32()),
    pa.field(META, pa.string()),
    *RECORD_FIELDS,
    pa.field(PASSAGE, pa.string()),
)
# What the filtering stages (consistency, critique, quality, decontaminate) read: one row per
# instruction-answer pair, as gather_samples makes it from the answer stage's samples.
ANSWER_FIELDS = (
    *LINEAGE_FIELDS,
    pa.field(SOURCE, pa.string()),
    pa.field(DOMAIN, pa.string()),
    pa.field(LANG, pa.string()),
    pa.field(INSTRUCTION, pa.string()),
    pa.field(ANSWER, pa.string()),
    pa.field(SAMPLES, pa.list_(pa.string())),
    pa.field(OBJECTIVE, pa.bool_()),
    pa.field(META, pa.string()),
    *RECORD_FIELDS,
    pa.field(PASSAGE, pa.string()),
)


def with_reject_columns(schema: pa.Schema) -> pa.Schema:
    """`schema` with every field nullable plus `reject_reason` and `reject_detail`: the shape of
    a stage's returned rows and of its rejects files."""
    return pa.schema([field.with_nullable(True) for field in schema] + [pa.field(REJECT_REASON, pa.string()), pa.field(REJECT_DETAIL, pa.string())])


# --- ids -------------------------------------------------------------------------------------------
def content_id(text: str) -> str:
    """Stable row id: the same text gets the same id in every run."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def derived_id(parent_id: str, *parts: Any) -> str:
    """The id of a row made from `parent_id`: the same parent and parts give the same id."""
    return content_id("\x1f".join([parent_id, *(str(part) for part in parts)]))


def reject_row(base: dict, parent_id: str, reason: RejectReason, detail: str | None, **fields: Any) -> dict:
    """A reject for an input that yielded nothing: keyed by its parent, so lineage holds."""
    return {
        **base,
        **fields,
        ID: derived_id(parent_id, "reject"),
        PARENT_ID: parent_id,
        REJECT_REASON: RejectReason(reason).value,
        REJECT_DETAIL: detail,
    }


# --- errors ----------------------------------------------------------------------------------------
class ConfigError(ValueError):
    """A job file (or a --set override) that does not describe a runnable job."""


class LineageError(RuntimeError):
    """A stage returned rows that do not trace back to its input: a bug in the stage."""
