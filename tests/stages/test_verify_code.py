"""The verify_code stage: which rows run, with which tests, and what their outcomes become; then
two runs through the runner, one with a test writer answering from a fake chat server on 127.0.0.1."""

import json
from pathlib import Path

import pyarrow as pa
import pytest

from synthmix.pipeline import contracts
from synthmix.pipeline.contracts import ANSWER_FIELDS, RejectReason
from synthmix.pipeline.stage import StageContext
from synthmix.quality.sandbox import Outcome
from synthmix.stages.verify_code import VerifyCode, VerifyCodeParams, needs_written_tests
from tests.canaries import planted_secrets, reading_program
from tests.pipeline.fake_chat_server import FakeChatServer
from tests.stages.answer_rows import AnswerRows, StageRun, answer_row, run_after_answers
from tests.stages.synthesis_rows import INPUTS, RECORDED

SANDBOX = {"cpu_seconds": 2, "wall_seconds": 60, "memory_mb": 256, "output_kb": 64}
ADD = "Here you go:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\nCall `add(2, 3)` to get 5."
WRONG_ADD = "```python\ndef add(a, b):\n    return a - b\n```"
ADD_TESTS = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\n"
# Of the writer's replies, at least this share must hold Python code the sandbox can run: a broken
# template or reply parser turns every row into parse_error, which rejects-only assertions accept.
WRITER_PARSED_FLOOR = 0.5


class CodeAnswerRows(AnswerRows):
    """Answer rows with a `tests` column, as probes write it."""

    output_fields = (*ANSWER_FIELDS, pa.field(contracts.TESTS, pa.string()))


def code_row(row_id: str, answer: str, *, tests: str | None = None, domain: str = "code") -> dict:
    return {**answer_row(row_id, "Write a function add(a, b) that returns the sum of a and b.", answer), contracts.DOMAIN: domain, contracts.TESTS: tests}


def make_stage(**params) -> VerifyCode:
    return VerifyCode(VerifyCodeParams(sandbox=SANDBOX, **params), StageContext(run_dir=Path("unused"), stage_name="verify_code"))


def verify(rows: list[dict], **params) -> dict[str, dict]:
    output = make_stage(**params).transform(pa.Table.from_pylist(rows))
    return {row["id"]: row for row in output.to_pylist()}


def verification(row: dict) -> dict:
    return json.loads(row[contracts.META])["verify_code"]


def test_code_passing_its_own_tests_is_kept_with_how_it_was_verified() -> None:
    row = verify([code_row("ok", ADD, tests=ADD_TESTS)])["ok"]
    assert row[contracts.REJECT_REASON] is None and row[contracts.REJECT_DETAIL] is None
    assert verification(row)["outcome"] == "passed" and verification(row)["tests"] == "row"
    assert row[contracts.TESTS] == ADD_TESTS
    assert json.loads(row[contracts.META])["steps"] == [{"template_id": "answer/general"}]  # what was there stays


def test_code_failing_its_tests_is_rejected_with_the_failing_assertion() -> None:
    row = verify([code_row("wrong", WRONG_ADD, tests=ADD_TESTS)])["wrong"]
    assert row[contracts.REJECT_REASON] == "tests_failed"
    detail = json.loads(row[contracts.REJECT_DETAIL])
    assert detail["detail"] == "AssertionError (tests.py line 1: assert add(2, 3) == 5)"
    assert detail["tests"] == "row"


# A class method the quickstart shipped (2026-12-07, run with the 1.5B answering): its comment
# says 16, it prints 100.
CLAIMED_SQUARE = (
    "```python\nclass SquareCalculator:\n    square_of_five = 25\n\n    @classmethod\n"
    "    def calculate_square(cls, number):\n        return cls.square_of_five * number\n\n"
    "print(SquareCalculator.calculate_square(4))  # Output: 16\n```"
)


