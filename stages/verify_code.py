"""verify_code: code answers are run against tests in a sandbox before they are kept.

Rows whose `domain` is in `domains` (default: code) are verified. Rows of other domains whose
answer holds a complete Python program are run too (`python_in_other_domains`: "Calculate the
square of a number using a class method" is a math row, and its program raised); the others pass
untouched. The program is the answer's biggest complete Python block
(`quality/code_extraction.py`). Its tests, first found of:
- the row's own `tests` column (probes fill it: HumanEval's `check(entry_point)`);
- with `test_writer` naming a model: assert-based tests that model writes from the instruction
  and the code (template `prompt`, default `verify_code/write_tests`); only these rows are sent;
- the answer's own claims (`printed_claims`, on by default): top-level prints whose comment says
  what they print (`print(square(4))  # Output: 16`) are re-run one statement at a time and must
  print that (quality/printed_claims.py);
- none: the program only has to run. It runs as a script (`run_as_script`), the example under
  its `if __name__ == "__main__":` included (a `DerivedClass` printing `self.__name__` raised
  there, unseen when only its definitions loaded), so a syntax error, a missing module or an
  exception is `crashed`, but wrong results pass. Name a test writer for a real check.
Each program runs in `quality/sandbox.py`, whose docstring says what the kernel enforces and
what only its audit hook does: by default inside bubblewrap, seeing its working directory and
the standard library and no other file (`sandbox.filesystem: host` runs it on the machine's file
system where bubblewrap cannot work); `workers` sandboxes run at once within a batch.

Writes `tests` (the tests that ran; null when none) and, on kept code rows,
`meta.verify_code` = {outcome: passed | not_run, tests: row | model | none, network, filesystem, ...}.
Rejects (detail: JSON with the sandbox's detail and the output's tail, each capped and stripped of
credentials by the sandbox, and where the tests came from):
- `no_code`: a code answer without a Python program (an unclosed block, prose only); answers
  whose code is all in other languages are kept unrun (outcome `not_run`) unless
  `other_languages: reject`;
- `tests_failed`, `timeout`, `crashed`, `sandbox_violation`: the sandbox's outcomes;
- with a test writer, `llm_error` and `parse_error` (a reply without Python code) for the rows
  it wrote no tests for: never a silent pass. A reply cut off at its token limit inside its
  Python block keeps the whole lines before the cut that parse.
"""

from __future__ import annotations

import functools
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import RejectReason
from synthmix.pipeline.llm.models import SamplingParams
from synthmix.pipeline.llm.processors import apply_llm
from synthmix.pipeline.llm.prompts import load_prompt
from synthmix.pipeline.model_stage import RENDER_CPUS
from synthmix.pipeline.prompted_requests import PROMPT_INFO, Request, attach_requests, read_reply, stable_seed
from synthmix.pipeline.stage import Execution, Resources, Stage, StageParams, with_columns
from synthmix.quality.code_extraction import find_cut_python_block, find_python_code
from synthmix.quality.printed_claims import claim_program, claimed_outputs
from synthmix.quality.sandbox import Outcome, SandboxLimits, SandboxResult, run_sandboxed

DEFAULT_PROMPT = "verify_code/write_tests"
OUTPUT_TAIL_CHARS = 500  # of the program's output, in a reject's detail
DETAIL_CHARS = 1000  # of the sandbox's detail (an exception's message may quote anything)


class VerifyCodeParams(StageParams):
    domains: list[str] = Field(default_factory=lambda: ["code"], min_length=1, description="domains whose answers are code to run")
    test_writer: str | None = Field(default=None, description="model that writes tests for rows without them; none: those rows only have to run")
    prompt: str = Field(default=DEFAULT_PROMPT, description="the test writer's template id")
    other_languages: Literal["keep", "reject"] = Field(
        default="keep", description="answers whose code is all in other languages: kept unrun, or rejected as no_code"
    )
    printed_claims: bool = Field(
        default=True,
        description="rows without tests: check the output comments of top-level prints (`print(f(4))  # Output: 16`) against what they print",
    )
    run_as_script: bool = Field(
        default=True,
        description="rows without tests: run the program as a script (`__main__`), so the example under its `if __name__ == '__main__':` runs too",
    )
    python_in_other_domains: bool = Field(
        default=True,
        description="answers of other domains that hold a complete Python program are run too, without a test writer (no program: untouched)",
    )
    workers: int = Field(default=2, ge=1, le=64, description="sandboxes running at once within a batch")
    sandbox: SandboxLimits = SandboxLimits()
    seed: int = 0
    # Greedy: the same answer gets the same tests.
    sampling: SamplingParams = SamplingParams(temperature=0.0, max_tokens=768)


