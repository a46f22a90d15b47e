"""evolve: instructions are rewritten clearer, broader and harder (Hunyuan-Large step 2).

Three directions, each a set of templates under prompts/evolve/:
- clarity: `clarify` adds missing context and makes the ask precise;
- low-resource expansion: `expand` writes new instructions for a rare domain, self-instruct
  style, from a few accepted instructions of that domain (domains the job lists, or whose
  share of the input is below `low_resource_share`);
- difficulty (Evol-Instruct depth): `add_constraints`, `deepen`, `concretize`, `reasoning`.
Each input row gets one operation, picked by weight from its id and the job seed. One
evolve stage is one round; chain stages (`kind: evolve`, `input: evolve`) for more rounds.
Writes the evolved rows (`parent_id` = the instruction evolved, `evolution_op`, depth + 1; the
evolve step in `meta` names it as `evolved_from`, which later stages keep when `parent_id`
points elsewhere) and, with `keep_parents`, the input rows unchanged. A rewrite's `task_type` is
read from its own words (quality/task_types.py).
Rejects: llm_error, parse_error, empty, refusal, template_leak, too_short,
no_information_gain, not_a_request, incomplete, lang, not_self_contained, contains_answer.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import INSTRUCTION_FIELDS, Lineage, RejectReason, derived_id, reject_row, with_reject_columns
from synthmix.pipeline.instruction_rows import check_repeated, opening_pattern, seed_language
from synthmix.pipeline.llm.models import SamplingParams
from synthmix.pipeline.llm.prompts import load_prompt
from synthmix.pipeline.model_stage import ModelStage
from synthmix.pipeline.prompted_requests import PROMPT_INFO, Request, attach_requests, generation_meta, read_reply, stable_choice, stable_seed
from synthmix.pipeline.stage import Resources, StageParams, with_columns
from synthmix.quality.instruction_checks import (
    check_answers_itself,
    check_evolution,
    check_has_quantities,
    check_is_request,
    check_language,
    check_self_contained,
    strip_type_label,
    words,
)
from synthmix.quality.task_types import classify_task_type

REWRITE_OPERATIONS = ("clarify", "add_constraints", "deepen", "concretize", "reasoning")
# Operations whose reply is one sentence to append (`addition`), not a whole new instruction: a
# 0.5B model asked to rewrite returned most instructions unchanged (docs/recipe.md).
APPENDING_OPERATIONS = frozenset({"add_constraints", "deepen", "reasoning"})
# How an added sentence begins, per operation and language (a list in the template, `pick` chooses).
OPENINGS_PROMPT = "evolve/openings"
EXPAND = "expand"
# A sentence's closing mark: an added sentence after a parent without one gets a full stop first.
_CLOSED = re.compile(r"[.?!。？！:：;；]$")


class EvolveParams(StageParams):
    model: str = "embedded"
    # Relative weights of the rewrite operations; 0 switches one off.
    operations: dict[str, float] = Field(default_factory=lambda: {op: 1.0 for op in REWRITE_OPERATIONS})
    low_resource_domains: list[str] = Field(default_factory=list)
    low_resource_share: float = Field(default=0.05, ge=0, le=1, description="domains below this share of the input count as low-resource")
    expand_share: float = Field(default=0.5, ge=0, le=1, description="share of low-resource rows that get `expand` instead of a rewrite")
    expand_examples: int = Field(default=3, ge=1, le=8)
    expand_count: int = Field(default=3, ge=1, le=4)
    keep_parents: bool = True
    min_length_ratio: float = Field(default=0.5, gt=0)
    seed: int = 0
    sampling: SamplingParams = SamplingParams(temperature=0.7, max_tokens=300)

    def model_post_init(self, __context) -> None:
        unknown = set(self.operations) - set(REWRITE_OPERATIONS)
        if unknown:
            raise ValueError(f"unknown evolution operation(s) {sorted(unknown)}; known: {', '.join(REWRITE_OPERATIONS)}")
        if not any(weight > 0 for weight in self.operations.values()):
            raise ValueError("every evolution operation has weight 0; give at least one a positive weight")


class Evolve(ModelStage):
    name = "evolve"
    input_columns = (contracts.ID, contracts.INSTRUCTION, contracts.DOMAIN, contracts.SEED_ID)
    output_fields = INSTRUCTION_FIELDS
    carries_input = False
    lineage = Lineage.CHILDREN
    params = EvolveParams
    resources = Resources(num_cpus=0.25, batch_size=64)

    def prompt_ids(self) -> tuple[str, ...]:
        return (*(f"evolve/{op}" for op in (*sorted(op for op, w in self.params.operations.items() if w > 0), EXPAND)), OPENINGS_PROMPT)

    def setup_on_driver(self) -> None:
        # Read on the driver before the plan starts; travels to workers with the stage.
        self.examples = self._low_resource_examples()

    def _low_resource_examples(self) -> dict[str, list[str]]:
        """A few instructions of each low-resource domain, read on the driver (two columns only)."""
        files = [f for upstream in self.context.upstream_dirs.values() for f in sorted(upstream.glob("part-*.parquet"))]
        tables = [pq.read_table(f, columns=[contracts.DOMAIN, contracts.INSTRUCTION]) for f in files]
        return pick_low_resource_examples(
            (row for table in tables for row in table.to_pylist()),
            listed=self.params.low_resource_domains,
            max_share=self.params.low_resource_share,
            per_domain=self.params.expand_examples,
        )

    def choose_operation(self, row_id: str, domain: str, examples: dict[str, list[str]]) -> str:
        params = self.params
        if len(examples.get(domain, [])) >= 1 and stable_seed(params.seed, row_id, "expand") / 0x80000000 < params.expand_share:
            return EXPAND
        ops = sorted(op for op, weight in params.operations.items() if weight > 0)
        return stable_choice(ops, params.seed, row_id, self.context.stage_name, weights=[params.operations[op] for op in ops])

    def render_requests(self, batch: pa.Table) -> pa.Table:
        examples = self.examples
        opening_of = load_prompt(OPENINGS_PROMPT)
        requests = []
        for row in batch.select([contracts.ID, contracts.INSTRUCTION, contracts.DOMAIN, contracts.LANG]).to_pylist():
            op = self.choose_operation(row[contracts.ID], row[contracts.DOMAIN], examples)
            # `pick` chooses the direction a rewrite prompt names, or the opening of an added sentence.
            pick = stable_seed(self.params.seed, row[contracts.ID], "direction")
            language = seed_language(row)
            variables = {"instruction": row[contracts.INSTRUCTION] or "", "language": language, "pick": pick}
            if op in APPENDING_OPERATIONS:
                variables["opening"] = opening_of.render(operation=op, language=language, pick=pick)[-1]["content"]
            if op == EXPAND:
                shown = [text for text in examples[row[contracts.DOMAIN]] if text != row[contracts.INSTRUCTION]][: self.params.expand_examples - 1]
                variables.update(domain=row[contracts.DOMAIN], examples=[row[contracts.INSTRUCTION], *shown], count=self.params.expand_count)
            seed = stable_seed(self.params.seed, row[contracts.ID], self.context.stage_name)
            requests.append(Request(load_prompt(f"evolve/{op}"), variables, seed=seed, notes={"operation": op}))
        rendered = attach_requests(batch, requests)
        # An added sentence must start with its opening: the row's schema holds the model to it
        # (vLLM decodes against it); the reply is read against the template's own schema.
        schemas = [
            json.dumps(addition_schema(request.variables["opening"])) if "opening" in request.variables else schema
            for request, schema in zip(requests, rendered[contracts.JSON_SCHEMA].to_pylist())
        ]
        return with_columns(rendered, {contracts.JSON_SCHEMA: pa.array(schemas, pa.string())})

    def transform(self, batch: pa.Table) -> pa.Table:
        rows = []
        for parent in batch.to_pylist():
            op = json.loads(parent["prompt_info"])["operation"]
            depth = (parent.get(contracts.EVOLUTION_DEPTH) or 0) + 1
            base = {
                contracts.SEED_ID: parent[contracts.SEED_ID],
                contracts.PARENT_ID: parent[contracts.ID],
                contracts.SOURCE: parent.get(contracts.SOURCE),
                contracts.SOURCE_ID: parent.get(contracts.SOURCE_ID),
                contracts.ORIGIN: parent.get(contracts.ORIGIN),
                contracts.DOMAIN: parent[contracts.DOMAIN],
                contracts.LANG: seed_language(parent),
                contracts.TASK_TYPE: parent.get(contracts.TASK_TYPE),
                contracts.OBJECTIVE: bool(parent.get(contracts.OBJECTIVE)) and op != EXPAND,
                contracts.EVOLUTION_OP: op,
                contracts.EVOLUTION_DEPTH: depth,
                # A rewrite asks about its parent's source; an expansion is a new task without one.
                contracts.PASSAGE: parent.get(contracts.PASSAGE) if op != EXPAND else None,
            }
            if not (parent[contracts.INSTRUCTION] or "").strip():
                rows.append(
                    reject_row(
                        base, parent[contracts.ID], RejectReason.EMPTY, "the row has no instruction to evolve", **{contracts.META: parent.get(contracts.META)}
                    )
                )
                continue
            if self.params.keep_parents:
                rows.append({name: parent.get(name) for name in pa.schema(INSTRUCTION_FIELDS).names})
            reply = read_reply({**parent, contracts.JSON_SCHEMA: json.dumps(load_prompt(f"evolve/{op}").schema)})
            opening = json.loads(parent[PROMPT_INFO])["variables"].get("opening", "")
            if reply.reason is not None:
                rows.append(reject_row(base, parent[contracts.ID], reply.reason, reply.detail, **{contracts.META: generation_meta(parent, operation=op)}))
                continue
            if op == EXPAND:
                texts = reply.value["instructions"]
            elif op in APPENDING_OPERATIONS:
                addition = strip_type_label(reply.value["addition"].strip())
                texts = [append_sentence(parent[contracts.INSTRUCTION], addition, base[contracts.LANG])]
            else:
                texts = [reply.value["instruction"]]
            said = {key: reply.value[key] for key in ("addition", "change") if isinstance(reply.value, dict) and key in reply.value}
            seen: set[str] = set()
            code = base[contracts.DOMAIN] == "code"
            for index, text in enumerate(texts):
                text = strip_type_label(text.strip())
                row = {
                    **base,
                    contracts.ID: derived_id(parent[contracts.ID], op, text),
                    contracts.INSTRUCTION: text,
                    contracts.TASK_TYPE: classify_task_type(text),
                    contracts.META: generation_meta(parent, operation=op, item_index=index, evolved_from=parent[contracts.ID], **said),
                }
                if op == EXPAND:
                    problem = (
                        check_repeated(text, seen)
                        or check_is_request(text)
                        or check_language(text, base[contracts.LANG], context=prompt_text(parent[contracts.MESSAGES]), code=code)
                        or check_self_contained(text)
                        or check_answers_itself(text)
                        or check_has_quantities(text, row[contracts.TASK_TYPE])
                        or _repeats(text, [parent[contracts.INSTRUCTION], *self.examples.get(parent[contracts.DOMAIN], [])])
                    )
                else:
                    problem = (
                        check_evolution(
                            text,
                            parent[contracts.INSTRUCTION],
                            template_text=prompt_without(parent[contracts.MESSAGES], parent[contracts.INSTRUCTION]).replace(opening or "\x00", " "),
                            min_length_ratio=self.params.min_length_ratio,
                        )
                        or check_is_request(text)
                        # An added sentence must itself ask for something: a statement appended
                        # to a question is the start of an answer.
                        or (check_is_request(addition, min_words=2) if op in APPENDING_OPERATIONS and text != addition else None)
                        or check_language(text, base[contracts.LANG], context=parent[contracts.INSTRUCTION], code=code)
                        or check_self_contained(text)
                        or check_answers_itself(text)
                        or check_has_quantities(text, row[contracts.TASK_TYPE])
                    )
                if problem is not None:
                    row[contracts.REJECT_REASON], row[contracts.REJECT_DETAIL] = RejectReason(problem[0]).value, problem[1]
                rows.append(row)
        return pa.Table.from_pylist(rows, schema=with_reject_columns(pa.schema(INSTRUCTION_FIELDS)))


def addition_schema(opening: str) -> dict:
    """The JSON schema of an added sentence that starts with `opening`."""
    addition = {"type": "string", "pattern": opening_pattern(opening)}
    return {"type": "object", "properties": {"addition": addition}, "required": ["addition"], "additionalProperties": False}


def append_sentence(instruction: str, addition: str, language: str) -> str:
    """The instruction with the model's added sentence at its end; an addition that already holds
    the whole instruction (the model rewrote the request) stands alone."""
    core = instruction.strip().rstrip("?？.。!！").lower()
    if core and core in addition.lower():
        return addition
    stem = instruction.rstrip()
    if not _CLOSED.search(stem):
        stem += "。" if language == "zh" else "."
    return f"{stem}{'' if language == 'zh' else ' '}{addition}"


def prompt_text(messages_json: str) -> str:
    """The rendered prompt's text, every message."""
    return "\n".join(message["content"] for message in json.loads(messages_json))


