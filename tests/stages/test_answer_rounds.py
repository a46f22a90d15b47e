"""answer with `min_agreement`: samples drawn in rounds until the consistency vote is settled.

Real jobs (answer, gather_samples, consistency through the runner) on a fake engine whose reply
is a function of the instruction and the sample's seed, so two runs draw the same samples and
their rows can be compared: rounds against drawing every sample, and a run whose engine died in
the second round, then resumed, against an uninterrupted one."""

from __future__ import annotations

import functools
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline import contracts
from synthmix.pipeline.config import ConfigError, parse_job
from synthmix.pipeline.contracts import INSTRUCTION_FIELDS
from synthmix.pipeline.llm import engine_pool
from synthmix.pipeline.llm.engine_replica import Progress
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.store import StageDir
from synthmix.stages.registry import STAGES
from tests.pipeline.fake_engine import EngineGone, FakeBackend
from tests.stages.answer_rows import ParquetRows


class InstructionRows(ParquetRows):
    name = "instructions"
    output_fields = INSTRUCTION_FIELDS


REGISTRY = {**STAGES, "instructions": InstructionRows}
# Each objective instruction's samples: AGREE always answers 12; SPLIT answers 12, 13 or 14 by
# the sample's seed; MUTE never states an answer; open instructions get one sample.
KINDS = ["AGREE", "SPLIT", "MUTE", "SPLIT", "AGREE", "SPLIT"]


def instruction_rows(count: int) -> list[dict]:
    rows = []
    for index in range(count):
        kind = KINDS[index % len(KINDS)] if index % 5 else "OPEN"
        rows.append(
            {
                "id": f"i{index}", "seed_id": f"s{index}", "parent_id": f"s{index}", "source": "test", "domain": "math",
                "lang": "en", "instruction": f"{kind} question {index}: what is the total of the numbers?", "task_type": "math",
                "objective": kind != "OPEN", "evolution_op": "", "evolution_depth": 0, "meta": None, "source_id": None, "origin": None,
            }
        )  # fmt: skip
    return rows


class VotingBackend(FakeBackend):
    """Replies by the instruction's kind and the request's seed; `die_on_third_sample` makes the
    engine die when asked for that many third samples (the second round's), as a crash would."""

    def __init__(self, settings, *, die_on_third_sample: int | None = None, **faults):
        super().__init__(settings, **faults)
        self.die_on_third_sample = die_on_third_sample
        self.asked: dict[str, int] = {}

    async def stream(self, request_id, messages, sampling, schema):
        content = messages[-1]["content"]
        self.asked[content] = self.asked.get(content, 0) + 1
        if self.die_on_third_sample is not None and sum(count >= 3 for count in self.asked.values()) >= self.die_on_third_sample:
            raise EngineGone("engine core process exited (fake)")
        if "AGREE" in content:
            text = "Adding them up gives \\boxed{12}."
        elif "SPLIT" in content:
            text = f"Adding them up gives \\boxed{{{12 + sampling['seed'] % 3}}}."
        elif "MUTE" in content:
            text = "Adding them up is left to the reader, who will surely manage it without any help."
        else:
            text = "A plain explanation of how totals are formed, step by step."
        yield Progress(finished=True, text=text, prompt_tokens=20, generated_tokens=len(text.split()))


def make_job(root: Path, name: str, *, min_agreement: float | None, rows: int = 20) -> object:
    source = root / "instructions.parquet"
    pq.write_table(pa.Table.from_pylist(instruction_rows(rows), schema=pa.schema(INSTRUCTION_FIELDS)), source)
    answer = {"samples": 3, "min_agreement": min_agreement}
    return parse_job(
        {
            "name": name,
            "run_dir": str(root / name),
            "models": {"embedded": {"engine": "embedded", "batch_size": 4}},
            "stages": ["instructions", "answer", "gather_samples", "consistency"],
            "instructions": {"path": str(source)},
            "answer": {key: value for key, value in answer.items() if value is not None},
            "consistency": {"min_agreement": 0.6},
        },
        source=f"{name}.yaml",
    )


def read_rows(run_dir: Path, stage: str, rejects: bool = False) -> dict[str, dict]:
    stage_dir = StageDir(run_dir, stage)
    files = stage_dir.reject_files() if rejects else stage_dir.part_files()
    return {row["id"]: row for path in files for row in pq.read_table(path).to_pylist()}


