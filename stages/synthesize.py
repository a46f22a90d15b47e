"""synthesize: seed chunks become instructions (Hunyuan-Large step 1).

Each seed chunk is sent to a prompt family chosen by its kind (web, qa, code, book), with a
task type, style and complexity picked per seed (deterministically, recorded in `meta`), in
the seed's language, asking for several instructions in one structured-JSON call.
Writes one row per instruction: `parent_id` = the seed chunk, `seed_id` kept, and `passage`: the
seed text the model was shown, which later stages judge (and may answer) against.
Rejects: llm_error, parse_error (per seed); empty, too_short, not_a_request, lang (not in the
seed's language), not_self_contained (points at a document it does not include), template_leak
(made of the prompt's own words), copies_seed (per instruction). A leading task-type label the
model wrote into the instruction ("factual: ...") is removed, and a type the instruction cannot
be ("math" without a number, "choice" without options) becomes "open".
"""

from __future__ import annotations

import json

import pyarrow as pa
from pydantic import Field

from pipeline import columns
from pipeline.contracts import INSTRUCTION_FIELDS, RejectReason, derived_id, reject_row
from pipeline.instruction_rows import check_repeated, seed_language
from pipeline.llm.model_stage import ModelStage
from pipeline.llm.models import SamplingParams
from pipeline.llm.prompted_requests import Reply, Request, attach_requests, generation_meta, read_reply, stable_choice, stable_seed
from pipeline.llm.prompts import load_prompt
from pipeline.stage import Lineage, Resources, StageParams, with_reject_columns
from quality.instruction_checks import (
    check_copies_seed,
    check_echoes_prompt,
    check_is_request,
    check_language,
    check_self_contained,
    plausible_task_type,
    strip_type_label,
)

OBJECTIVE_TYPES = frozenset({"factual", "math", "choice"})
# An instruction's type can move it to the domain whose model should answer it.
DOMAIN_OF_TYPE = {"math": "math", "code": "code"}


class SynthesizeParams(StageParams):
    model: str = "embedded"
    # Prompt families per seed kind; a seed gets one template of its family per call.
    families: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "web": ["synthesize/web"],
            "qa": ["synthesize/qa"],
            "code": ["synthesize/code"],
            "book": ["synthesize/book"],
        }
    )
    instructions_per_call: int = Field(default=3, ge=1, le=5)
    task_types: list[str] = Field(default_factory=lambda: ["question", "explanation", "how-to", "comparison", "problem to solve"])
    styles: list[str] = Field(default_factory=lambda: ["concise", "detailed", "for a beginner", "for an expert"])
    complexities: list[str] = Field(default_factory=lambda: ["simple", "moderate", "challenging"])
    # Seed text beyond this is cut from the prompt: small models have small contexts.
    max_seed_chars: int = Field(default=1500, ge=100)
    max_seed_overlap: float = Field(default=0.8, gt=0, le=1, description="share of 6-word sequences copied from the seed that rejects an instruction")
    seed: int = 0
    sampling: SamplingParams = SamplingParams(temperature=0.8, max_tokens=400)


class Synthesize(ModelStage):
    name = "synthesize"
    input_columns = (columns.ID, columns.SEED_ID, columns.TEXT, columns.KIND, columns.DOMAIN)
    output_fields = INSTRUCTION_FIELDS
    carries_input = False
    lineage = Lineage.CHILDREN
    params = SynthesizeParams
    resources = Resources(num_cpus=0.25, batch_size=64)

    def prompt_ids(self) -> tuple[str, ...]:
        return tuple(sorted({template for family in self.params.families.values() for template in family}))

    def render_requests(self, batch: pa.Table) -> pa.Table:
        params = self.params
        requests = []
        for row in batch.select([columns.ID, columns.TEXT, columns.KIND, columns.LANG]).to_pylist():
            family = params.families.get(row[columns.KIND]) or params.families["web"]
            template = load_prompt(stable_choice(family, params.seed, row[columns.ID], "template"))
            variables = {
                "text": (row[columns.TEXT] or "")[: params.max_seed_chars],
                "count": params.instructions_per_call,
                "task_type": stable_choice(params.task_types, params.seed, row[columns.ID], "task"),
                "style": stable_choice(params.styles, params.seed, row[columns.ID], "style"),
                "complexity": stable_choice(params.complexities, params.seed, row[columns.ID], "complexity"),
                "language": seed_language(row),
            }
            requests.append(Request(template, variables, seed=stable_seed(params.seed, row[columns.ID], self.name)))
        return attach_requests(batch, requests)

    def transform(self, batch: pa.Table) -> pa.Table:
        rows = []
        for seed in batch.to_pylist():
            reply = read_reply(seed)
            base = {
                columns.SEED_ID: seed[columns.SEED_ID],
                columns.PARENT_ID: seed[columns.ID],
                columns.SOURCE: seed.get(columns.SOURCE),
                columns.SOURCE_ID: seed.get(columns.SOURCE_ID),
                columns.ORIGIN: seed.get(columns.ORIGIN),
                columns.LANG: seed_language(seed),
                columns.EVOLUTION_OP: "",
                columns.EVOLUTION_DEPTH: 0,
                # What the model was shown: the critique judges answers against it.
                columns.PASSAGE: (seed[columns.TEXT] or "")[: self.params.max_seed_chars] or None,
            }
            if not (seed[columns.TEXT] or "").strip():
                reply = Reply(reason=RejectReason.EMPTY, detail="the seed has no text to write instructions from")
            if reply.reason is not None:
                rows.append(
                    reject_row(
                        base, seed[columns.ID], reply.reason, reply.detail, **{columns.DOMAIN: seed[columns.DOMAIN], columns.META: generation_meta(seed)}
                    )
                )
                continue
            seen: set[str] = set()
            prompt_text = "\n".join(message["content"] for message in json.loads(seed[columns.MESSAGES]))
            for index, item in enumerate(reply.value["instructions"]):
                instruction = strip_type_label(item["instruction"].strip())
                task_type = plausible_task_type(instruction, item["type"])
                row = {
                    **base,
                    columns.ID: derived_id(seed[columns.ID], instruction),
                    columns.DOMAIN: DOMAIN_OF_TYPE.get(task_type, seed[columns.DOMAIN]),
                    columns.INSTRUCTION: instruction,
                    columns.TASK_TYPE: task_type,
                    columns.OBJECTIVE: task_type in OBJECTIVE_TYPES,
                    columns.META: generation_meta(seed, item_index=index),
                }
                problem = (
                    check_repeated(instruction, seen)
                    or check_echoes_prompt(instruction, prompt_text, quoted_text=seed[columns.TEXT])
                    or check_is_request(instruction)
                    or check_language(instruction, base[columns.LANG])
                    or check_self_contained(instruction)
                    or check_copies_seed(instruction, seed[columns.TEXT], max_overlap=self.params.max_seed_overlap)
                )
                if problem is not None:
                    row[columns.REJECT_REASON], row[columns.REJECT_DETAIL] = RejectReason(problem[0]).value, problem[1]
                rows.append(row)
        return pa.Table.from_pylist(rows, schema=with_reject_columns(pa.schema(INSTRUCTION_FIELDS)))