def test_code_whose_prints_contradict_their_comments_fails_without_other_tests() -> None:
    out = verify([code_row("wrong", CLAIMED_SQUARE), code_row("right", CLAIMED_SQUARE.replace("# Output: 16", "# Output: 100"))])
    assert out["wrong"][contracts.REJECT_REASON] == "tests_failed"
    detail = json.loads(out["wrong"][contracts.REJECT_DETAIL])
    assert detail["tests"] == "printed_claims" and "prints '100'; its comment says '16'" in detail["detail"]
    kept = out["right"]
    assert kept[contracts.REJECT_REASON] is None and verification(kept) | {"network": None, "filesystem": None} == {
        "outcome": "passed",
        "tests": "printed_claims",
        "printed_claims": 1,
        "network": None,
        "filesystem": None,
    }
    assert kept[contracts.TESTS] is None  # the checker is not copied into the row
    # Off: the program only has to load, so the wrong comment passes.
    assert verify([code_row("wrong", CLAIMED_SQUARE)], printed_claims=False)["wrong"][contracts.REJECT_REASON] is None


@pytest.mark.parametrize(
    ("program", "reason", "detail"),
    [
        ("while True:\n    pass\n", "timeout", "CPU time limit"),
        ("import os\nos.fork()\n", "sandbox_violation", "os.fork"),
        ("print('x' * 10_000_000)\n", "sandbox_violation", "output over"),
        ("def add(a, b)\n    return a + b\n", "crashed", "SyntaxError"),
        ("import socket\nsocket.create_connection(('127.0.0.1', 9))\n", "sandbox_violation", "network access is not allowed"),
    ],
)
def test_sandbox_outcomes_become_reject_reasons(program: str, reason: str, detail: str) -> None:
    row = verify([code_row("bad", f"```python\n{program}```", tests=ADD_TESTS)])["bad"]
    assert row[contracts.REJECT_REASON] == reason
    assert detail in json.loads(row[contracts.REJECT_DETAIL])["detail"]


def test_every_failing_sandbox_outcome_is_a_reject_reason() -> None:
    failing = {outcome.value for outcome in Outcome} - {Outcome.PASSED.value}
    assert failing <= {reason.value for reason in RejectReason}


def test_without_tests_or_a_test_writer_the_code_only_has_to_load() -> None:
    rows = verify([code_row("loads", WRONG_ADD), code_row("breaks", "```python\nimport not_a_module_anywhere\n```")])
    assert rows["loads"][contracts.REJECT_REASON] is None
    assert verification(rows["loads"]) == {"outcome": "passed", "tests": "none", "network": "namespace", "filesystem": "isolated"}
    assert rows["loads"][contracts.TESTS] is None
    assert rows["breaks"][contracts.REJECT_REASON] == "crashed"
    assert "ModuleNotFoundError" in json.loads(rows["breaks"][contracts.REJECT_DETAIL])["detail"]


def test_rows_of_other_domains_pass_untouched_when_off_or_without_a_program() -> None:
    looping = code_row("looping", "```python\nwhile True: pass\n```", domain="general")
    prose = code_row("prose", "The square of 4 is 16.", domain="math")
    out = verify([looping, prose], python_in_other_domains=False)
    assert out["looping"][contracts.REJECT_REASON] is None and out["looping"][contracts.META] == looping[contracts.META]
    assert out["looping"][contracts.TESTS] is None
    out = verify([prose])["prose"]  # on by default, but there is nothing to run: not a no_code reject
    assert out[contracts.REJECT_REASON] is None and out[contracts.META] == prose[contracts.META]


# "Calculate the square of a number using a class method" is a math row; its program raised.
BROKEN_CLASS_METHOD = (
    "```python\nclass Square:\n    def __init__(self, number):\n        self.number = number\n\n"
    "    @classmethod\n    def square(cls, number):\n        return cls(cls.number ** 2)\n\n"
    "square = Square(4)\nprint(square.square())\n```"
)


