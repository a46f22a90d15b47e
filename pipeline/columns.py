"""Column names shared by every stage, in one place so a typo is an import error, not a silent null."""

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
ANSWER = "answer"
SAMPLES = "samples"  # list<string>: k answers drawn for self-consistency
META = "meta"  # JSON string: generator models, template ids, evolution ops, scores

# Rejects: set only on rows written to `<stage>/rejects/`.
REJECT_REASON = "reject_reason"
REJECT_DETAIL = "reject_detail"

# Read by the LLM layer (`pipeline.llm.apply_llm`) on every request row.
MESSAGES = "messages"  # chat messages, a list of {role, content} or its JSON
SAMPLING_PARAMS = "sampling_params"  # optional per-row overrides (JSON or struct)
JSON_SCHEMA = "json_schema"  # optional per-row JSON schema of the expected output
# Written by the LLM layer on every generated row; the runner sums tokens per model.
GENERATED_TEXT = "generated_text"
LLM_ERROR = "llm_error"
LLM_MODEL = "llm_model"
PROMPT_TOKENS = "num_input_tokens"
GENERATED_TOKENS = "num_generated_tokens"
LLM_SAMPLING = "llm_sampling"  # JSON of the sampling parameters used
LLM_SAMPLE_INDEX = "llm_sample_index"

# Synthesis and filtering contract between stages.
EVOLUTION_OP = "evolution_op"  # which evolution produced the instruction ("" for originals)
OBJECTIVE = "objective"  # bool: the task has one checkable answer (math, short fact, choice)
CRITIQUE_SCORE = "critique_score"  # aggregate rubric score, 1..10
CRITIQUE = "critique"  # JSON: per-dimension scores and the rationale
VOTES = "votes"  # JSON: self-consistency vote over `samples`
QUALITY_SCORE = "quality_score"  # fastText quality classifier P(high)
LANG_PROB = "lang_prob"  # fastText language-id probability of `lang`
HEURISTIC_SCORES = "heuristic_scores"  # JSON: the heuristic scores the quality stage judged by
SAMPLE_INDEX = "sample_index"  # which of an instruction's answer samples a row is
NUM_SAMPLES = "num_samples"
ANSWER_MODEL = "answer_model"