@dataclass(frozen=True)
class _Verdict:
    """What happens to one row: run `code` with `tests`, or settle it without a run."""

    code: str | None = None
    tests: str | None = None
    tests_from: str = "none"  # row | model | printed_claims | none
    reason: RejectReason | None = None
    detail: str | None = None
    not_run: str | None = None  # why a kept code row was not run (its code is in other languages)
    printed_claims: int = 0  # output comments checked, when tests_from is printed_claims


class VerifyCode(Stage):
    name = "verify_code"
    input_columns = (contracts.INSTRUCTION, contracts.ANSWER, contracts.DOMAIN)
    output_fields = (
        pa.field(contracts.TESTS, pa.string()),
        pa.field(contracts.META, pa.string()),
    )
    params = VerifyCodeParams
    # The sandboxes of a batch (`workers` of them) share this reservation.
    resources = Resources(num_cpus=1, batch_size=32)
    prompts = (DEFAULT_PROMPT,)
    # A Ray Data plan: the optional test writer is an engine.
    execution = Execution.BATCHES

    def prompt_ids(self) -> tuple[str, ...]:
        return (self.params.prompt,) if self.params.test_writer else ()

    def models_used(self) -> tuple[str, ...]:
        return (self.params.test_writer,) if self.params.test_writer else ()

    def setup(self) -> None:
        """A trivial program first, so a sandbox that cannot start fails the stage before any row is judged."""
        check = run_sandboxed("pass\n", None, self.params.sandbox)
        if check.outcome is not Outcome.PASSED:
            raise RuntimeError(f"verify_code: the sandbox fails even on `pass` ({check.outcome}: {check.detail}); see quality/sandbox.py")

    def prepare(self, dataset: Any) -> Any:
        """With a test writer: the rows that need tests go to it, the others around it."""
        if not self.params.test_writer:
            return dataset
        needs_tests = functools.partial(needs_written_tests, domains=frozenset(self.params.domains))
        asking = dataset.filter(needs_tests).map_batches(self.render_requests, batch_format="pyarrow", num_cpus=RENDER_CPUS)
        written = apply_llm(
            asking,
            model=self.context.models[self.params.test_writer],
            model_name=self.params.test_writer,
            sampling=self.params.sampling.model_dump(exclude_unset=True),
        )
        return written.union(dataset.filter(lambda row: not needs_tests(row)))

    def render_requests(self, batch: pa.Table) -> pa.Table:
        template = load_prompt(self.params.prompt)
        requests = [
            Request(
                template,
                {"instruction": row[contracts.INSTRUCTION], "code": find_python_code(row[contracts.ANSWER] or "").python},
                seed=stable_seed(self.params.seed, row[contracts.ID], self.name),
            )
            for row in batch.select([contracts.ID, contracts.INSTRUCTION, contracts.ANSWER]).to_pylist()
        ]
        return attach_requests(batch, requests)

    def transform(self, batch: pa.Table) -> pa.Table:
        rows = batch.to_pylist()
        verdicts = [self.judge(row) for row in rows]
        to_run = [index for index, verdict in enumerate(verdicts) if verdict.code is not None]
        with ThreadPoolExecutor(max_workers=self.params.workers) as pool:
            results = dict(zip(to_run, pool.map(self._run, [verdicts[index] for index in to_run])))
        tests, metas, reasons, details = [], [], [], []
        for index, (row, verdict) in enumerate(zip(rows, verdicts)):
            result = results.get(index)
            meta, reason, detail = row.get(contracts.META), verdict.reason, verdict.detail
            if result is not None and result.outcome is not Outcome.PASSED:
                reason, detail = RejectReason(result.outcome.value), describe_failure(result, verdict)
            elif reason is None and (result is not None or verdict.not_run is not None):
                meta = with_verification(meta, row, verdict, result)
            if verdict.code is None:
                tests.append(row.get(contracts.TESTS))
            else:
                # The printed-claims program is this package's checker plus the answer: its claims
                # are counted in meta, not a copy of the checker put into every row's `tests`.
                tests.append(None if verdict.tests_from == "printed_claims" else verdict.tests)
            metas.append(meta)
            reasons.append(reason.value if reason is not None else None)
            details.append(detail)
        outputs = {contracts.TESTS: tests, contracts.META: metas, contracts.REJECT_REASON: reasons, contracts.REJECT_DETAIL: details}
        return with_columns(batch, {name: pa.array(values, pa.string()) for name, values in outputs.items()})

    def _run(self, verdict: _Verdict) -> SandboxResult:
        return run_sandboxed(verdict.code, verdict.tests, self.params.sandbox, as_main=self.params.run_as_script)

    def judge(self, row: dict[str, Any]) -> _Verdict:
        """What to run for this row, or why there is nothing to run."""
        in_domains = row[contracts.DOMAIN] in self.params.domains
        if not in_domains and not self.params.python_in_other_domains:
            return _Verdict()
        found = find_python_code(row[contracts.ANSWER] or "")
        if found.python is None:
            if not in_domains:  # prose, or a math answer's formula: nothing to run, nothing wrong
                return _Verdict()
            if found.other_languages and self.params.other_languages == "keep":
                return _Verdict(not_run=found.problem)
            return _Verdict(reason=RejectReason.NO_CODE, detail=json.dumps({"detail": found.problem}))
        if (row.get(contracts.TESTS) or "").strip():
            return _Verdict(code=found.python, tests=row[contracts.TESTS], tests_from="row")
        if not self.params.test_writer or not in_domains:  # the test writer is asked about `domains` only
            claims = claimed_outputs(found.python) if self.params.printed_claims else {}
            if not claims:
                return _Verdict(code=found.python)
            # The claims program runs the answer itself, statement by statement: loading it first
            # would end at an example its comment says raises (`f(0)  # raises ValueError`).
            return _Verdict(code="", tests=claim_program(found.python, claims), tests_from="printed_claims", printed_claims=len(claims))
        reply = read_reply(row)
        if reply.reason is not None:
            return _Verdict(reason=reply.reason, detail=reply.detail, tests_from="model")
        # A small model writing asserts runs on until its token limit, leaving its block open: the
        # whole lines before the cut are tests as good as any (3 of 4 recorded Qwen2.5-Coder-0.5B replies).
        written = find_python_code(reply.value).python or find_cut_python_block(reply.value)
        if written is None:
            raw = json.dumps({"error": "the test writer's reply holds no Python code", "raw": reply.value[:1000]}, ensure_ascii=False)
            return _Verdict(reason=RejectReason.PARSE_ERROR, detail=raw, tests_from="model")
        return _Verdict(code=found.python, tests=written, tests_from="model")


