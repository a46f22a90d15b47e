"""answer: each instruction is answered by its domain's model (Hunyuan-Large step 3).

A routing table maps domains (math, code, science, general, ...) to the job's models, with a
`default`. Objective instructions (math, short factual, multiple choice) get `samples`
answers, drawn with different seeds, for the self-consistency vote of the `consistency`
stage; the others get one.
Each instruction is first expanded into one work row per sample (`id` = hash(instruction id,
sample index), `parent_id` = the instruction), so a resumed run skips exactly the samples
already committed; `rows_in` in the manifest counts these sample requests.
Writes one row per answered sample, every instruction column carried, plus `answer`,
`sample_index`, `num_samples` and `answer_model`.
Rejects: llm_error, empty, not_an_answer (a reply that only asks a question back), incomplete (it
stopped at its token limit, or mid-sentence, or with a code block never closed), per sample.
"""

from __future__ import annotations

import json

import pyarrow as pa
from pydantic import Field, model_validator

from pipeline import columns
from pipeline.contracts import derived_id
from pipeline.instruction_rows import seed_language
from pipeline.llm.models import SamplingParams
from pipeline.llm.processors import apply_llm
from pipeline.llm.prompted_requests import Request, attach_requests, generation_meta, read_reply, stable_seed
from pipeline.llm.prompts import load_prompt
from pipeline.stage import Resources, Stage, StageParams, with_columns
from quality.answer_checks import check_cut_off, check_is_answer


class AnswerParams(StageParams):
    # domain -> model name; `default` answers every domain not listed.
    routes: dict[str, str] = Field(default_factory=lambda: {"default": "embedded"})
    # domain -> template id; objective tasks outside `math` use `objective`.
    templates: dict[str, str] = Field(
        default_factory=lambda: {"math": "answer/math", "code": "answer/code", "objective": "answer/objective", "default": "answer/general"}
    )
    samples: int = Field(default=3, ge=1, le=16, description="answers drawn per objective instruction, for the vote")
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


class Answer(Stage):
    name = "answer"
    input_columns = (columns.ID, columns.INSTRUCTION, columns.DOMAIN, columns.OBJECTIVE)
    output_fields = (
        pa.field(columns.ID, pa.string()),
        pa.field(columns.PARENT_ID, pa.string()),
        pa.field(columns.ANSWER, pa.string()),
        pa.field(columns.SAMPLE_INDEX, pa.int32()),
        pa.field(columns.NUM_SAMPLES, pa.int32()),
        pa.field(columns.ANSWER_MODEL, pa.string()),
        pa.field(columns.META, pa.string()),
    )
    params = AnswerParams
    resources = Resources(num_cpus=0.25, batch_size=64)

    def prompt_ids(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.params.templates.values())))

    def models_used(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.params.routes.values())))

    def model_for(self, domain: str) -> str:
        return self.params.routes.get(domain, self.params.routes["default"])

    def expand_input(self, dataset):
        return dataset.map_batches(self.expand_samples, batch_format="pyarrow", num_cpus=0.25)

    def expand_samples(self, batch: pa.Table) -> pa.Table:
        """One row per sample to draw: objective instructions get `samples`, the others one."""
        take, sample_ids, indexes, counts = [], [], [], []
        for row_index, (row_id, objective) in enumerate(zip(batch[columns.ID].to_pylist(), batch[columns.OBJECTIVE].to_pylist())):
            count = self.params.samples if objective else 1
            for sample_index in range(count):
                take.append(row_index)
                sample_ids.append(derived_id(row_id, "answer", sample_index))
                indexes.append(sample_index)
                counts.append(count)
        rows = batch.take(pa.array(take, pa.int64()))
        return with_columns(
            rows,
            {
                columns.ID: pa.array(sample_ids, pa.string()),
                columns.PARENT_ID: rows[columns.ID],
                columns.SAMPLE_INDEX: pa.array(indexes, pa.int32()),
                columns.NUM_SAMPLES: pa.array(counts, pa.int32()),
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
                    lambda row, d=domains, x=is_default, others=listed: row[columns.DOMAIN] in d or (x and row[columns.DOMAIN] not in others)
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
        wanted = [columns.ID, columns.INSTRUCTION, columns.DOMAIN, columns.OBJECTIVE, columns.LANG, columns.PASSAGE]
        for row in batch.select([name for name in wanted if name in batch.column_names]).to_pylist():
            template = load_prompt(self.template_for(row[columns.DOMAIN], bool(row[columns.OBJECTIVE])))
            passage = (row.get(columns.PASSAGE) or "") if self.params.use_passage else ""
            variables = {"instruction": row[columns.INSTRUCTION], "language": seed_language(row), "passage": passage}
            # The id is the sample's: each sample gets its own seed.
            overrides = self.params.domain_sampling.get(row[columns.DOMAIN])
            sampling = overrides.model_dump(exclude_unset=True) if overrides is not None else {}
            requests.append(Request(template, variables, seed=stable_seed(self.params.seed, row[columns.ID], self.name), sampling=sampling))
        return attach_requests(batch, requests)

    def transform(self, batch: pa.Table) -> pa.Table:
        rows = []
        for row in batch.to_pylist():
            reply = read_reply(row)
            out = {name: row.get(name) for name in self.output_schema().names}
            out.update({columns.ANSWER: reply.value, columns.ANSWER_MODEL: row[columns.LLM_MODEL], columns.META: generation_meta(row)})
            rejected = (
                (reply.reason, reply.detail)
                if reply.reason is not None
                else check_is_answer(reply.value, row[columns.INSTRUCTION]) or check_cut_off(reply.value, hit_token_limit=hit_token_limit(row))
            )
            if rejected is not None:
                out[columns.REJECT_REASON], out[columns.REJECT_DETAIL] = rejected[0].value, rejected[1]
            rows.append(out)
        return pa.Table.from_pylist(rows)


def hit_token_limit(row: dict) -> bool:
    """Whether the reply used every token it was allowed: it stopped there, not at its end."""
    sampling = json.loads(row[columns.LLM_SAMPLING]) if row.get(columns.LLM_SAMPLING) else {}
    generated = row.get(columns.GENERATED_TOKENS)
    return generated is not None and sampling.get("max_tokens") is not None and generated >= sampling["max_tokens"]