def test_python_programs_in_other_domains_answers_are_run_too() -> None:
    rows = verify([code_row("math", BROKEN_CLASS_METHOD, domain="math"), code_row("fine", ADD, domain="math")])
    assert rows["math"][contracts.REJECT_REASON] == "crashed"
    assert "TypeError" in json.loads(rows["math"][contracts.REJECT_DETAIL])["detail"]
    assert rows["fine"][contracts.REJECT_REASON] is None and verification(rows["fine"])["outcome"] == "passed"


# A derived class printing `self.__name__`: fine while only its definitions load, an
# AttributeError when its example under the `__main__` guard runs (a quickstart shard row).
MAIN_BLOCK_RAISES = (
    "```python\nclass Base:\n    def hello(self):\n        print(f'{self.__name__} says hello')\n\nif __name__ == \"__main__\":\n    Base().hello()\n```"
)
WAITS_FOR_INPUT = '```python\ndef greet(name):\n    return "Hello, " + name\n\nif __name__ == "__main__":\n    print(greet(input("Name: ")))\n```'


def test_an_example_said_to_raise_must_raise_and_may_end_the_program() -> None:
    holds = "```python\ndef div(a, b):\n    return a / b\n\nprint(div(4, 2))  # Output: 2.0\ndiv(1, 0)  # raises ZeroDivisionError\n```"
    never = (
        "```python\ndef assert_statement(expression):\n    if not expression:\n        raise AssertionError(expression)\n\n"
        'assert_statement("10 + 20 > 30")  # This will raise an AssertionError\n```'
    )
    rows = verify([code_row("holds", holds), code_row("never", never)])
    assert rows["holds"][contracts.REJECT_REASON] is None and verification(rows["holds"])["printed_claims"] == 2
    assert rows["never"][contracts.REJECT_REASON] == "tests_failed"
    assert "runs without an exception" in json.loads(rows["never"][contracts.REJECT_DETAIL])["detail"]


def test_without_tests_the_program_runs_as_a_script_its_main_block_included() -> None:
    rows = verify([code_row("main", MAIN_BLOCK_RAISES), code_row("input", WAITS_FOR_INPUT)])
    assert rows["main"][contracts.REJECT_REASON] == "crashed"
    assert "AttributeError" in json.loads(rows["main"][contracts.REJECT_DETAIL])["detail"]
    assert rows["input"][contracts.REJECT_REASON] is None  # waiting for input it cannot have is no fault
    assert verify([code_row("main", MAIN_BLOCK_RAISES)], run_as_script=False)["main"][contracts.REJECT_REASON] is None


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("You can add them with the + operator.", "no code block"),
        ("```python\ndef add(a, b):\n    return a +", "never closed"),
    ],
)
def test_a_code_answer_without_a_python_program_is_rejected_as_no_code(answer: str, problem: str) -> None:
    row = verify([code_row("none", answer)])["none"]
    assert row[contracts.REJECT_REASON] == "no_code"
    assert problem in json.loads(row[contracts.REJECT_DETAIL])["detail"]


def test_code_in_other_languages_is_kept_unrun_or_rejected_as_configured() -> None:
    answer = "```javascript\nconst add = (a, b) => a + b;\n```"
    kept = verify([code_row("js", answer)])["js"]
    assert kept[contracts.REJECT_REASON] is None
    assert verification(kept) == {"outcome": "not_run", "why": "code blocks in javascript, none in Python"}
    assert verify([code_row("js", answer)], other_languages="reject")["js"][contracts.REJECT_REASON] == "no_code"


def test_each_row_gets_its_own_verdict_when_sandboxes_run_in_parallel() -> None:
    rows = [code_row(f"ok{i}", ADD, tests=ADD_TESTS) if i % 2 == 0 else code_row(f"wrong{i}", WRONG_ADD, tests=ADD_TESTS) for i in range(6)]
    for workers in (1, 3):
        verdicts = {row_id: row[contracts.REJECT_REASON] for row_id, row in verify(rows, workers=workers).items()}
        assert verdicts == {row["id"]: (None if row["id"].startswith("ok") else "tests_failed") for row in rows}