def needs_written_tests(row: dict[str, Any], *, domains: frozenset[str]) -> bool:
    """A code row without tests whose answer has a program: the rows a test writer is asked about."""
    return (
        row[contracts.DOMAIN] in domains and not (row.get(contracts.TESTS) or "").strip() and find_python_code(row[contracts.ANSWER] or "").python is not None
    )


def describe_failure(result: SandboxResult, verdict: _Verdict) -> str:
    return json.dumps(
        {
            "detail": result.detail[:DETAIL_CHARS],
            "tests": verdict.tests_from,
            "network": result.network,
            "filesystem": result.filesystem,
            "output_tail": result.output_tail[-OUTPUT_TAIL_CHARS:],
        },
        ensure_ascii=False,
    )


def with_verification(meta: str | None, row: dict[str, Any], verdict: _Verdict, result: SandboxResult | None) -> str:
    """`meta` with `verify_code`: how the row was verified (or why it was not run), and by whose tests."""
    data = json.loads(meta) if meta else {}
    if result is None:
        step: dict[str, Any] = {"outcome": "not_run", "why": verdict.not_run}
    else:
        step = {"outcome": result.outcome.value, "tests": verdict.tests_from, "network": result.network, "filesystem": result.filesystem}
    if verdict.tests_from == "printed_claims":
        step["printed_claims"] = verdict.printed_claims
    if verdict.tests_from == "model":
        prompt = json.loads(row[PROMPT_INFO])
        step["test_writer"] = {"model": row.get(contracts.LLM_MODEL), "template_id": prompt["template_id"], "template_version": prompt["template_version"]}
    data["verify_code"] = step
    return json.dumps(data, ensure_ascii=False, sort_keys=True)
