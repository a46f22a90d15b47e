"""probes: problems with known answers go through the filters like any instruction, to measure them.

A probe row is an instruction row (`synthmix.pipeline.contracts.INSTRUCTION_FIELDS`) with a `probe`
marker (JSON: set, key, reference answer) and, for code, `tests`. It is answered by the domain's
model, sampled and voted on when objective, critiqued, quality-checked and deduplicated like any
other row, so every filter's rejects hold the probes it rejected. `synthmix eval` then compares
what each filter kept and rejected with the known answers (pipeline/inspection/evaluation.py).

Three stage kinds make the way in and the way out:
- `probes`, between the last instruction stage and `answer`: carries its input unchanged (probe
  and tests null) and adds the drawn probes as one more committed unit, written by `finalize`.
  Every unit keeps "in = out + rejected" (the probe unit counts its probes in and out), and the
  probes are added even when the input is empty. `rows_in` counts instructions plus probes.
- `probe_source`: the probes alone, a source for a benchmark job without seeds (jobs/eval.yaml).
- `probe_exit`, after the last filter: rejects every probe row with reason `probe`, so its
  rejects are the probes that survived every filter, and no probe reaches `decontaminate`,
  `tokenize` or the shards. Before a probe row is written, `probes` and `probe_source` check the
  run's job (its `job.yaml`) and refuse one in which a `decontaminate`, `tokenize` or `mix` stage
  reads their rows without a `probe_exit` between.

Section `probes:` says how many of each set to draw (`gsm8k`, `humaneval`, `arithmetic_zh`,
`files`), drawn by `seed` (quality/probe_sets.py): the same job draws the same probes, whose ids
hash set, key and question, so they are stable across runs.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import INSTRUCTION_FIELDS, RejectReason
from synthmix.pipeline.probe_rows import EXIT_KIND, PROBE_FIELDS, JoinsMeasuredRows, MeasuredRows, ServesMeasuredRows
from synthmix.pipeline.stage import Execution, Resources, Stage, StageParams, with_columns
from synthmix.quality.probe_sets import (
    BUILT_IN_SETS,
    Probe,
    arithmetic_zh_probes,
    draw_probes,
    gsm8k_probes,
    humaneval_probes,
    read_probe_file,
)


class ProbeFile(StageParams):
    """A user's probes: JSON Lines, one question per line with an answer, tests, or both."""

    name: str = Field(description="the set's name in `synthmix eval`")
    path: str = Field(description="a .jsonl or .jsonl.gz file, relative to the job file")
    count: int | None = Field(default=None, ge=1, description="probes drawn from the file; none: every line")
    question_field: str = "question"
    answer_field: str = "answer"
    tests_field: str = "tests"
    domain: str | None = Field(default=None, description="default: code for lines with tests, else general")
    lang: str | None = Field(default=None, description="default: zh or en by the question's script")


class ProbeParams(StageParams):
    seed: int = Field(default=0, description="which probes are drawn; the same seed draws the same ones")
    gsm8k: int = Field(default=0, ge=0, le=1319, description="GSM8K test problems (English math, 1,319 in all)")
    humaneval: int = Field(default=0, ge=0, le=164, description="HumanEval problems (Python, judged by their tests)")
    arithmetic_zh: int = Field(default=0, ge=0, le=100_000, description="generated Chinese multi-step arithmetic word problems")
    files: list[ProbeFile] = Field(default_factory=list)

    @model_validator(mode="after")
    def _asks_for_probes(self):
        names = [probe_file.name for probe_file in self.files]
        clashing = sorted({name for name in names if names.count(name) > 1 or name in BUILT_IN_SETS})
        if clashing:
            raise ValueError(f"probe file names {clashing} repeat or reuse a built-in set's name ({', '.join(BUILT_IN_SETS)}); name each file once")
        if not (self.gsm8k or self.humaneval or self.arithmetic_zh or self.files):
            raise ValueError("no probes asked for; set gsm8k, humaneval, arithmetic_zh (counts) or files")
        return self


class ProbeRows(MeasuredRows):
    """What the probe-writing kinds share: the drawn probes as instruction rows."""

    params: ProbeParams

    def draw(self) -> list[Probe]:
        params = self.params
        drawn = []
        if params.gsm8k:
            drawn += draw_probes(gsm8k_probes(), params.gsm8k, seed=params.seed)
        if params.humaneval:
            drawn += draw_probes(humaneval_probes(), params.humaneval, seed=params.seed)
        if params.arithmetic_zh:
            drawn += arithmetic_zh_probes(params.arithmetic_zh, seed=params.seed)
        for probe_file in params.files:
            probes = read_probe_file(self.file_path(probe_file), **probe_file.model_dump(exclude={"path", "count"}))
            drawn += draw_probes(probes, probe_file.count, seed=params.seed) if probe_file.count else probes
        return drawn

    def measured_rows(self) -> list[dict[str, Any]]:
        return [probe_row(probe) for probe in self.draw()]


def probe_row(probe: Probe) -> dict[str, Any]:
    """One probe as an instruction row; it is its own seed, and its origin names file and line or template."""
    marker = {"set": probe.set_name, "key": probe.key, "reference": probe.reference, "judged_by": "reference" if probe.reference is not None else "tests"}
    return {
        contracts.ID: probe.id,
        contracts.SEED_ID: probe.id,
        contracts.PARENT_ID: f"probe:{probe.set_name}:{probe.key}",
        contracts.SOURCE: f"probe/{probe.set_name}",
        contracts.DOMAIN: probe.domain,
        contracts.LANG: probe.lang,
        contracts.INSTRUCTION: probe.question,
        contracts.TASK_TYPE: "probe",
        contracts.OBJECTIVE: probe.objective,
        contracts.EVOLUTION_OP: "",
        contracts.EVOLUTION_DEPTH: 0,
        contracts.SOURCE_ID: probe.key,
        contracts.ORIGIN: json.dumps({"probe_set": probe.set_name, **probe.origin}, ensure_ascii=False, sort_keys=True),
        contracts.PROBE: json.dumps(marker, ensure_ascii=False, sort_keys=True),
        contracts.TESTS: probe.tests,
    }


class Probes(ProbeRows, JoinsMeasuredRows, Stage):
    name = "probes"
    input_columns = (contracts.ID, contracts.INSTRUCTION)
    output_fields = PROBE_FIELDS
    params = ProbeParams
    resources = Resources(num_cpus=0.25, batch_size=4096)
    execution = Execution.FILE_TASKS
    alone_fields = INSTRUCTION_FIELDS


class ProbeSource(ProbeRows, ServesMeasuredRows, Stage):
    name = "probe_source"
    output_fields = (*INSTRUCTION_FIELDS, *PROBE_FIELDS)
    params = ProbeParams
    resources = Resources(num_cpus=0.25, batch_size=4096)


class ProbeExit(Stage):
    """Sets the probes aside after the last filter: they are measured (`synthmix eval` reads this
    stage's rejects as the probes every filter kept), never trained on."""

    name = EXIT_KIND
    input_columns = (contracts.ID, contracts.PROBE)
    resources = Resources(num_cpus=0.25, batch_size=4096)
    execution = Execution.FILE_TASKS

    def transform(self, batch: pa.Table) -> pa.Table:
        reasons = pc.if_else(pc.is_valid(batch[contracts.PROBE]), pa.scalar(RejectReason.PROBE.value), pa.scalar(None, pa.string()))
        return with_columns(batch, {contracts.REJECT_REASON: reasons, contracts.REJECT_DETAIL: pa.nulls(batch.num_rows, pa.string())})
