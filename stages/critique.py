"""critique: a critique model grades each instruction-answer pair on a rubric (Hunyuan-Large step 4).

The model named in `model` reads the pair through the template `prompt` (default
`critique/rubric`) and replies, under structured decoding, with a JSON object: a short
`rationale` first (so the scores follow from it), then an integer from 1 to 10 for each of
accuracy, relevance, completeness, usefulness and clarity.

Writes `critique` (JSON: rationale, per-dimension scores, aggregate, model, template) and
`critique_score` (the weighted mean of the dimensions, 1..10), and adds a step to `meta`.
Rejects:
- `llm_error`, `prompt_too_long`: the request failed (the error is the detail);
- `empty`: the pair has no answer, or the model returned no text;
- `parse_error`: the reply is not a judgement of the expected shape — never a silent pass
  (the detail keeps the error and the raw reply);
- `critique_low`: the aggregate is below `min_score`, or a dimension below its floor in
  `min_dimension` (rejected rows keep their `critique` and `critique_score`, so a quality
  classifier can learn from them).
Self-consistency of objective tasks runs before this, in the `consistency` stage.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field, field_validator

from pipeline import columns
from pipeline.llm.model_stage import ModelStage
from pipeline.llm.models import SamplingParams
from pipeline.llm.prompted_requests import PROMPT_INFO, Request, attach_requests, generation_meta, read_reply
from pipeline.llm.prompts import load_prompt
from pipeline.rejects import RejectReason
from pipeline.stage import Resources, StageParams

Dimension = Literal["accuracy", "relevance", "completeness", "usefulness", "clarity"]
DIMENSIONS: tuple[Dimension, ...] = ("accuracy", "relevance", "completeness", "usefulness", "clarity")
RATIONALE = "rationale"
DEFAULT_PROMPT = "critique/rubric"


class CritiqueParams(StageParams):
    model: str = "embedded"
    prompt: str = Field(default=DEFAULT_PROMPT, description="template id; its schema must ask for rationale and every dimension")
    min_score: float = Field(default=6.0, ge=1, le=10, description="aggregate score below which a pair is rejected as critique_low")
    min_dimension: dict[Dimension, float] = Field(default_factory=dict, description="optional floors per dimension, e.g. {accuracy: 5}")
    weights: dict[Dimension, float] = Field(
        default_factory=lambda: dict.fromkeys(DIMENSIONS, 1.0), description="weights of the aggregate (a weighted mean); unnamed dimensions weigh 0"
    )
    seed: int = 0
    # Greedy by default: a grader should give the same pair the same grade.
    # The rationale is at most 300 characters (the template's schema): 384 tokens hold it in
    # Chinese too; at 256, seven of 72 quickstart judgements were cut off mid-JSON.
    sampling: SamplingParams = SamplingParams(temperature=0.0, max_tokens=384)

    @field_validator("prompt")
    @classmethod
    def _prompt_asks_for_the_rubric(cls, template_id: str) -> str:
        check_rubric_template(template_id)
        return template_id

    @field_validator("weights")
    @classmethod
    def _some_weight_is_positive(cls, weights: dict[str, float]) -> dict[str, float]:
        if any(weight < 0 for weight in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError(f"weights {weights} must be >= 0 with a positive sum; e.g. {{accuracy: 2, clarity: 1}}")
        return weights


@dataclass(frozen=True)
class Judgement:
    rationale: str
    scores: dict[str, int]

    def aggregate(self, weights: dict[str, float]) -> float:
        """Weighted mean of the dimension scores."""
        total = sum(weights.values())
        return sum(self.scores[name] * weight for name, weight in weights.items()) / total


def parse_judgement(value: Any) -> tuple[Judgement | None, str | None]:
    """A judgement from a reply already parsed and validated against the template's schema.

    The schema guarantees the shape for the default template; this also holds a custom template
    to the rubric, so a reply missing a dimension is a parse error, not a zero.
    """
    if not isinstance(value, dict):
        return None, f"expected a JSON object, got {type(value).__name__}"
    missing = [name for name in (RATIONALE, *DIMENSIONS) if name not in value]
    if missing:
        return None, f"judgement lacks {missing}"
    scores = {}
    for name in DIMENSIONS:
        score = value[name]
        if isinstance(score, bool) or not isinstance(score, int | float) or score != int(score) or not 1 <= score <= 10:
            return None, f"{name} is {score!r}, not an integer from 1 to 10"
        scores[name] = int(score)
    return Judgement(rationale=str(value[RATIONALE]).strip(), scores=scores), None


def find_shortfall(judgement: Judgement, score: float, params: CritiqueParams) -> str | None:
    """Why a judged pair falls short (None when it passes): the aggregate, then each dimension floor."""
    if score < params.min_score:
        return f"critique_score {score:.2f} < min_score {params.min_score}"
    for name, floor in params.min_dimension.items():
        if judgement.scores[name] < floor:
            return f"{name} {judgement.scores[name]} < min_dimension.{name} {floor}"
    return None


class Critique(ModelStage):
    name = "critique"
    input_columns = (columns.INSTRUCTION, columns.ANSWER)
    output_fields = (
        pa.field(columns.CRITIQUE, pa.string()),
        pa.field(columns.CRITIQUE_SCORE, pa.float64()),
        pa.field(columns.META, pa.string()),
    )
    params = CritiqueParams
    resources = Resources(num_cpus=0.25, batch_size=64)
    prompts = (DEFAULT_PROMPT,)

    def prompt_ids(self) -> tuple[str, ...]:
        return (self.params.prompt,)

    def render_requests(self, batch: pa.Table) -> pa.Table:
        template = load_prompt(self.params.prompt)
        pairs = batch.select([columns.INSTRUCTION, columns.ANSWER]).to_pylist()
        # Greedy decoding ignores the seed; a sampled critique (temperature > 0) stays reproducible.
        requests = [
            Request(template, {"instruction": pair[columns.INSTRUCTION] or "", "answer": pair[columns.ANSWER] or ""}, seed=self.params.seed) for pair in pairs
        ]
        return attach_requests(batch, requests)

    def transform(self, batch: pa.Table) -> pa.Table:
        weights = {name: weight for name, weight in self.params.weights.items() if weight}
        critiques, scores, metas, reasons, details = [], [], [], [], []
        for row in batch.to_pylist():
            critique = score = None
            meta = row.get(columns.META)
            reason, detail = None, None
            reply = read_reply(row)
            if not (row[columns.ANSWER] or "").strip():
                reason, detail = RejectReason.EMPTY.value, "the pair has no answer to judge"
            elif reply.reason is not None:
                reason, detail = reply.reason.value, reply.detail
            else:
                judgement, problem = parse_judgement(reply.value)
                if problem is not None:
                    reason = RejectReason.PARSE_ERROR.value
                    detail = json.dumps({"error": problem, "raw": row[columns.GENERATED_TEXT][:1000]}, ensure_ascii=False)
                else:
                    score = round(judgement.aggregate(weights), 4)
                    critique = describe_judgement(judgement, score, row)
                    meta = generation_meta(row, critique_score=score)
                    shortfall = find_shortfall(judgement, score, self.params)
                    if shortfall is not None:
                        reason, detail = RejectReason.CRITIQUE_LOW.value, json.dumps({"why": shortfall, "scores": judgement.scores})
            critiques.append(critique)
            scores.append(score)
            metas.append(meta)
            reasons.append(reason)
            details.append(detail)
        kept = batch.drop_columns([name for name in (columns.META, PROMPT_INFO) if name in batch.column_names])
        return (
            kept.append_column(columns.CRITIQUE, pa.array(critiques, pa.string()))
            .append_column(columns.CRITIQUE_SCORE, pa.array(scores, pa.float64()))
            .append_column(columns.META, pa.array(metas, pa.string()))
            .append_column(columns.REJECT_REASON, pa.array(reasons, pa.string()))
            .append_column(columns.REJECT_DETAIL, pa.array(details, pa.string()))
        )


def describe_judgement(judgement: Judgement, score: float, row: dict[str, Any]) -> str:
    """The `critique` JSON: what was judged by whom, the rationale and every score."""
    prompt = json.loads(row[PROMPT_INFO])
    return json.dumps(
        {
            "rationale": judgement.rationale,
            "scores": judgement.scores,
            "aggregate": score,
            "model": row.get(columns.LLM_MODEL),
            "template_id": prompt["template_id"],
            "template_version": prompt["template_version"],
        },
        ensure_ascii=False,
    )


def check_rubric_template(template_id: str) -> None:
    """A custom critique template must ask for the rubric's keys, or every reply would be a parse error."""
    template = load_prompt(template_id)  # a PromptError is a ValueError: pydantic reports it under `prompt`
    required = set((template.schema or {}).get("required", []))
    missing = [name for name in (RATIONALE, *DIMENSIONS) if name not in required]
    if missing:
        raise ValueError(
            f"template {template_id!r} ({template.path}) has a schema that does not require {missing}; "
            f"list {RATIONALE!r} and every dimension ({', '.join(DIMENSIONS)}) under `required`"
        )