def prompt_without(messages_json: str, instruction: str) -> str:
    """The rendered prompt's text with the instruction itself removed: what a leak would copy."""
    return prompt_text(messages_json).replace(instruction, " ")


def pick_low_resource_examples(rows: Iterable[dict], *, listed: list[str], max_share: float, per_domain: int) -> dict[str, list[str]]:
    """Domains listed by the job or under `max_share` of all rows, with their first few instructions."""
    counts: Counter = Counter()
    examples: dict[str, list[str]] = {}
    for row in rows:
        domain = row[contracts.DOMAIN]
        counts[domain] += 1
        bucket = examples.setdefault(domain, [])
        if len(bucket) < per_domain:
            bucket.append(row[contracts.INSTRUCTION])
    total = sum(counts.values())
    rare = {domain for domain, n in counts.items() if domain in listed or (total and n / total < max_share)}
    return {domain: examples[domain] for domain in sorted(rare)}


def _repeats(text: str, examples: list[str]) -> tuple[RejectReason, str] | None:
    """An expansion with fewer than two words (Han characters) that an example lacks repeats it."""
    own = set(words(text))
    for example in examples:
        if len(own - set(words(example))) < 2:
            return RejectReason.NO_INFORMATION_GAIN, f"repeats the example {example[:80]!r}"
    return None
