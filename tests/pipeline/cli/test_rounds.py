"""A job with targets runs in rounds (pipeline/cli/rounds.py), on the fake engine: it stops near its
targets with fewer seeds than a full run, drops near-duplicates of earlier rounds' pairs, and a
run killed mid-round resumes to the same counts. The real engine's run is in docs/targets.md."""

import os
import signal
import time
from pathlib import Path

import pyarrow as pa
import pytest

from synthmix.pipeline import contracts
from synthmix.pipeline.cli.rounds import ACCEPTED, CrossRoundDedup, drop_cross_round_duplicates, read_rounds, round_dir, rounds_summary_line, run_in_rounds
from synthmix.pipeline.llm import engine_pool
from synthmix.pipeline.store import StageDir
from synthmix.stages.registry import STAGES
from tests.pipeline.cli.rounds_job import TARGETS, answer_for, fake_backend, make_job, write_topics
from tests.pipeline.test_resume import start_job

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def fake_engine(monkeypatch):
    monkeypatch.setattr(engine_pool, "BACKEND_FACTORY", fake_backend())


def run_rounds(tmp_path, topics, name="run", **job):
    corpus = tmp_path / f"{name}.jsonl"
    if not corpus.exists():  # rewritten, the seeds' files would change and rounds.json refuse them
        write_topics(corpus, topics)
    lines = []
    state = run_in_rounds(make_job(tmp_path / name, corpus, **job), STAGES, job_dir=tmp_path, log=lines.append)
    return state, lines


def final_pairs(run_dir: Path) -> dict[str, int]:
    """The pairs the shard stage read, per domain."""
    counts = {}
    for path in StageDir(run_dir, "dedup_samples").part_files():
        for domain in pa.parquet.read_table(path, columns=["domain"])["domain"].to_pylist():
            counts[domain] = counts.get(domain, 0) + 1
    return counts


def test_targets_are_met_within_20_percent_with_fewer_seeds_than_a_full_run(tmp_path, ray_session, fake_engine):
    state, lines = run_rounds(tmp_path, list(range(24)), targets=TARGETS)
    assert state["stop"]["reason"] == "targets_met"
    used = sum(entry["seeds"] for entry in state["rounds"])
    assert used < 24 and state["rounds"][0]["seeds"] == 4, "the pilot is 4 chunks; the targets need fewer than all 24"
    pairs = final_pairs(tmp_path / "run")
    for domain, target in (("math", 10), ("code", 5)):
        assert target <= pairs[domain] <= 1.2 * target, (domain, pairs)
    # The shards are made once, over exactly those pairs.
    assert StageDir(tmp_path / "run", "tokenize").manifest()["rows_in"] == sum(pairs.values())
    progress = [line for line in lines if line.startswith("round ")]
    assert len(progress) == len(state["rounds"]) and "math " in progress[-1] and "/10 pairs" in progress[-1]
    assert any(line.startswith("rounds stopped: targets_met") for line in lines)
    assert rounds_summary_line(tmp_path / "run").startswith(f"rounds: {len(state['rounds'])} done over {used} of 24 seed chunks, stopped: targets_met")
    # A rerun redoes nothing: no round, no shard stage.
    recorded = read_rounds(tmp_path / "run")
    again, lines = run_rounds(tmp_path, list(range(24)), targets=TARGETS)
    assert again == recorded and not any("running" in line for line in lines), lines


def test_a_budget_stops_the_rounds_and_says_so(tmp_path, ray_session, fake_engine):
    state, lines = run_rounds(tmp_path, list(range(24)), targets=TARGETS, budget={"generated_tokens": 300})
    assert state["stop"]["reason"] == "budget_spent" and len(state["rounds"]) == 1
    assert any(line.startswith("rounds stopped: budget_spent") and "/300 generated tokens" in line for line in lines)


