"""answer: each instruction is answered by its domain's model (Hunyuan-Large step 3).

A routing table maps domains (math, code, science, general, ...) to the job's models, with a
`default`. Objective instructions (math, short factual, multiple choice) get up to `samples`
answers, drawn with different seeds, for the self-consistency vote of the `consistency`
stage; the others get one.
With `min_agreement` (the consistency stage's), an objective instruction's samples are drawn in
rounds: the first round draws the fewest that could settle the vote (2 of 3 at 0.6), and each
later round draws more only for the instructions whose vote the samples still to draw could
change (`synthmix.quality.vote_rounds`). The vote then has the verdict drawing all `samples` would give
it, from fewer samples. Rounds are passes of the runner over the same input (`next_round`);
each plans from the samples committed so far, replayed round by round, so a resumed run draws
exactly what an uninterrupted one would.
Each instruction is first expanded into one work row per sample (`id` = hash(instruction id,
sample index), `parent_id` = the instruction), so a resumed run skips exactly the samples
already committed; `rows_in` in the manifest counts these sample requests.
Writes one row per answered sample, every instruction column carried, plus `answer`,
`sample_index`, `num_samples` (the instruction's budget, `samples` or 1) and `answer_model`.
Rejects: prompt_too_long, llm_error, empty, not_an_answer (a reply that only asks a question
back), incomplete (it stopped at its token limit, or mid-sentence, or with a code block never
closed), per sample.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import ConfigError, RejectReason, derived_id, with_reject_columns
from synthmix.pipeline.instruction_rows import seed_language
from synthmix.pipeline.llm.models import SamplingParams
from synthmix.pipeline.llm.processors import apply_llm
from synthmix.pipeline.llm.prompts import load_prompt
from synthmix.pipeline.prompted_requests import Request, attach_requests, generation_meta, read_reply, stable_seed
from synthmix.pipeline.stage import Resources, Stage, StageParams, with_columns
from synthmix.pipeline.storage import read_parquet
from synthmix.pipeline.store import StageDir
from synthmix.quality.answer_checks import check_cut_off, check_is_answer
from synthmix.quality.answer_extraction import extract_answer
from synthmix.quality.vote_rounds import planned_samples, samples_to_draw


class AnswerParams(StageParams):
    # domain -> model name; `default` answers every domain not listed.
    routes: dict[str, str] = Field(default_factory=lambda: {"default": "embedded"})
    # domain -> template id; objective tasks outside `math` use `objective`.
    templates: dict[str, str] = Field(
        default_factory=lambda: {"math": "answer/math", "code": "answer/code", "objective": "answer/objective", "default": "answer/general"}
    )
    samples: int = Field(default=3, ge=1, le=16, description="answers drawn per objective instruction, for the vote")
    # The consistency stage's min_agreement: objective samples are then drawn in rounds until the
    # vote is settled (the module docstring). None draws all `samples` at once.
    min_agreement: float | None = Field(default=None, gt=0, le=1)
    seed: int = 0
    sampling: SamplingParams = SamplingParams(temperature=0.7, max_tokens=384)
    use_passage: bool = Field(
        default=False,
        description="show the model the seed passage an instruction was made from, as reference; the stored instruction is unchanged",
    )
    # domain -> sampling keys that override `sampling` for that domain's rows: small models
    # need 400-512 new tokens to finish a worked math answer, and other answers do not.
    domain_sampling: dict[str, SamplingParams] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _defaults_present(self):
        for table, name in ((self.routes, "routes"), (self.templates, "templates")):
            if "default" not in table:
                raise ValueError(f"answer.{name} needs a `default` entry for domains it does not list")
        return self


@dataclass
class DrawnSamples:
    """One instruction's samples drawn so far: its budget, the valid ones' canonical answers by
    sample index, and the indexes of those that failed (rejects)."""

    budget: int
    answers: dict[int, str | None] = field(default_factory=dict)
    failed: set[int] = field(default_factory=set)


def _voted_samples(path, *, with_answers: bool):
    """(instruction id, sample index, budget, answer or None) of a part file's rows that take part in a vote."""
    table = read_parquet(path, columns=[contracts.PARENT_ID, contracts.SAMPLE_INDEX, contracts.NUM_SAMPLES, *([contracts.ANSWER] if with_answers else [])])
    table = table.filter(pc.greater(table[contracts.NUM_SAMPLES], 1))
    answers = table[contracts.ANSWER].to_pylist() if with_answers else [None] * table.num_rows
    return zip(
        table[contracts.PARENT_ID].to_pylist(), table[contracts.SAMPLE_INDEX].to_pylist(), table[contracts.NUM_SAMPLES].to_pylist(), answers, strict=True
    )


