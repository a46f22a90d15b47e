"""judged_responses: responses whose verdict is known enter at the critique, to measure the judge.

A judged row is a pair of the answer contract (`synthmix.pipeline.contracts.ANSWER_FIELDS`) with a fixed
`answer` and a `probe` marker (JSON: set, key, variant, `judged_by: verdict` and `good`). It
skips answer generation: it joins the pairs right before `critique` and goes through the critique
and every later filter like any pair, until `probe_exit` sets it aside. `synthmix eval` then
reads, per set and per signal of the critique, how well the judge told good from bad
(pipeline/inspection/critic_evaluation.py). Never trained on: the same exit check as probes
(pipeline/probe_rows.py) refuses a job whose training stages would read them.

Two stage kinds:
- `judged_responses`, before `critique`: carries its input pairs unchanged (probe and tests null)
  and adds the drawn rows as one more committed unit (`finalize`);
- `judged_source`: the judged rows alone, for a job that measures a judge (jobs/critic_eval.yaml).

Section `judged_responses:` (or the source's) says how many to draw of each built-in set
(quality/judged_sets.py): `gsm8k` problems (a reference and an altered solution each),
`humaneval` problems (the canonical solution and a mutant that fails the tests, run in the
sandbox to prove it), `passages` (real passages with a checked answer and its faults; null:
every recorded one), and `files` of the user's own `{question, response, good}` lines. All are
drawn by `seed`: the same job draws the same rows, with stable ids.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import Field, model_validator

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import ANSWER_FIELDS
from synthmix.pipeline.probe_rows import PROBE_FIELDS, JoinsMeasuredRows, MeasuredRows, ServesMeasuredRows
from synthmix.pipeline.stage import Execution, Resources, Stage, StageParams
from synthmix.quality.judged_sets import (
    BUILT_IN_JUDGED_SETS,
    JudgedResponse,
    gsm8k_judged,
    humaneval_judged,
    passage_judged,
    read_judged_file,
)
from synthmix.quality.sandbox import Outcome, SandboxLimits, run_sandboxed

JUDGED_BY = "verdict"


class JudgedFile(StageParams):
    """A user's judged responses: JSON Lines, one `{question, response, good}` per line."""

    name: str = Field(description="the set's name in `synthmix eval`")
    path: str = Field(description="a .jsonl or .jsonl.gz file, relative to the job file")
    question_field: str = "question"
    response_field: str = "response"
    good_field: str = "good"
    passage_field: str = Field(default="passage", description="optional: a source the response should agree with")
    domain: str | None = Field(default=None, description="default: general")
    lang: str | None = Field(default=None, description="default: zh or en by the question's script")


class JudgedParams(StageParams):
    seed: int = Field(default=0, description="which rows are drawn; the same seed draws the same ones")
    gsm8k: int = Field(default=0, ge=0, le=1319, description="GSM8K problems: the reference solution and one altered step's")
    humaneval: int = Field(default=0, ge=0, le=164, description="HumanEval problems: the canonical solution and a failing mutant")
    passages: int | None = Field(default=0, ge=0, description="recorded passages (each a checked answer and its faults); null: all of them")
    files: list[JudgedFile] = Field(default_factory=list)
    sandbox: SandboxLimits = Field(default_factory=SandboxLimits, description="limits for running HumanEval mutants against their tests")

    @model_validator(mode="after")
    def _asks_for_rows(self):
        names = [entry.name for entry in self.files]
        clashing = sorted({name for name in names if names.count(name) > 1 or name in BUILT_IN_JUDGED_SETS})
        if clashing:
            raise ValueError(
                f"judged-response file names {clashing} repeat or reuse a built-in set's name ({', '.join(BUILT_IN_JUDGED_SETS)}); name each file once"
            )
        if not (self.gsm8k or self.humaneval or self.passages is None or self.passages or self.files):
            raise ValueError("no judged responses asked for; set gsm8k, humaneval, passages (counts, or null for every passage) or files")
        return self


class JudgedRows(MeasuredRows):
    """What both kinds share: the drawn judged responses as pairs."""

    params: JudgedParams

    def draw(self) -> list[JudgedResponse]:
        params = self.params
        drawn = []
        if params.gsm8k:
            drawn += gsm8k_judged(params.gsm8k, seed=params.seed)
        if params.humaneval:
            limits = params.sandbox

            def passes(code: str, tests: str) -> bool:
                return run_sandboxed(code, tests, limits).outcome is Outcome.PASSED

            drawn += humaneval_judged(params.humaneval, seed=params.seed, runner=passes)
        if params.passages is None or params.passages:
            drawn += passage_judged(params.passages, seed=params.seed)
        for entry in params.files:
            drawn += read_judged_file(self.file_path(entry), **entry.model_dump(exclude={"path"}))
        return drawn

    def measured_rows(self) -> list[dict[str, Any]]:
        return [judged_row(judged) for judged in self.draw()]


def judged_row(judged: JudgedResponse) -> dict[str, Any]:
    """One judged response as a pair; it is its own seed, and its origin names where it came from."""
    marker = {"set": judged.set_name, "key": judged.key, "variant": judged.variant, "judged_by": JUDGED_BY, "good": judged.good}
    return {
        contracts.ID: judged.id,
        contracts.SEED_ID: judged.id,
        contracts.PARENT_ID: f"judged:{judged.set_name}:{judged.key}",
        contracts.SOURCE: f"judged/{judged.set_name}",
        contracts.DOMAIN: judged.domain,
        contracts.LANG: judged.lang,
        contracts.INSTRUCTION: judged.question,
        contracts.ANSWER: judged.response,
        contracts.SAMPLES: [judged.response],
        # One fixed response: there is nothing to vote on.
        contracts.OBJECTIVE: False,
        contracts.META: json.dumps({"judged": marker}, ensure_ascii=False, sort_keys=True),
        contracts.SOURCE_ID: judged.key,
        contracts.ORIGIN: json.dumps({"judged_set": judged.set_name, **judged.origin}, ensure_ascii=False, sort_keys=True),
        contracts.PASSAGE: judged.passage,
        contracts.PROBE: json.dumps(marker, ensure_ascii=False, sort_keys=True),
        contracts.TESTS: None,
    }


class JudgedResponses(JudgedRows, JoinsMeasuredRows, Stage):
    name = "judged_responses"
    input_columns = (contracts.ID, contracts.INSTRUCTION, contracts.ANSWER)
    output_fields = PROBE_FIELDS
    params = JudgedParams
    resources = Resources(num_cpus=0.25, batch_size=4096)
    execution = Execution.FILE_TASKS
    alone_fields = ANSWER_FIELDS


class JudgedSource(JudgedRows, ServesMeasuredRows, Stage):
    name = "judged_source"
    output_fields = (*ANSWER_FIELDS, *PROBE_FIELDS)
    params = JudgedParams
    resources = Resources(num_cpus=0.25, batch_size=4096)
