"""Are evolve's "harder" rewrites harder, before any filter chooses? Every rewrite whose parent
was answered in the same run, set against it on the agreement of their sampled answers, read
from `gather_samples` (all answered instructions, before `consistency` rejects split votes: the
difficulty stage sees only pairs that passed consistency and critique, which leaves out the
rewrites that split their samples, the very ones that are harder).

    PYTHONPATH=. .venv/bin/python -m tests.benchmarks.evolution_difficulty RUN_DIR

Prints, per operation: pairs measured, rewrites with lower / equal / higher agreement, and the
mean change in points with its 95% t interval. `jobs/evolve_eval.yaml` makes such a run.
"""

import sys
from collections import defaultdict
from pathlib import Path

import pyarrow.parquet as pq

from synthmix.quality.difficulty import mean_interval, measure_answers
from synthmix.stages.difficulty import evolved_from


def main(run_dir: Path) -> None:
    rows = [row for part in sorted((run_dir / "gather_samples").glob("part-*.parquet")) for row in pq.read_table(part).to_pylist()]
    agreement = {row["parent_id"]: measure_answers(row["samples"], objective=bool(row["objective"])).agreement for row in rows}
    changes: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        parent = evolved_from(row["meta"])
        if row["evolution_op"] and parent and agreement.get(parent) is not None and agreement[row["parent_id"]] is not None:
            changes[row["evolution_op"]].append(agreement[row["parent_id"]] - agreement[parent])
    changes["all"] = [value for values in list(changes.values()) for value in values]
    print(f"{'operation':<16} {'pairs':>5} {'lower':>5} {'equal':>5} {'higher':>6}  agreement change, points [95% t interval]")
    for operation, values in sorted(changes.items(), key=lambda item: (item[0] == "all", item[0])):
        interval = mean_interval(values)
        lower, higher = sum(value < 0 for value in values), sum(value > 0 for value in values)
        print(
            f"{operation:<16} {len(values):>5} {lower:>5} {len(values) - lower - higher:>5} {higher:>6}  "
            f"{100 * interval.estimate:+.1f} [{100 * interval.low:+.1f}, {100 * interval.high:+.1f}]"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1])) if len(sys.argv) == 2 else sys.exit(__doc__)