# --- the test writer -------------------------------------------------------------------------------
def written(stage: VerifyCode, rows: list[dict], replies: list[str | None], errors: list[str | None]) -> pa.Table:
    """Rows as they leave apply_llm: the rendered request plus the test writer's reply."""
    batch = stage.render_requests(pa.Table.from_pylist(rows))
    return (
        batch.append_column(contracts.GENERATED_TEXT, pa.array(replies, pa.string()))
        .append_column(contracts.LLM_ERROR, pa.array(errors, pa.string()))
        .append_column(contracts.LLM_MODEL, pa.array(["writer"] * len(rows), pa.string()))
    )


def test_the_test_writer_sees_the_instruction_and_the_program_only() -> None:
    stage = make_stage(test_writer="writer")
    batch = stage.render_requests(pa.Table.from_pylist([code_row("ok", ADD)]))
    prompt = json.loads(batch[contracts.MESSAGES][0].as_py())[-1]["content"]
    assert "Write a function add(a, b)" in prompt
    assert "def add(a, b):\n    return a + b" in prompt
    assert "Call `add(2, 3)`" not in prompt  # the answer's prose is not the code


def test_tests_the_writer_wrote_are_run_and_recorded() -> None:
    stage = make_stage(test_writer="writer")
    rows = [code_row("ok", ADD), code_row("wrong", WRONG_ADD)]
    reply = f"```python\n{ADD_TESTS}```"
    out = {row["id"]: row for row in stage.transform(written(stage, rows, [reply, reply], [None, None])).to_pylist()}
    assert out["ok"][contracts.REJECT_REASON] is None
    assert out["ok"][contracts.TESTS] == ADD_TESTS
    step = verification(out["ok"])
    assert step["tests"] == "model"
    assert step["test_writer"] == {"model": "writer", "template_id": "verify_code/write_tests", "template_version": 1}
    assert out["wrong"][contracts.REJECT_REASON] == "tests_failed"
    assert json.loads(out["wrong"][contracts.REJECT_DETAIL])["tests"] == "model"


def test_rows_the_writer_wrote_no_tests_for_are_rejected_never_passed() -> None:
    stage = make_stage(test_writer="writer")
    rows = [code_row("failed", ADD), code_row("prose", ADD)]
    out = {
        row["id"]: row for row in stage.transform(written(stage, rows, [None, "The function looks right to me."], ["HTTP 503 after 3 tries", None])).to_pylist()
    }
    assert out["failed"][contracts.REJECT_REASON] == "llm_error"
    assert "503" in out["failed"][contracts.REJECT_DETAIL]
    assert out["prose"][contracts.REJECT_REASON] == "parse_error"
    assert json.loads(out["prose"][contracts.REJECT_DETAIL])["raw"] == "The function looks right to me."


def test_recorded_test_writer_replies_become_tests_that_run() -> None:
    """Qwen2.5-Coder-0.5B's replies (recorded/synthesis_replies.json) to the write_tests prompt: it
    writes asserts until its token limit, so most replies end inside their block."""
    stage = make_stage(test_writer="writer")
    recorded = RECORDED["verify_code"]
    rows = [code_row(entry["id"], entry["answer"]) | {contracts.INSTRUCTION: entry["instruction"]} for entry in recorded]
    out = stage.transform(written(stage, rows, [entry["reply"] for entry in recorded], [entry["error"] for entry in recorded])).to_pylist()
    ran = [row for row in out if row[contracts.REJECT_REASON] not in ("parse_error", "llm_error")]
    assert len(ran) / len(out) >= WRITER_PARSED_FLOOR, [row[contracts.REJECT_DETAIL] for row in out]
    for row in ran:
        assert row[contracts.TESTS] and "assert" in row[contracts.TESTS]
        assert row[contracts.REJECT_REASON] in (None, "tests_failed"), row[contracts.REJECT_DETAIL]
        assert (verification(row) if row[contracts.REJECT_REASON] is None else json.loads(row[contracts.REJECT_DETAIL]))["tests"] == "model"