def test_near_duplicates_of_an_earlier_rounds_pairs_are_dropped_and_counted(tmp_path, ray_session, fake_engine):
    # 16 chunks, 8 topics twice: every topic's pairs are made twice, in one round or in two.
    state, _ = run_rounds(tmp_path, list(range(8)) * 2, targets={"math": {"pairs": 100}, "code": {"pairs": 100}})
    assert state["stop"]["reason"] == "seeds_exhausted"
    across = sum(entry["cross_round_duplicates"] for entry in state["rounds"])
    assert across > 0, "some topic's second chunk must land in a later round than its first"
    assert final_pairs(tmp_path / "run") == {"math": 8, "code": 4}, "one pair per instruction, whichever round made it"
    rejects = pa.concat_tables([pa.parquet.read_table(path) for path in StageDir(tmp_path / "run", "dedup_samples").reject_files()])
    assert rejects[contracts.REJECT_REASON].to_pylist() == ["near_duplicate"] * across


def test_only_rows_like_an_earlier_rounds_are_dropped_not_duplicates_within_the_round():
    earlier = pa.table(
        {contracts.ID: ["a", "b"], contracts.INSTRUCTION: ["Calculate case 1.", "Calculate case 2."], contracts.ANSWER: [answer_for(1), answer_for(2)]}
    )
    current = pa.table(
        {
            contracts.ID: ["c", "d", "e"],
            contracts.INSTRUCTION: ["Calculate case 1.", "Calculate case 3.", "Calculate case 3."],
            contracts.ANSWER: [answer_for(1), answer_for(3), answer_for(3)],
        }
    )
    kept, dropped = drop_cross_round_duplicates(earlier, current, CrossRoundDedup())
    assert kept[contracts.ID].to_pylist() == ["d", "e"]
    assert dropped[contracts.ID].to_pylist() == ["c"] and "near-duplicate of a" in dropped["reject_detail"][0].as_py()


def test_a_run_killed_mid_round_resumes_in_that_round_and_ends_with_an_uninterrupted_runs_counts(tmp_path, ray_session, monkeypatch):
    monkeypatch.setattr(engine_pool, "BACKEND_FACTORY", fake_backend())
    run_rounds(tmp_path, list(range(24)), name="reference", targets=TARGETS)
    reference = read_rounds(tmp_path / "reference")

    corpus = tmp_path / "killed.jsonl"
    write_topics(corpus, list(range(24)))
    run_dir = tmp_path / "killed"
    process = start_job(run_dir, corpus, module="tests.pipeline.cli.rounds_job")
    second = round_dir(run_dir, 2)
    deadline = time.monotonic() + 300
    # Synthesize has begun in round 2 (its fake engine takes seconds to start): kill there.
    while time.monotonic() < deadline and not (second / "synthesize" / "_progress.json").exists():
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)  # the driver and its embedded Ray, mid-round 2
    process.wait()
    state = read_rounds(run_dir)
    assert [entry["status"] for entry in state["rounds"]] == ["done", "running"], state
    first_round = (round_dir(run_dir, 1) / ACCEPTED).stat().st_mtime_ns

    rerun = start_job(run_dir, corpus, module="tests.pipeline.cli.rounds_job")
    assert rerun.wait(timeout=300) == 0, rerun.stderr.read().decode()[-3000:]
    assert (round_dir(run_dir, 1) / ACCEPTED).stat().st_mtime_ns == first_round, "a finished round was redone"
    resumed = read_rounds(run_dir)
    assert [(r["seeds"], r["kept"], r["cross_round_duplicates"]) for r in resumed["rounds"]] == [
        (r["seeds"], r["kept"], r["cross_round_duplicates"]) for r in reference["rounds"]
    ]
    assert resumed["stop"] == reference["stop"]
    assert final_pairs(run_dir) == final_pairs(tmp_path / "reference")
    assert StageDir(run_dir, "tokenize").manifest()["rows_in"] == StageDir(tmp_path / "reference", "tokenize").manifest()["rows_in"]
