"""synthesize: seed chunks become instructions (Hunyuan-Large step 1).

Each seed chunk is sent to a prompt family chosen by its kind (web, qa, code, book), with a
style and complexity picked per seed (deterministically, recorded in `meta`), in the seed's
language, asking for several instructions in one structured-JSON call, one of each task type
the seed is given. The job's `task_mix` says what share of each task type it wants and
`task_fit` which seeds a type fits (`write_code` fits code seeds); before the plan starts, the
driver reads every seed's kind and domain and deals the types out so the requests meet the mix
as nearly as the seeds allow (quality/task_mix.py). Each instruction's `task_type` is then read
from its own words (quality/task_types.py), whatever was asked; `objective` and a move to the
math or code domain follow from it. `finalize` records the asked, planned and achieved mix.
Writes one row per instruction: `parent_id` = the seed chunk, `seed_id` kept, and `passage`: the
seed text the model was shown, which later stages judge (and may answer) against.
Rejects: prompt_too_long, llm_error, parse_error, empty (per seed); empty, too_short, not_a_request, incomplete, lang
(not in the seed's language, or a term swapped into another language), not_self_contained
(points at a document it does not include), contains_answer, template_leak (made of the
prompt's own words), copies_seed, exact_duplicate (per instruction). A leading label the model
wrote into the instruction ("factual: ...") is removed.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

import pyarrow as pa
from pydantic import Field, field_validator

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import INSTRUCTION_FIELDS, Lineage, RejectReason, derived_id, reject_row, with_reject_columns
from synthmix.pipeline.instruction_rows import check_repeated, opening_pattern, seed_language
from synthmix.pipeline.llm.models import SamplingParams
from synthmix.pipeline.llm.prompts import load_prompt
from synthmix.pipeline.model_stage import ModelStage
from synthmix.pipeline.prompted_requests import PROMPT_INFO, Reply, Request, attach_requests, generation_meta, read_reply, stable_choice, stable_seed
from synthmix.pipeline.stage import Resources, StageParams, with_columns
from synthmix.pipeline.storage import read_parquet
from synthmix.pipeline.store import StageDir
from synthmix.quality.instruction_checks import (
    check_answers_itself,
    check_copies_seed,
    check_echoes_prompt,
    check_has_quantities,
    check_is_request,
    check_language,
    check_self_contained,
    strip_type_label,
)
from synthmix.quality.task_mix import GroupLayout, fitting_types, layout_group, plan_quotas, seed_hash, shares_of
from synthmix.quality.task_types import TASK_TYPES, classify_task_type

OPENINGS_PROMPT = "synthesize/openings"
# Task types with one checkable answer: sampled several times and voted on.
OBJECTIVE_TYPES = frozenset({"factual", "calculate", "choice"})
# An instruction's type can move it to the domain whose model should answer it.
DOMAIN_OF_TYPE = {"calculate": "math", "write_code": "code", "debug": "code"}


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
    # The share of each task type (quality/task_types.py) the job wants among the requests.
    task_mix: dict[str, float] = Field(
        default_factory=lambda: {
            "explain": 0.2,
            "how_to": 0.15,
            "write_code": 0.15,
            "debug": 0.05,
            "compare": 0.1,
            "calculate": 0.1,
            "writing": 0.1,
            "analyze": 0.1,
            "factual": 0.05,
        }
    )
    # The seed kinds or domains a task type fits; a type not listed fits every seed.
    task_fit: dict[str, list[str]] = Field(
        default_factory=lambda: {"write_code": ["code"], "debug": ["code"], "calculate": ["math", "science", "code", "finance"]}
    )
    styles: list[str] = Field(default_factory=lambda: ["concise", "detailed", "for a beginner", "for an expert"])
    complexities: list[str] = Field(default_factory=lambda: ["simple", "moderate", "challenging"])
    # Seed text beyond this is cut from the prompt: small models have small contexts.
    max_seed_chars: int = Field(default=1500, ge=100)
    max_seed_overlap: float = Field(default=0.8, gt=0, le=1, description="share of 6-word sequences copied from the seed that rejects an instruction")
    seed: int = 0
    sampling: SamplingParams = SamplingParams(temperature=0.8, max_tokens=400)

    @field_validator("task_mix", "task_fit")
    @classmethod
    def _known_task_types(cls, table: dict) -> dict:
        unknown = sorted(set(table) - set(TASK_TYPES))
        if unknown:
            raise ValueError(f"unknown task type(s) {unknown}; known: {', '.join(TASK_TYPES)}")
        return table

    @field_validator("task_mix")
    @classmethod
    def _some_share_is_positive(cls, mix: dict[str, float]) -> dict[str, float]:
        if any(share < 0 for share in mix.values()) or sum(mix.values()) <= 0:
            raise ValueError(f"task_mix {mix} needs shares >= 0 with a positive sum, e.g. {{explain: 0.5, how_to: 0.5}}")
        return mix


class Synthesize(ModelStage):
    name = "synthesize"
    input_columns = (contracts.ID, contracts.SEED_ID, contracts.TEXT, contracts.KIND, contracts.DOMAIN)
    output_fields = INSTRUCTION_FIELDS
    carries_input = False
    lineage = Lineage.CHILDREN
    params = SynthesizeParams
    resources = Resources(num_cpus=0.25, batch_size=64)

    def __init__(self, params: SynthesizeParams, context) -> None:
        super().__init__(params, context)
        # Set on the driver (setup_on_driver) before any request is rendered.
        self.task_plan: dict[tuple[str, ...], GroupLayout] = {}
        self.planned_mix: dict[str, float] = {}

    def prompt_ids(self) -> tuple[str, ...]:
        return tuple(sorted({template for family in self.params.families.values() for template in family} | {OPENINGS_PROMPT}))

    def setup_on_driver(self) -> None:
        """Plan the task types of every seed's requests (travels to the workers with the stage)."""
        files = [f for upstream in self.context.upstream_dirs.values() for f in sorted(upstream.glob("part-*.parquet"))]
        wanted = [contracts.ID, contracts.KIND, contracts.DOMAIN]
        self.plan_task_types(row for f in files for row in read_parquet(f, columns=wanted).to_pylist())

    def plan_task_types(self, seeds: Iterable[dict]) -> None:
        """The plan for these seeds (id, kind, domain): per group of seeds that the same types
        fit, which types each seed gets, and the planned shares over all requests."""
        mix, fit, seed = self.params.task_mix, self.params.task_fit, self.params.seed
        types = [task for task in TASK_TYPES if mix.get(task, 0) > 0]
        hashes: dict[tuple[str, ...], list[int]] = {}
        for row in seeds:
            group = fitting_types(types, fit, kind=row[contracts.KIND], domain=row[contracts.DOMAIN])
            hashes.setdefault(group, []).append(seed_hash(row[contracts.ID], seed))
        quotas = plan_quotas({group: len(found) for group, found in hashes.items()}, mix, per_seed=self.params.instructions_per_call)
        self.task_plan = {group: layout_group(quotas[group], found, task_order=types) for group, found in hashes.items()}
        planned: Counter = Counter()
        for counts in quotas.values():
            planned.update(counts)
        self.planned_mix = shares_of(planned)

    def task_types_for(self, row: dict) -> tuple[str, ...]:
        types = [task for task in TASK_TYPES if self.params.task_mix.get(task, 0) > 0]
        group = fitting_types(types, self.params.task_fit, kind=row[contracts.KIND], domain=row[contracts.DOMAIN])
        if group not in self.task_plan:
            raise LookupError(
                f"stage {self.name}: no task plan for seed {row[contracts.ID]!r} (kind {row[contracts.KIND]!r}, domain {row[contracts.DOMAIN]!r}); "
                "the driver plans every seed of the input before rendering (setup_on_driver, or plan_task_types in a test)"
            )
        return self.task_plan[group].types_for(seed_hash(row[contracts.ID], self.params.seed))

    def opening_picks(self, rows: list[dict], asked: dict[str, tuple[str, ...]]) -> dict[tuple[str, str], int]:
        """Which of its type's openings each seed's request of that type gets (`asked`: each seed
        id's task types): dealt in turn over the batch's seeds (in seed-hash order, from a start
        drawn per batch, language and type), so a type's openings are used equally often. Drawn
        at random per seed, 11 English shard rows of a quickstart run held four write_code rows
        opening "Define a" (36%)."""
        seed = self.params.seed
        ordered = sorted(rows, key=lambda row: seed_hash(row[contracts.ID], seed))
        first = ordered[0][contracts.ID] if ordered else ""
        dealt: Counter = Counter()
        picks = {}
        for row in ordered:
            language = seed_language(row)
            for task in asked[row[contracts.ID]]:
                picks[row[contracts.ID], task] = stable_seed(seed, first, language, task, "opening") + dealt[language, task]
                dealt[language, task] += 1
        return picks

    def render_requests(self, batch: pa.Table) -> pa.Table:
        """One request per seed: its planned task types, each given as the opening its
        instruction must start with (`synthesize/openings`), which the row's JSON schema holds
        the model to."""
        params = self.params
        opening_of = load_prompt(OPENINGS_PROMPT)
        requests = []
        rows = batch.select([contracts.ID, contracts.TEXT, contracts.KIND, contracts.DOMAIN, contracts.LANG]).to_pylist()
        asked_of = {row[contracts.ID]: self.task_types_for(row) for row in rows}
        picks = self.opening_picks(rows, asked_of)
        for row in rows:
            family = params.families.get(row[contracts.KIND]) or params.families["web"]
            template = load_prompt(stable_choice(family, params.seed, row[contracts.ID], "template"))
            language = seed_language(row)
            asked = asked_of[row[contracts.ID]]
            openings = [opening_of.render(task=task, language=language, pick=picks[row[contracts.ID], task])[-1]["content"] for task in asked]
            variables = {
                "text": (row[contracts.TEXT] or "")[: params.max_seed_chars],
                "openings": openings,
                "style": stable_choice(params.styles, params.seed, row[contracts.ID], "style"),
                "complexity": stable_choice(params.complexities, params.seed, row[contracts.ID], "complexity"),
                "language": language,
            }
            notes = {"task_types": list(asked)}
            requests.append(Request(template, variables, seed=stable_seed(params.seed, row[contracts.ID], self.name), notes=notes))
        rendered = attach_requests(batch, requests)
        schemas = [json.dumps(openings_schema(request.variables["openings"])) for request in requests]
        return with_columns(rendered, {contracts.JSON_SCHEMA: pa.array(schemas, pa.string())})

    def transform(self, batch: pa.Table) -> pa.Table:
        rows = []
        for seed in batch.to_pylist():
            # The openings schema speaks of the JSON text as written (escapes and all); the reply
            # is read against its family template's own schema.
            info = json.loads(seed[PROMPT_INFO])
            reply = read_reply({**seed, contracts.JSON_SCHEMA: json.dumps(load_prompt(info["template_id"]).schema)})
            base = {
                contracts.SEED_ID: seed[contracts.SEED_ID],
                contracts.PARENT_ID: seed[contracts.ID],
                contracts.SOURCE: seed.get(contracts.SOURCE),
                contracts.SOURCE_ID: seed.get(contracts.SOURCE_ID),
                contracts.ORIGIN: seed.get(contracts.ORIGIN),
                contracts.LANG: seed_language(seed),
                contracts.EVOLUTION_OP: "",
                contracts.EVOLUTION_DEPTH: 0,
                # What the model was shown: the critique judges answers against it.
                contracts.PASSAGE: (seed[contracts.TEXT] or "")[: self.params.max_seed_chars] or None,
            }
            if not (seed[contracts.TEXT] or "").strip():
                reply = Reply(reason=RejectReason.EMPTY, detail="the seed has no text to write instructions from")
            if reply.reason is not None:
                rows.append(
                    reject_row(
                        base,
                        seed[contracts.ID],
                        reply.reason,
                        reply.detail,
                        **{contracts.DOMAIN: seed[contracts.DOMAIN], contracts.META: generation_meta(seed)},
                    )
                )
                continue
            seen: set[str] = set()
            prompt_text = "\n".join(message["content"] for message in json.loads(seed[contracts.MESSAGES]))
            asked = info.get("task_types", [])
            openings = "\n".join(info["variables"].get("openings", []))
            for index, item in enumerate(reply.value["instructions"]):
                instruction = strip_type_label(item.strip())
                task_type = classify_task_type(instruction)
                row = {
                    **base,
                    contracts.ID: derived_id(seed[contracts.ID], instruction),
                    contracts.DOMAIN: DOMAIN_OF_TYPE.get(task_type, seed[contracts.DOMAIN]),
                    contracts.INSTRUCTION: instruction,
                    contracts.TASK_TYPE: task_type,
                    contracts.OBJECTIVE: task_type in OBJECTIVE_TYPES,
                    contracts.META: generation_meta(seed, item_index=index, asked_task_type=asked[index] if index < len(asked) else None),
                }
                problem = (
                    check_repeated(instruction, seen)
                    or check_echoes_prompt(instruction, prompt_text, quoted_text=f"{seed[contracts.TEXT]}\n{openings}")
                    or check_is_request(instruction)
                    or check_language(instruction, base[contracts.LANG], context=seed[contracts.TEXT], code=row[contracts.DOMAIN] == "code")
                    or check_self_contained(instruction)
                    or check_answers_itself(instruction)
                    or check_has_quantities(instruction, task_type)
                    or check_copies_seed(instruction, seed[contracts.TEXT], max_overlap=self.params.max_seed_overlap)
                )
                if problem is not None:
                    row[contracts.REJECT_REASON], row[contracts.REJECT_DETAIL] = RejectReason(problem[0]).value, problem[1]
                rows.append(row)
        return pa.Table.from_pylist(rows, schema=with_reject_columns(pa.schema(INSTRUCTION_FIELDS)))

    def finalize(self, stage_dir: StageDir) -> dict:
        """The task mix: asked (the job's shares), planned (what the seeds allowed) and achieved
        (the task types of the instructions kept), each as shares of its total."""
        kept: Counter = Counter()
        for path in stage_dir.part_files():
            kept.update(read_parquet(path, columns=[contracts.TASK_TYPE])[contracts.TASK_TYPE].to_pylist())
        return {
            "task_mix": {
                "asked": shares_of(self.params.task_mix),
                "planned": self.planned_mix,
                "achieved": shares_of(kept),
                "kept": sum(kept.values()),
            }
        }


def openings_schema(openings: list[str]) -> dict:
    """The JSON schema of a reply that starts its i-th instruction with `openings[i]`: one string
    per opening, in order, each the opening and then its own words (code on a new line after an
    opening that ends on a colon)."""
    items = [{"type": "string", "pattern": opening_pattern(opening)} for opening in openings]
    array = {"type": "array", "prefixItems": items, "items": False, "minItems": len(items), "maxItems": len(items)}
    return {"type": "object", "properties": {"instructions": array}, "required": ["instructions"], "additionalProperties": False}
