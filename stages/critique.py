"""critique: a judge model grades each instruction-answer pair (Hunyuan-Large step 4), read by probability.

First, checks that need no judge (`checks`; quality/answer_checks.py, quality/heuristics.py,
quality/langid.py): code in a programming language the instruction did not ask for, Python that
does not parse, a calculation of plain numbers with a wrong result, code without the construct
asked for, an explanation naming a construct its code lacks, a class attribute called an
instance attribute (or the other way round), an answer over its instruction's length limit or
without the table, list or example it asks for, an answer cut off mid-way, a
refusal, an answer in another natural language than its instruction. A pair that fails one is rejected with that reason, and is not sent to the
judge (unless `judge_rejected`, which measurement jobs set to score every pair).

Then the judge, `model`, is asked one question per signal in `signals`, each through its own
template (`templates`); the pair's text comes first in every template, so an engine that
caches prompt prefixes reads it once:
- `verdict` (critique/verdict): "Is this response correct and complete? Reply Yes or No", one
  token, read as P(yes) over the yes and no tokens of its top log-probabilities
  (`synthmix.quality.judge_probabilities`). Small judges say "Yes" to nearly everything; how sure they
  are still separates right from wrong answers;
- `score` (critique/score): a grade from 1 to 5 in one token, read as the expected grade;
- `grounding` (critique/grounding), for pairs with a `passage` (the seed text their instruction
  was made from): does the passage support the response (A), does the response contradict it
  (B), or go beyond it (C)? Read as the probability of each;
- `rubric` (critique/rubric): the JSON rubric, a rationale then five 1-10 scores (costly: about
  a hundred generated tokens per pair, where the others take one).

Writes `critique` (JSON: each signal's reading, the checks, model and templates) and
`critique_score` in [0, 1]: the `decide_by` signal (P(yes); (grade - 1) / 4; (rubric - 1) / 9),
times 1 - P(contradicts) where the pair was checked against its passage. Rejects, in order:
- the checks' reasons: `wrong_code_language`, `code_syntax_error`, `wrong_arithmetic`,
  `missing_asked_api`, `describes_absent_code`, `mislabelled_attribute`, `ignores_constraint`, `incomplete`, `refusal`, `lang`;
- `empty`: the pair has no answer to judge;
- `llm_error` or `prompt_too_long` (a judge request failed), `parse_error` (a reply that cannot be read: no yes or no
  among the likeliest tokens, a rubric of the wrong shape — never a silent pass);
- `contradicts_source`: P(contradicts) of at least `max_contradiction`;
- `critique_low`: `critique_score` below `min_score`, or a rubric dimension below its floor.
Rejected rows keep their `critique` and `critique_score`, so `synthmix eval` and a quality
classifier can learn from them. Self-consistency of objective tasks runs before this, in the
`consistency` stage.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator, model_validator

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import RejectReason
from synthmix.pipeline.llm.models import SamplingParams
from synthmix.pipeline.llm.processors import apply_llm
from synthmix.pipeline.llm.prompts import load_prompt
from synthmix.pipeline.model_stage import RENDER_CPUS, ModelStage
from synthmix.pipeline.prompted_requests import PROMPT_INFO, Request, attach_requests, read_reply
from synthmix.pipeline.stage import Resources, StageParams, with_columns
from synthmix.quality.answer_checks import (
    check_arithmetic,
    check_asked_construct,
    check_attribute_labels,
    check_code_language,
    check_cut_off,
    check_describes_absent_code,
    check_follows_constraints,
    check_python_syntax,
)
from synthmix.quality.code_language import prose_of
from synthmix.quality.heuristics import count_refusals
from synthmix.quality.judge_probabilities import expected_score, option_probabilities, yes_probability
from synthmix.quality.langid import identify_languages, load_lid_model

Signal = Literal["verdict", "score", "grounding", "rubric"]
DecidingSignal = Literal["verdict", "score", "rubric"]
Dimension = Literal["accuracy", "relevance", "completeness", "usefulness", "clarity"]
DIMENSIONS: tuple[Dimension, ...] = ("accuracy", "relevance", "completeness", "usefulness", "clarity")
RATIONALE = "rationale"
DEFAULT_TEMPLATES: dict[str, str] = {
    "verdict": "critique/verdict",
    "score": "critique/score",
    "grounding": "critique/grounding",
    "rubric": "critique/rubric",
}
GRADES = (1, 2, 3, 4, 5)
GROUNDING_OPTIONS = {"A": "supported", "B": "contradicts", "C": "beyond"}
# A one-token reply and the likeliest tokens at its position: 20 is vLLM's default ceiling.
ONE_TOKEN = {"temperature": 0.0, "max_tokens": 1, "logprobs": 20}

# lid.176, loaded once per worker process for the language check.
_lid_model = functools.cache(load_lid_model)

# Columns that live only between `prepare` and `transform`.
_CHECK_REASON = "__critique_check_reason"
_CHECK_DETAIL = "__critique_check_detail"
_USAGE = ("__critique_requests", "__critique_prompt_tokens", "__critique_generated_tokens")


def _reply_columns(signal: str) -> tuple[str, str, str, str]:
    """(text, top log-probabilities, error, error's reject reason) of one signal's reply."""
    return f"__critique_{signal}_text", f"__critique_{signal}_logprobs", f"__critique_{signal}_error", f"__critique_{signal}_error_reason"


class CritiqueChecks(StageParams):
    """The checks that need no judge; each can be turned off."""

    code_language: bool = Field(default=True, description="reject code in a programming language the instruction did not ask for")
    default_code_language: str | None = Field(default="python", description="the language code instructions mean when they name none; null: any language then")
    python_syntax: bool = Field(default=True, description="reject Python blocks that do not parse")
    arithmetic: bool = Field(default=True, description="reject calculations of plain numbers with a wrong result (2 + 1 = 4)")
    asked_construct: bool = Field(default=True, description="reject code without the construct asked for (a 'class method' with no @classmethod)")
    absent_code: bool = Field(default=True, description="reject explanations naming a construct (`@property`, `pass`) the answer's code does not have")
    attribute_labels: bool = Field(
        default=True, description="reject class attributes called instance attributes (in comments or prose) and the other way round"
    )
    constraints: bool = Field(
        default=True, description="reject answers over the length limit their instruction sets, or without the table, list or example it asks for"
    )
    cut_off: bool = Field(default=True, description="reject answers that stop mid-way (an open code block, a sentence with no end)")
    refusal: bool = Field(default=True, description="reject refusals (synthmix.quality.heuristics' phrases)")
    answer_language: bool = Field(default=True, description="reject answers confidently in another language than the row's `lang`")
    min_lang_prob: float = Field(default=0.5, ge=0, le=1, description="language identifications below this never reject")


class CritiqueParams(StageParams):
    model: str = "embedded"
    signals: list[Signal] = Field(default_factory=lambda: ["verdict", "grounding"], min_length=1, description="questions asked of the judge")
    decide_by: DecidingSignal = Field(default="verdict", description="the signal critique_score is made of")
    min_score: float = Field(default=0.5, ge=0, le=1, description="critique_score below which a pair is rejected as critique_low")
    max_contradiction: float = Field(default=0.5, gt=0, le=1, description="P(contradicts its passage) from which a pair is rejected")
    templates: dict[Signal, str] = Field(default_factory=lambda: dict(DEFAULT_TEMPLATES), description="template id per signal")
    checks: CritiqueChecks = CritiqueChecks()
    judge_rejected: bool = Field(default=False, description="judge pairs a check rejected too (to measure the judge on them)")
    min_dimension: dict[Dimension, float] = Field(default_factory=dict, description="rubric: optional floors per dimension, e.g. {accuracy: 5}")
    weights: dict[Dimension, float] = Field(
        default_factory=lambda: dict.fromkeys(DIMENSIONS, 1.0), description="rubric: weights of its aggregate (a weighted mean)"
    )
    seed: int = 0
    # The rubric's sampling: greedy, so a pair gets the same grade twice. Its rationale is at most
    # 300 characters (the template's schema); at 256 tokens, 7 of 72 quickstart judgements were cut off.
    sampling: SamplingParams = SamplingParams(temperature=0.0, max_tokens=384)

    @field_validator("min_score", mode="before")
    @classmethod
    def _score_is_a_share(cls, value: Any) -> Any:
        if isinstance(value, int | float) and 1 < value <= 10:
            raise ValueError(
                f"min_score {value} reads like the old 1-10 rubric scale; critique_score is now in [0, 1] "
                f"(P(yes) of the verdict): write {round((value - 1) / 9, 2)} for the same rubric bar, or e.g. 0.5"
            )
        return value

    @field_validator("weights")
    @classmethod
    def _some_weight_is_positive(cls, weights: dict[str, float]) -> dict[str, float]:
        if any(weight < 0 for weight in weights.values()) or sum(weights.values()) <= 0:
            raise ValueError(f"weights {weights} must be >= 0 with a positive sum; e.g. {{accuracy: 2, clarity: 1}}")
        return weights

    @model_validator(mode="after")
    def _decides_by_an_asked_signal(self):
        if self.decide_by not in self.signals:
            raise ValueError(f"decide_by {self.decide_by!r} is not among signals {self.signals}; add it to `signals`")
        if len(set(self.signals)) != len(self.signals):
            raise ValueError(f"signals {self.signals} repeat one; list each once")
        templates = {**DEFAULT_TEMPLATES, **self.templates}
        for signal in self.signals:
            load_prompt(templates[signal])  # a PromptError is a ValueError: pydantic reports it
        if "rubric" in self.signals:
            check_rubric_template(templates["rubric"])
        self.templates = templates
        return self


@dataclass(frozen=True)
class Judgement:
    """A rubric reply: its rationale and the five scores."""

    rationale: str
    scores: dict[str, int]

    def aggregate(self, weights: dict[str, float]) -> float:
        """Weighted mean of the dimension scores."""
        total = sum(weights.values())
        return sum(self.scores[name] * weight for name, weight in weights.items()) / total


def parse_judgement(value: Any) -> tuple[Judgement | None, str | None]:
    """A rubric judgement from a reply already parsed against the template's schema; a reply
    missing a dimension is a parse error, not a zero."""
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


class Critique(ModelStage):
    name = "critique"
    input_columns = (contracts.INSTRUCTION, contracts.ANSWER)
    output_fields = (
        pa.field(contracts.CRITIQUE, pa.string()),
        pa.field(contracts.CRITIQUE_SCORE, pa.float64()),
        pa.field(contracts.META, pa.string()),
    )
    params = CritiqueParams
    resources = Resources(num_cpus=0.25, batch_size=64)
    prompts = tuple(DEFAULT_TEMPLATES.values())

    def prompt_ids(self) -> tuple[str, ...]:
        return tuple(sorted({self.params.templates[signal] for signal in self.params.signals}))

    # --- before the judge ----------------------------------------------------------------------
    def prepare(self, dataset: Any) -> Any:
        """The checks, then one judge request per pair and signal, each call's reply kept in columns of its own."""
        rows = dataset.map_batches(self.check_pairs, batch_format="pyarrow", num_cpus=RENDER_CPUS)
        for signal in self.params.signals:
            rendered = rows.map_batches(self.render_requests, fn_kwargs={"signal": signal}, batch_format="pyarrow", num_cpus=RENDER_CPUS)
            sampling = self.params.sampling.model_dump(exclude_unset=True) if signal == "rubric" else ONE_TOKEN
            generated = apply_llm(rendered, model=self.context.models[self.params.model], model_name=self.params.model, sampling=sampling)
            rows = generated.map_batches(
                keep_reply, fn_kwargs={"signal": signal, "model_name": self.params.model}, batch_format="pyarrow", num_cpus=RENDER_CPUS
            )
        return rows

    def check_pairs(self, batch: pa.Table) -> pa.Table:
        """The first failed check of each pair (reason and detail), or null."""
        checks = self.params.checks
        instructions = [text or "" for text in batch[contracts.INSTRUCTION].to_pylist()]
        answers = [text or "" for text in batch[contracts.ANSWER].to_pylist()]
        found: list[tuple[RejectReason, str] | None] = [None] * batch.num_rows
        for index, (instruction, answer) in enumerate(zip(instructions, answers)):
            if not answer.strip():
                found[index] = (RejectReason.EMPTY, "the pair has no answer to judge")
                continue
            found[index] = (
                (checks.code_language and check_code_language(answer, instruction, default=checks.default_code_language))
                or (checks.python_syntax and check_python_syntax(answer))
                or (checks.arithmetic and check_arithmetic(answer))
                or (checks.asked_construct and check_asked_construct(answer, instruction))
                or (checks.absent_code and check_describes_absent_code(answer))
                or (checks.attribute_labels and check_attribute_labels(answer))
                or (checks.constraints and check_follows_constraints(answer, instruction))
                or (checks.cut_off and check_cut_off(answer))
                or None
            )
        if checks.refusal:
            for index, refusals in enumerate(count_refusals(pa.array(answers, pa.string()))):
                if found[index] is None and refusals:
                    found[index] = (RejectReason.REFUSAL, f"refusal phrase near the start: {answers[index][:120]!r}")
        if checks.answer_language and contracts.LANG in batch.column_names:
            found = self._check_languages(batch[contracts.LANG].to_pylist(), answers, found)
        return with_columns(
            batch,
            {
                _CHECK_REASON: pa.array([problem[0].value if problem else None for problem in found], pa.string()),
                _CHECK_DETAIL: pa.array([problem[1] if problem else None for problem in found], pa.string()),
            },
        )

    def _check_languages(self, langs: list[str | None], answers: list[str], found: list) -> list:
        """An answer whose prose lid.176 confidently reads as another language than the row's."""
        prose = [prose_of(answer) for answer in answers]
        codes, probabilities = identify_languages(_lid_model(), prose)
        for index, (lang, code, probability) in enumerate(zip(langs, codes, probabilities)):
            if found[index] is None and lang and len(prose[index].strip()) >= 20 and probability >= self.params.checks.min_lang_prob and code != lang:
                found[index] = (RejectReason.LANG, f"the answer reads as {code} ({probability:.2f}); its instruction is {lang}")
        return found

    def render_requests(self, batch: pa.Table, signal: str = "verdict") -> pa.Table:
        """One request per pair for `signal`; a pair the checks rejected (unless `judge_rejected`), or
        a pair without a passage for `grounding`, gets none (null messages: the LLM layer skips it)."""
        template = load_prompt(self.params.templates[signal])
        passages = batch[contracts.PASSAGE].to_pylist() if contracts.PASSAGE in batch.column_names else [None] * batch.num_rows
        failed = batch[_CHECK_REASON].to_pylist() if _CHECK_REASON in batch.column_names else [None] * batch.num_rows
        requests = []
        for instruction, answer, passage, check in zip(batch[contracts.INSTRUCTION].to_pylist(), batch[contracts.ANSWER].to_pylist(), passages, failed):
            skip = (check is not None and not self.params.judge_rejected) or (signal == "grounding" and not passage)
            variables = {"instruction": instruction or "", "answer": answer or "", "passage": passage or ""}
            # Greedy decoding ignores the seed; a sampled rubric (temperature > 0) stays reproducible.
            requests.append(None if skip else Request(template, variables, seed=self.params.seed, notes={"signal": signal}))
        return attach_requests(batch, requests)

    # --- after the judge -----------------------------------------------------------------------
    def transform(self, batch: pa.Table) -> pa.Table:
        critiques, scores, metas, reasons, details = [], [], [], [], []
        for row in batch.to_pylist():
            verdict = self.decide(row)
            critiques.append(json.dumps(verdict.critique, ensure_ascii=False))
            scores.append(verdict.score)
            metas.append(generation_meta_of(row, verdict.score) if verdict.score is not None else row.get(contracts.META))
            reasons.append(verdict.reason.value if verdict.reason else None)
            details.append(verdict.detail)
        internal = [name for name in batch.column_names if name.startswith("__critique_") or name == PROMPT_INFO or name == contracts.META]
        return with_columns(
            batch.drop_columns(internal),
            {
                contracts.CRITIQUE: pa.array(critiques, pa.string()),
                contracts.CRITIQUE_SCORE: pa.array(scores, pa.float64()),
                contracts.META: pa.array(metas, pa.string()),
                contracts.REJECT_REASON: pa.array(reasons, pa.string()),
                contracts.REJECT_DETAIL: pa.array(details, pa.string()),
            },
        )

    def decide(self, row: dict[str, Any]) -> Decision:
        """Read every signal's reply, then the stage's verdict on the pair (see the module doc)."""
        params = self.params
        readings: dict[str, Any] = {}
        failure: tuple[RejectReason, str] | None = None
        for signal in params.signals:
            text, logprobs, error, error_reason = (row.get(name) for name in _reply_columns(signal))
            if error:
                # apply_llm's reason for the failed request: prompt_too_long, else llm_error.
                failure = failure or (RejectReason(error_reason or RejectReason.LLM_ERROR), f"{signal}: {str(error)[:1000]}")
                continue
            if text is None and logprobs is None:  # not asked: a check failed, or no passage to ground on
                continue
            reading, problem = read_signal(signal, text, logprobs, params)
            if problem is not None:
                failure = failure or (
                    RejectReason.PARSE_ERROR,
                    json.dumps({"signal": signal, "error": problem, "raw": (text or "")[:1000]}, ensure_ascii=False),
                )
                continue
            readings[signal] = reading
        critique: dict[str, Any] = {
            "signals": readings,
            "model": params.model,
            "templates": {signal: params.templates[signal] for signal in params.signals},
        }
        check_reason = row.get(_CHECK_REASON)
        if check_reason:
            critique["check"] = {"reason": check_reason, "detail": row.get(_CHECK_DETAIL)}
        score = critique_score(readings, params.decide_by)
        if score is not None:
            critique["score"] = score
        if check_reason:
            return Decision(critique, score, RejectReason(check_reason), row.get(_CHECK_DETAIL))
        if failure is not None:
            return Decision(critique, score, *failure)
        contradiction = readings.get("grounding", {}).get("contradicts")
        if contradiction is not None and contradiction >= params.max_contradiction:
            why = f"P(contradicts its passage) {contradiction:.2f} >= max_contradiction {params.max_contradiction}"
            return Decision(critique, score, RejectReason.CONTRADICTS_SOURCE, json.dumps({"why": why, "grounding": readings["grounding"]}))
        if score is None:
            return Decision(critique, None, RejectReason.PARSE_ERROR, f"no reading of {params.decide_by!r} to decide by")
        shortfall = find_shortfall(score, readings, params)
        if shortfall is not None:
            return Decision(critique, score, RejectReason.CRITIQUE_LOW, json.dumps({"why": shortfall, "signals": readings}))
        return Decision(critique, score, None, None)


@dataclass(frozen=True)
class Decision:
    critique: dict[str, Any]
    score: float | None
    reason: RejectReason | None
    detail: str | None


def read_signal(signal: str, text: str | None, logprobs_json: str | None, params: CritiqueParams) -> tuple[Any, str | None]:
    """One signal's reading from its reply, or why it cannot be read."""
    if signal == "rubric":
        reply = read_reply({contracts.GENERATED_TEXT: text, contracts.JSON_SCHEMA: json.dumps(load_prompt(params.templates["rubric"]).schema)})
        if reply.reason is not None:
            return None, reply.detail
        judgement, problem = parse_judgement(reply.value)
        if problem is not None:
            return None, problem
        weights = {name: weight for name, weight in params.weights.items() if weight}
        return {"rationale": judgement.rationale, "scores": judgement.scores, "aggregate": round(judgement.aggregate(weights), 4)}, None
    positions = json.loads(logprobs_json) if logprobs_json else []
    if not positions:
        return None, "the reply carries no token probabilities (does the engine return logprobs?)"
    first = positions[0]
    if signal == "verdict":
        p_yes = yes_probability(first)
        return (None, f"neither yes nor no among the likeliest first tokens {sorted(first)}") if p_yes is None else (round(p_yes, 4), None)
    if signal == "score":
        grade = expected_score(first, GRADES)
        return (None, f"no grade 1-5 among the likeliest first tokens {sorted(first)}") if grade is None else (round(grade, 4), None)
    options = option_probabilities(first, list(GROUNDING_OPTIONS))
    if options is None:
        return None, f"no option A, B or C among the likeliest first tokens {sorted(first)}"
    return {GROUNDING_OPTIONS[option]: round(probability, 4) for option, probability in options.items()}, None


def critique_score(readings: dict[str, Any], decide_by: str) -> float | None:
    """The deciding signal on [0, 1], discounted by the chance the answer contradicts its passage."""
    reading = readings.get(decide_by)
    if reading is None:
        return None
    if decide_by == "verdict":
        value = reading
    elif decide_by == "score":
        value = (reading - GRADES[0]) / (GRADES[-1] - GRADES[0])
    else:
        value = (reading["aggregate"] - 1) / 9
    contradiction = readings.get("grounding", {}).get("contradicts")
    if contradiction is not None:
        value *= 1 - contradiction
    return round(float(np.clip(value, 0.0, 1.0)), 4)


def find_shortfall(score: float, readings: dict[str, Any], params: CritiqueParams) -> str | None:
    """Why a judged pair falls short (None when it passes): the score, then each rubric dimension floor."""
    if score < params.min_score:
        return f"critique_score {score:.3f} < min_score {params.min_score}"
    rubric = readings.get("rubric")
    for name, floor in params.min_dimension.items():
        if rubric is not None and rubric["scores"][name] < floor:
            return f"{name} {rubric['scores'][name]} < min_dimension.{name} {floor}"
    return None


def keep_reply(batch: pa.Table, *, signal: str, model_name: str) -> pa.Table:
    """After one judge call: its reply into the signal's own columns, its tokens added to the
    stage's running usage (the next call's reply columns overwrite the LLM layer's)."""
    text, logprobs, error, error_reason = _reply_columns(signal)
    asked = pc.is_valid(batch[contracts.LLM_MODEL]).to_numpy(zero_copy_only=False)
    usage = {}
    for name, source in zip(_USAGE, (None, contracts.PROMPT_TOKENS, contracts.GENERATED_TOKENS)):
        before = batch[name].to_numpy(zero_copy_only=False) if name in batch.column_names else np.zeros(batch.num_rows, np.int64)
        added = asked.astype(np.int64) if source is None else np.nan_to_num(batch[source].to_numpy(zero_copy_only=False).astype(float)).astype(np.int64)
        usage[name] = before + added
    requests, prompt_tokens, generated_tokens = usage.values()
    model = pa.array([model_name if count else None for count in requests], pa.string())
    return with_columns(
        batch,
        {
            text: batch[contracts.GENERATED_TEXT],
            logprobs: batch[contracts.LLM_TOP_LOGPROBS],
            error: batch[contracts.LLM_ERROR],
            error_reason: batch[contracts.LLM_ERROR_REASON],
            **{name: pa.array(values, pa.int64()) for name, values in usage.items()},
            # What the runner counts per model: every judge call of the pair so far.
            contracts.LLM_REQUESTS: pa.array(requests, pa.int64()),
            contracts.PROMPT_TOKENS: pa.array(prompt_tokens, pa.int64()),
            contracts.GENERATED_TOKENS: pa.array(generated_tokens, pa.int64()),
            contracts.LLM_MODEL: model,
        },
    )


def generation_meta_of(row: dict[str, Any], score: float) -> str:
    """`meta` with a step for the critique: its model and score (templates are in `critique`)."""
    meta = json.loads(row[contracts.META]) if row.get(contracts.META) else {}
    meta.setdefault("steps", []).append({"stage": "critique", "model": row.get(contracts.LLM_MODEL), "critique_score": score})
    return json.dumps(meta, ensure_ascii=False, sort_keys=True)


def check_rubric_template(template_id: str) -> None:
    """A custom rubric template must ask for the rubric's keys, or every reply would be a parse error."""
    template = load_prompt(template_id)  # a PromptError is a ValueError: pydantic reports it under `templates`
    required = set((template.schema or {}).get("required", []))
    missing = [name for name in (RATIONALE, *DIMENSIONS) if name not in required]
    if missing:
        raise ValueError(
            f"template {template_id!r} ({template.path}) has a schema that does not require {missing}; "
            f"list {RATIONALE!r} and every dimension ({', '.join(DIMENSIONS)}) under `required`"
        )