def verdicts(run_dir: Path) -> dict[str, tuple]:
    """Per instruction: kept with which answer, or rejected with which reason."""
    kept = {row[contracts.PARENT_ID]: ("kept", row[contracts.ANSWER]) for row in read_rows(run_dir, "consistency").values()}
    rejected = {row[contracts.PARENT_ID]: ("rejected", row[contracts.REJECT_REASON]) for row in read_rows(run_dir, "consistency", rejects=True).values()}
    return {**kept, **rejected}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, ray_session):
    """The same job drawing every sample, and in rounds (each run takes a while: run them once)."""
    root = tmp_path_factory.mktemp("rounds")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine_pool, "BACKEND_FACTORY", VotingBackend)
        every = make_job(root, "every", min_agreement=None)
        run_job(every, REGISTRY, log=lambda line: None)
        rounds = make_job(root, "rounds", min_agreement=0.6)
        log = []
        run_job(rounds, REGISTRY, log=log.append)
    return every.resolved_run_dir(), rounds.resolved_run_dir(), log


def test_rounds_keep_and_reject_exactly_what_drawing_every_sample_does(runs):
    every, rounds, _ = runs
    assert verdicts(rounds) == verdicts(every)
    assert {verdict[0] for verdict in verdicts(every).values()} == {"kept", "rejected"}, "the jobs should both keep and reject"


def test_rounds_draw_fewer_samples_and_generate_fewer_tokens(runs):
    every, rounds, log = runs
    drawn_every = StageDir(every, "answer").manifest()
    drawn_rounds = StageDir(rounds, "answer").manifest()
    # 16 objective instructions: the agreeing ones stop at two samples, the split ones mostly need three.
    assert drawn_rounds["rows_in"] < drawn_every["rows_in"] == 4 + 16 * 3
    assert drawn_rounds["llm"]["embedded"]["generated_tokens"] < drawn_every["llm"]["embedded"]["generated_tokens"]
    assert any("[answer] another round:" in line for line in log)
    # Every sample a round drew is one drawing everything draws too, with the same reply.
    every_rows, round_rows = read_rows(every, "answer"), read_rows(rounds, "answer")
    assert set(round_rows) < set(every_rows)
    assert all(round_rows[key][contracts.ANSWER] == every_rows[key][contracts.ANSWER] for key in round_rows)
    assert {row[contracts.NUM_SAMPLES] for row in round_rows.values() if row[contracts.OBJECTIVE]} == {3}, "num_samples is the budget"


def test_an_engine_that_dies_in_the_second_round_resumes_to_the_rows_of_an_uninterrupted_run(runs, tmp_path, monkeypatch):
    _, rounds, _ = runs
    job = make_job(tmp_path, "killed", min_agreement=0.6)
    monkeypatch.setattr(engine_pool, "BACKEND_FACTORY", functools.partial(VotingBackend, die_on_third_sample=3))
    log = []
    with pytest.raises(Exception, match="engine died"):
        run_job(job, REGISTRY, log=log.append)
    assert any("[answer] another round:" in line for line in log), "the engine should die in the second round"
    monkeypatch.setattr(engine_pool, "BACKEND_FACTORY", VotingBackend)
    log = []
    run_job(job, REGISTRY, log=log.append)
    assert any("[answer] resuming" in line for line in log)
    killed = job.resolved_run_dir()
    for stage in ("answer", "gather_samples", "consistency"):
        for rejects in (False, True):
            assert read_rows(killed, stage, rejects) == read_rows(rounds, stage, rejects), (stage, rejects)


def test_min_agreement_must_be_the_consistency_stages(tmp_path):
    job = make_job(tmp_path, "mismatch", min_agreement=0.5)
    from synthmix.pipeline.graph import build_graph

    with pytest.raises(ConfigError, match=r"min_agreement 0.5 differs from the 0.6 of stage 'consistency'"):
        build_graph(job, REGISTRY, run_dir=tmp_path / "mismatch")
    lonely = parse_job(
        {"name": "lonely", "stages": ["instructions", "answer"], "instructions": {"path": "x.parquet"}, "answer": {"min_agreement": 0.6}},
        source="lonely.yaml",
    )
    with pytest.raises(ConfigError, match="no consistency stage reads its rows"):
        build_graph(lonely, REGISTRY, run_dir=tmp_path / "lonely")
