"""answer: each instruction is answered by its domain's model (Hunyuan-Large step 3).

A routing table maps domains (math, code, science, general, ...) to the job's models, with a
`default`. Objective instructions (math, short factual, multiple choice) get `samples`
answers, drawn with different seeds, for the self-consistency vote of the `consistency`
stage; the others get one.
Writes one row per sample: `id` = hash(instruction id, sample index), `parent_id` = the
instruction's id, every instruction column carried, plus `answer`, `sample_index`,
`num_samples` and `answer_model`.
Rejects: llm_error, empty (per sample).
"""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field, model_validator

from pipeline import columns
from pipeline.llm import apply_llm
from pipeline.models import SamplingParams
from pipeline.prompted_requests import Request, attach_requests, generation_meta, read_reply, stable_seed
from pipeline.prompts import load_prompt
from pipeline.stage import Lineage, Resources, Stage, StageParams
from stages.seeds import content_id
from stages.synthesize import seed_language

SAMPLE_INDEX = "sample_index"
NUM_SAMPLES = "num_samples"
ANSWER_MODEL = "answer_model"


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
        pa.field(SAMPLE_INDEX, pa.int32()),
        pa.field(NUM_SAMPLES, pa.int32()),
        pa.field(ANSWER_MODEL, pa.string()),
        pa.field(columns.META, pa.string()),
    )
    lineage = Lineage.CHILDREN
    params = AnswerParams
    resources = Resources(num_cpus=0.25, batch_size=64)

    def prompt_ids(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.params.templates.values())))

    def models_used(self) -> tuple[str, ...]:
        return tuple(sorted(set(self.params.routes.values())))

    def model_for(self, domain: str) -> str:
        return self.params.routes.get(domain, self.params.routes["default"])

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
                rows = rendered.filter(lambda row, d=domains, x=is_default, l=listed: row[columns.DOMAIN] in d or (x and row[columns.DOMAIN] not in l))
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
        for row in batch.select([columns.ID, columns.INSTRUCTION, columns.DOMAIN, columns.OBJECTIVE, columns.LANG]).to_pylist():
            objective = bool(row[columns.OBJECTIVE])
            template = load_prompt(self.template_for(row[columns.DOMAIN], objective))
            samples = self.params.samples if objective else 1
            variables = {"instruction": row[columns.INSTRUCTION], "language": seed_language(row)}
            requests.append(
                Request(template, variables, seed=stable_seed(self.params.seed, row[columns.ID], self.name), sampling={"n": samples}, notes={"samples": samples})
            )
        return attach_requests(batch, requests)

    def transform(self, batch: pa.Table) -> pa.Table:
        rows = []
        for row in batch.to_pylist():
            reply = read_reply(row)
            sample_index = row["llm_sample_index"] or 0
            out = {name: row.get(name) for name in self.output_schema().names}
            out.update(
                {
                    columns.ID: content_id(f"{row[columns.ID]}\x1fanswer\x1f{sample_index}"),
                    columns.PARENT_ID: row[columns.ID],
                    columns.ANSWER: reply.value,
                    SAMPLE_INDEX: sample_index,
                    NUM_SAMPLES: self.params.samples if row[columns.OBJECTIVE] else 1,
                    ANSWER_MODEL: row[columns.LLM_MODEL],
                    columns.META: generation_meta(row),
                }
            )
            if reply.reason is not None:
                out[columns.REJECT_REASON], out[columns.REJECT_DETAIL] = reply.reason.value, reply.detail
            rows.append(out)
        return pa.Table.from_pylist(rows)
