"""How often code answers' output comments are wrong: every distinct code answer that reached
`consistency` in the given runs, its printed claims checked in the sandbox as verify_code does.

    PYTHONPATH=. .venv/bin/python -m tests.benchmarks.printed_claims RUN_DIR [RUN_DIR ...]

Prints one line per program with claims (kept, or the failed claim) and the totals.
"""

import sys
from pathlib import Path

import pyarrow.parquet as pq

from synthmix.quality.code_extraction import find_python_code
from synthmix.quality.printed_claims import claim_tests, claimed_outputs
from synthmix.quality.sandbox import Outcome, SandboxLimits, run_sandboxed


def code_answers(run_dirs: list[Path]) -> list[dict]:
    seen, rows = set(), []
    for run_dir in run_dirs:
        for part in sorted((run_dir / "consistency").glob("part-*.parquet")):
            for row in pq.read_table(part).to_pylist():
                if row.get("domain") == "code" and row.get("answer") and row["answer"] not in seen:
                    seen.add(row["answer"])
                    rows.append(row)
    return rows


def main(run_dirs: list[Path]) -> None:
    programs = claimed = failed = 0
    for row in code_answers(run_dirs):
        code = find_python_code(row["answer"]).python
        if not code:
            continue
        programs += 1
        tests = claim_tests(code)
        if tests is None:
            continue
        claimed += 1
        result = run_sandboxed(code, tests, SandboxLimits())
        if result.outcome is Outcome.PASSED:
            print(f"kept    {list(claimed_outputs(code).values())[:3]} | {row['instruction'][:70]}")
        else:
            failed += result.outcome is Outcome.TESTS_FAILED
            print(f"{result.outcome.value:<13} {result.detail.splitlines()[-1][:160]} | {row['instruction'][:70]}")
    print(f"{programs} programs, {claimed} with printed claims, {failed} with a claim that is wrong (others: crashed as before)")


if __name__ == "__main__":
    main([Path(arg) for arg in sys.argv[1:]] or sys.exit(__doc__))