def test_only_code_rows_with_a_program_and_no_tests_are_sent_to_the_writer() -> None:
    domains = frozenset({"code"})
    assert needs_written_tests(code_row("a", ADD), domains=domains)
    assert not needs_written_tests(code_row("b", ADD, tests=ADD_TESTS), domains=domains)
    assert not needs_written_tests(code_row("c", "No code here."), domains=domains)
    assert not needs_written_tests(code_row("d", ADD, domain="general"), domains=domains)


def test_the_writer_and_its_template_are_declared_only_when_configured() -> None:
    assert make_stage().models_used() == () and make_stage().prompt_ids() == ()
    stage = make_stage(test_writer="writer")
    assert stage.models_used() == ("writer",) and stage.prompt_ids() == ("verify_code/write_tests",)


# --- through the runner ----------------------------------------------------------------------------
def test_verify_code_through_the_runner_counts_each_reason(tmp_path: Path, ray_session) -> None:
    rows = [
        code_row("ok", ADD, tests=ADD_TESTS),
        code_row("wrong", WRONG_ADD, tests=ADD_TESTS),
        code_row("loop", "```python\nwhile True:\n    pass\n```", tests=ADD_TESTS),
        code_row("none", "Use the + operator."),
        code_row("prose", "Paris is the capital of France.", domain="general"),
    ]
    run = run_after_answers(tmp_path, rows, "verify_code", {"sandbox": SANDBOX}, source=CodeAnswerRows)
    assert set(run.accepted) == {"ok", "prose"}
    assert {row_id: row[contracts.REJECT_REASON] for row_id, row in run.rejected.items()} == {"wrong": "tests_failed", "loop": "timeout", "none": "no_code"}
    assert run.manifest["rejected"] == {"no_code": 1, "tests_failed": 1, "timeout": 1}
    assert run.accepted["ok"][contracts.TESTS] == ADD_TESTS


def fake_writer_reply(body: dict) -> str:
    """The fake test writer: tests of `add` for any prompt that shows its code."""
    prompt = body["messages"][-1]["content"]
    assert "def add(a, b)" in prompt
    return f"Here are the tests:\n```python\n{ADD_TESTS}```"


def test_a_test_writer_behind_an_openai_server_writes_the_tests_for_rows_without_them(tmp_path: Path, ray_session) -> None:
    server = FakeChatServer(reply=fake_writer_reply).start()
    try:
        rows = [code_row("ok", ADD), code_row("wrong", WRONG_ADD), code_row("prose", "Paris.", domain="general")]
        models = {"writer": {"engine": "openai", "base_url": server.base_url, "model": "fake", "max_retries": 1, "backoff_s": 0.1, "timeout_s": 10}}
        run = run_after_answers(tmp_path, rows, "verify_code", {"sandbox": SANDBOX, "test_writer": "writer"}, job={"models": models})
    finally:
        server.stop()
    assert server.answered == 2  # the general row never went to the writer
    assert set(run.accepted) == {"ok", "prose"}
    assert run.accepted["ok"][contracts.TESTS] == ADD_TESTS
    assert json.loads(run.accepted["ok"][contracts.META])["verify_code"]["tests"] == "model"
    assert run.rejected["wrong"][contracts.REJECT_REASON] == "tests_failed"
    assert run.manifest["rejected"] == {"tests_failed": 1}