class Answer(Stage):
    name = "answer"
    input_columns = (contracts.ID, contracts.INSTRUCTION, contracts.DOMAIN, contracts.OBJECTIVE)
    output_fields = (
        pa.field(contracts.ID, pa.string()),
        pa.field(contracts.PARENT_ID, pa.string()),
        pa.field(contracts.ANSWER, pa.string()),
        pa.field(contracts.SAMPLE_INDEX, pa.int32()),
        pa.field(contracts.NUM_SAMPLES, pa.int32()),
        pa.field(contracts.ANSWER_MODEL, pa.string()),
        pa.field(contracts.META, pa.string()),
    )
    params = AnswerParams
    resources = Resources(num_cpus=0.25, batch_size=64)

    def __init__(self, params: AnswerParams, context) -> None:
        super().__init__(params, context)
        # Instruction id -> samples it should have drawn by the end of this round, where that is
        # not the first round's count: set on the driver from the committed samples (next_round),
        # and sent to the workers with the stage.
        self.sample_targets: dict[str, int] = {}

    def prompt_ids(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.params.templates.values())))

    def models_used(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.params.routes.values())))

    def model_for(self, domain: str) -> str:
        return self.params.routes.get(domain, self.params.routes["default"])

    def check_downstream(self, stages: Sequence[Stage]) -> None:
        """Rounds stop at the vote the consistency stage takes: the two must use one min_agreement."""
        agreement = self.params.min_agreement
        if agreement is None:
            return
        votes = [stage for stage in stages if type(stage).name == "consistency"]
        if not votes:
            raise ConfigError(
                f"stage '{self.context.stage_name}': min_agreement {agreement:g} draws samples until the consistency vote is "
                "settled, but no consistency stage reads its rows; add one after gather_samples, or remove min_agreement to draw every sample"
            )
        for vote in votes:
            if vote.params.min_agreement != agreement:
                raise ConfigError(
                    f"stage '{self.context.stage_name}': min_agreement {agreement:g} differs from the {vote.params.min_agreement:g} of stage "
                    f"'{vote.context.stage_name}': sampling would stop at a vote that stage does not take; set both to the same value"
                )

    def objective_first_round(self) -> int:
        """Samples an objective instruction draws first: all of them, or the fewest that could settle the vote."""
        if self.params.min_agreement is None:
            return self.params.samples
        return samples_to_draw([], drawn=0, budget=self.params.samples, min_agreement=self.params.min_agreement)

    def setup_on_driver(self) -> None:
        # A resumed attempt goes on with the round its committed samples call for.
        self.next_round()

    def next_round(self) -> str | None:
        """Plan the next round from the committed samples: which instructions draw how many more."""
        if self.params.min_agreement is None:
            return None
        targets, missing = {}, 0
        for instruction_id, drawn in self.committed_samples().items():
            target = planned_samples(drawn.answers, drawn.failed, budget=drawn.budget, min_agreement=self.params.min_agreement)
            pending = sum(1 for index in range(target) if index not in drawn.answers and index not in drawn.failed)
            if pending:
                targets[instruction_id] = target
                missing += pending
        self.sample_targets = targets
        if not missing:
            return None
        return f"{len(targets)} instructions' votes are not settled yet: {missing} more samples"

    def committed_samples(self) -> dict[str, DrawnSamples]:
        """The samples committed so far of every instruction with a vote to take, by instruction id."""
        stage_dir = StageDir(self.context.run_dir, self.context.stage_name)
        drawn: dict[str, DrawnSamples] = {}
        for path in stage_dir.part_files():
            for parent, index, budget, answer in _voted_samples(path, with_answers=True):
                drawn.setdefault(parent, DrawnSamples(budget)).answers[index] = extract_answer(answer)
        for path in stage_dir.reject_files():
            for parent, index, budget, _ in _voted_samples(path, with_answers=False):
                drawn.setdefault(parent, DrawnSamples(budget)).failed.add(index)
        return drawn

    def expand_input(self, dataset):
        return dataset.map_batches(self.expand_samples, batch_format="pyarrow", num_cpus=0.25)

    def expand_samples(self, batch: pa.Table) -> pa.Table:
        """One row per sample to draw by the end of this round: objective instructions get the
        first round's count (all `samples` without min_agreement) or their planned target, the
        others one. Samples already committed are among them; the runner skips those."""
        take, sample_ids, indexes, counts = [], [], [], []
        first_round = {True: self.objective_first_round(), False: 1}
        for row_index, (row_id, objective) in enumerate(zip(batch[contracts.ID].to_pylist(), batch[contracts.OBJECTIVE].to_pylist())):
            count = self.params.samples if objective else 1
            for sample_index in range(self.sample_targets.get(row_id) or first_round[bool(objective)]):
                take.append(row_index)
                sample_ids.append(derived_id(row_id, "answer", sample_index))
                indexes.append(sample_index)
                counts.append(count)
        rows = batch.take(pa.array(take, pa.int64()))
        return with_columns(
            rows,
            {
                contracts.ID: pa.array(sample_ids, pa.string()),
                contracts.PARENT_ID: rows[contracts.ID],
                contracts.SAMPLE_INDEX: pa.array(indexes, pa.int32()),
                contracts.NUM_SAMPLES: pa.array(counts, pa.int32()),
            },
        )

    def prepare(self, dataset):
        """One generation branch per model; a single-model job has one branch and no filtering."""
        rendered = dataset.map_batches(self.render_requests, batch_format="pyarrow", num_cpus=0.25)
        models = self.models_used()
        branches = []
        for model_name in models:
            rows = rendered
            if len(models) > 1:
                domains = {domain for domain, name in self.params.routes.items() if name == model_name and domain != "default"}
                is_default = self.params.routes["default"] == model_name
                listed = set(self.params.routes) - {"default"}
                rows = rendered.filter(
                    lambda row, d=domains, x=is_default, others=listed: row[contracts.DOMAIN] in d or (x and row[contracts.DOMAIN] not in others)
                )
            branches.append(
                apply_llm(rows, model=self.context.models[model_name], model_name=model_name, sampling=self.params.sampling.model_dump(exclude_unset=True))
            )
        return branches[0].union(*branches[1:]) if len(branches) > 1 else branches[0]

    def template_for(self, domain: str, objective: bool) -> str:
        templates = self.params.templates
        if domain in templates:
            return templates[domain]
        return templates["objective"] if objective and "objective" in templates else templates["default"]

    def render_requests(self, batch: pa.Table) -> pa.Table:
        requests = []
        wanted = [contracts.ID, contracts.INSTRUCTION, contracts.DOMAIN, contracts.OBJECTIVE, contracts.LANG, contracts.PASSAGE]
        for row in batch.select([name for name in wanted if name in batch.column_names]).to_pylist():
            template = load_prompt(self.template_for(row[contracts.DOMAIN], bool(row[contracts.OBJECTIVE])))
            passage = (row.get(contracts.PASSAGE) or "") if self.params.use_passage else ""
            variables = {"instruction": row[contracts.INSTRUCTION] or "", "language": seed_language(row), "passage": passage}
            # The id is the sample's: each sample gets its own seed.
            overrides = self.params.domain_sampling.get(row[contracts.DOMAIN])
            sampling = overrides.model_dump(exclude_unset=True) if overrides is not None else {}
            requests.append(Request(template, variables, seed=stable_seed(self.params.seed, row[contracts.ID], self.name), sampling=sampling))
        return attach_requests(batch, requests)

    def transform(self, batch: pa.Table) -> pa.Table:
        schema = with_reject_columns(self.output_schema())
        rows = []
        for row in batch.to_pylist():
            reply = read_reply(row)
            out = {name: row.get(name) for name in schema.names}
            out.update({contracts.ANSWER: reply.value, contracts.ANSWER_MODEL: row[contracts.LLM_MODEL], contracts.META: generation_meta(row)})
            if not (row[contracts.INSTRUCTION] or "").strip():
                rejected = (RejectReason.EMPTY, "the row has no instruction to answer")
            elif reply.reason is not None:
                rejected = (reply.reason, reply.detail)
            else:
                rejected = check_is_answer(reply.value, row[contracts.INSTRUCTION]) or check_cut_off(reply.value, hit_token_limit=hit_token_limit(row))
            if rejected is not None:
                out[contracts.REJECT_REASON], out[contracts.REJECT_DETAIL] = rejected[0].value, rejected[1]
            rows.append(out)
        # With the schema given: inferred, it would take its columns from the first row alone,
        # and a batch whose first row was kept would lose every later row's reject reason.
        return pa.Table.from_pylist(rows, schema=schema)


def hit_token_limit(row: dict) -> bool:
    """Whether the reply used every token it was allowed: it stopped there, not at its end."""
    sampling = json.loads(row[contracts.LLM_SAMPLING]) if row.get(contracts.LLM_SAMPLING) else {}
    generated = row.get(contracts.GENERATED_TOKENS)
    return generated is not None and sampling.get("max_tokens") is not None and generated >= sampling["max_tokens"]
