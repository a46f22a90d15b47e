"""What today's checks would do to shard rows a person has read: every check that needs no model,
run on the quickstart's shipped rows whose verdict is known.

    PYTHONPATH=. .venv/bin/python -m tests.benchmarks.read_rows [ROWS.jsonl] [--job jobs/quickstart.yaml]

The rows (tests/benchmarks/data/read_shard_rows.jsonl) are distinct shard rows of three
quickstart runs, each read by hand: `good` is whether I would train on it, `why` says what is
wrong with the others (docs/recipe.md has the readings). The checks run as the stages run
them, with the job's settings: synthesize's instruction checks (the seed passage stands in for
the seed), the answer stage's, verify_code's sandbox, and critique's checks before its judge.
A row is counted under the first check that rejects it, in pipeline order.

Prints, per check, the good and bad rows it rejects, then what survives: how many rows, and the
share of them that are sound, the number #26 asks to reach 80%. Then the survivors' sound share
per task type and evolution operation, so a recipe choice can be read from it.
"""

import argparse
import json
from collections import Counter, defaultdict
from pathlib import Path

import pyarrow as pa
import yaml

from synthmix.pipeline import contracts
from synthmix.pipeline.stage import StageContext
from synthmix.quality.answer_checks import check_cut_off, check_is_answer
from synthmix.quality.instruction_checks import (
    check_answers_itself,
    check_copies_seed,
    check_has_quantities,
    check_is_request,
    check_self_contained,
)
from synthmix.quality.task_types import classify_task_type
from synthmix.stages.critique import Critique, CritiqueParams
from synthmix.stages.verify_code import VerifyCode, VerifyCodeParams

ROWS = Path(__file__).parent / "data" / "read_shard_rows.jsonl"


def instruction_check(row: dict) -> tuple[str, str] | None:
    """Synthesize's checks on the instruction alone (a rewrite gets the same ones in evolve)."""
    instruction = row["instruction"]
    found = (
        check_is_request(instruction)
        or check_self_contained(instruction)
        or check_answers_itself(instruction)
        or check_has_quantities(instruction, classify_task_type(instruction))
        or check_copies_seed(instruction, row.get("passage") or "")
    )
    return (f"synthesize:{found[0].value}", found[1]) if found else None


def answer_check(row: dict) -> tuple[str, str] | None:
    found = check_is_answer(row["answer"], row["instruction"]) or check_cut_off(row["answer"])
    return (f"answer:{found[0].value}", found[1]) if found else None


def stage_rejects(stage, table: pa.Table, name: str) -> list[tuple[str, str] | None]:
    out = stage.transform(table) if isinstance(stage, VerifyCode) else stage.check_pairs(table)
    reason_column = contracts.REJECT_REASON if isinstance(stage, VerifyCode) else "__critique_check_reason"
    detail_column = contracts.REJECT_DETAIL if isinstance(stage, VerifyCode) else "__critique_check_detail"
    return [(f"{name}:{reason}", detail) if reason else None for reason, detail in zip(out[reason_column].to_pylist(), out[detail_column].to_pylist())]


def first_rejects(rows: list[dict], job: dict) -> list[tuple[str, str] | None]:
    sections = job.get("stages_params", job)
    context = StageContext(run_dir=Path("unused"), stage_name="benchmark", models={})
    table = pa.Table.from_pylist(
        [
            {
                contracts.ID: str(index),
                contracts.INSTRUCTION: row["instruction"],
                contracts.ANSWER: row["answer"],
                contracts.DOMAIN: row["domain"],
                contracts.LANG: row["lang"],
                contracts.TESTS: None,
                contracts.META: None,
            }
            for index, row in enumerate(rows)
        ]
    )
    verify = VerifyCode(VerifyCodeParams(**(sections.get("verify_code") or {})), context)
    critique_params = {key: value for key, value in (sections.get("critique") or {}).items() if key in CritiqueParams.model_fields}
    critique = Critique(CritiqueParams(**critique_params), context)
    verified, checked = stage_rejects(verify, table, "verify_code"), stage_rejects(critique, table, "critique")
    return [
        instruction_check(row) or answer_check(row) or verify_reject or critique_reject for row, verify_reject, critique_reject in zip(rows, verified, checked)
    ]


def share(good: int, total: int) -> str:
    return f"{good}/{total} ({good / total:.0%})" if total else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", nargs="?", type=Path, default=ROWS)
    parser.add_argument("--job", type=Path, default=Path("jobs/quickstart.yaml"))
    parser.add_argument("--verbose", action="store_true", help="print each rejected row's detail")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.rows.read_text(encoding="utf-8").splitlines() if line.strip()]
    job = yaml.safe_load(args.job.read_text(encoding="utf-8"))
    rejects = first_rejects(rows, job)

    by_check: dict[str, Counter] = defaultdict(Counter)
    for row, reject in zip(rows, rejects):
        if reject:
            by_check[reject[0]]["good" if row["good"] else "bad"] += 1
            if args.verbose or row["good"]:
                verdict = "GOOD row rejected" if row["good"] else "bad row rejected"
                print(f"{verdict}: {reject[0]}: {row['instruction'][:70]!r}\n    {str(reject[1])[:200]}")
    print(f"\n{len(rows)} rows read, {sum(r['good'] for r in rows)} sound ({args.rows.name}; checks as in {args.job})\n")
    print(f"{'check (first to reject)':<40} {'bad':>4} {'good':>5}")
    for check, counts in sorted(by_check.items(), key=lambda item: -item[1]["bad"]):
        print(f"{check:<40} {counts['bad']:>4} {counts['good']:>5}")
    kept = [row for row, reject in zip(rows, rejects) if reject is None]
    print(f"\nkept {len(kept)} of {len(rows)}; sound among kept: {share(sum(r['good'] for r in kept), len(kept))}")
    for key in ("task_type", "evolution_op"):
        groups: dict[str, list[bool]] = defaultdict(list)
        for row in kept:
            groups[row.get(key) or "-"].append(row["good"])
        print(f"  by {key}: " + ", ".join(f"{name} {share(sum(v), len(v))}" for name, v in sorted(groups.items())))


if __name__ == "__main__":
    main()