def test_secrets_a_program_reads_reach_no_output_row(tmp_path: Path, ray_session) -> None:
    """The issue's case: code answers that read a canary in HOME, a fake Ray token under /tmp and
    the run directory (its own Parquet files included), print what they read and quote it in a
    failing test; in bubblewrap's sandbox and on the host's file system."""
    run_dir = tmp_path / "run"
    with planted_secrets(run_dir) as files:
        program = f"```python\n{reading_program(list(files.values()), also_glob=[f'{run_dir}/**/*'])}```"
        rows = [code_row("prints", program), code_row("asserts", program, tests="assert not found, found\n")]
        runs = [
            run_after_answers(tmp_path, rows, "verify_code", {"sandbox": {**SANDBOX, "filesystem": filesystem}}, source=CodeAnswerRows, name=filesystem)
            for filesystem in ("isolated", "host")
        ]
        tokens = [path.read_text() for path in files.values()]
    stored = [json.dumps(row, default=str) for run in runs for row in [*run.accepted.values(), *run.rejected.values()]]
    assert len(stored) == 4
    assert not [token for token in tokens if any(token in row for row in stored)]
    for run, filesystem in zip(runs, ("isolated", "host")):
        # The guard refuses the first read outside, wherever the program runs.
        assert {row[contracts.REJECT_REASON] for row in run.rejected.values()} == {"sandbox_violation"} and not run.accepted
        for row in run.rejected.values():
            detail = json.loads(row[contracts.REJECT_DETAIL])
            assert detail["filesystem"] == filesystem
            assert "outside the sandbox's directory and the standard library" in detail["detail"]


def test_a_failing_programs_detail_is_capped_and_stripped_of_credentials() -> None:
    token = "f" * 8 + "0123456789abcdef" * 4
    program = f"print('session token {token}')\nraise ValueError('x' * 5000 + ' api_key=sk-{token}')\n"
    row = verify([code_row("leaky", f"```python\n{program}```", tests=ADD_TESTS)])["leaky"]
    assert row[contracts.REJECT_REASON] == "crashed"
    detail = json.loads(row[contracts.REJECT_DETAIL])
    assert token not in row[contracts.REJECT_DETAIL]
    assert "[redacted]" in detail["output_tail"]
    assert len(detail["detail"]) <= 1000 and len(detail["output_tail"]) <= 500


# --- the test writer on the real embedded model (SmolLM2-135M, the engine tests' model) ------------


@pytest.fixture(scope="module")
def written_by_the_model(tmp_path_factory, ray_session) -> StageRun:
    """answer -> verify_code with the default embedded model writing the tests: one job, one engine start."""
    rows = [code_row(record["id"], record["answer"]) | {contracts.INSTRUCTION: record["instruction"]} for record in INPUTS["verify_code"]]
    rows.append(code_row("prose", "Paris is the capital of France.", domain="general"))
    section = {"sandbox": SANDBOX, "test_writer": "embedded", "sampling": {"max_tokens": 256}}
    return run_after_answers(tmp_path_factory.mktemp("writer"), rows, "verify_code", section)


@pytest.mark.engine
def test_the_embedded_model_writes_tests_that_run_for_most_code_rows(written_by_the_model) -> None:
    run = written_by_the_model
    code_rows = len(INPUTS["verify_code"])
    assert run.manifest["rows_in"] == code_rows + 1 == len(run.accepted) + len(run.rejected)
    assert run.manifest["llm"]["embedded"]["requests"] == code_rows, "only the code rows went to the writer"
    assert "prose" in run.accepted
    unparsed = [row for row in run.rejected.values() if row[contracts.REJECT_REASON] in ("parse_error", "llm_error")]
    assert 1 - len(unparsed) / code_rows >= WRITER_PARSED_FLOOR, [row[contracts.REJECT_DETAIL] for row in unparsed]
    for row in run.accepted.values():
        if row["id"] != "prose":
            assert verification(row)["tests"] == "model" and row[contracts.TESTS], "a kept code row ran the tests the model wrote"
