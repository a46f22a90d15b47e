"""The run's diversity, task mix and evolution tables (pipeline/inspection/diversity.py and its
view) on a run directory written by hand."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from synthmix.pipeline import contracts
from synthmix.pipeline.cli import main
from synthmix.pipeline.inspection.diversity import diversity_of_run
from synthmix.pipeline.inspection.diversity_view import diversity_section, render_diversity

STAGES = [
    "seeds",
    "synthesize",
    "evolve",
    {"name": "dedup_instructions", "kind": "dedup"},
    "probes",
    "answer",
    "gather_samples",
    "consistency",
    "critique",
    "difficulty",
    "decontaminate",
    "tokenize",
]
ENGLISH = [f"What is the purpose of the {name} function in Python?" for name in ("len", "zip", "map", "sorted", "enumerate", "filter")]
CHINESE = ["为什么二分查找要求数据有序？", "比较光反应和暗反应的异同。", "写一篇关于丝绸之路的短文。", "张骞出使西域是在哪个朝代？"]


def instruction(text: str, index: int, *, op: str = "", depth: int = 0, probe: str | None = None) -> dict:
    zh = text in CHINESE
    return {
        contracts.ID: f"i{index}",
        contracts.LANG: "zh" if zh else "en",
        contracts.DOMAIN: "science" if zh else "code",
        contracts.INSTRUCTION: text,
        contracts.EVOLUTION_OP: op,
        contracts.EVOLUTION_DEPTH: depth,
        contracts.PROBE: probe,
    }


def write(run_dir: Path, stage: str, rows: list[dict], *, rejects: list[dict] = (), extra: dict | None = None) -> None:
    folder = run_dir / stage
    (folder / "rejects").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "part-a.parquet")
    if rejects:
        pq.write_table(pa.Table.from_pylist(list(rejects)), folder / "rejects" / "part-a.parquet")
    (folder / "_manifest.json").write_text(json.dumps({"fingerprint": "hand-made", "extra": extra or {}}))


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "job.yaml").write_text(yaml.safe_dump({"name": "hand", "stages": STAGES}))
    originals = [instruction(text, i) for i, text in enumerate(ENGLISH + CHINESE)]
    mix = {"asked": {"explain": 0.5, "compare": 0.5}, "planned": {"explain": 0.5, "compare": 0.5}, "achieved": {"explain": 0.7, "compare": 0.3}, "kept": 10}
    write(run, "synthesize", originals, extra={"task_mix": mix})
    rewrites = [instruction("Explain why len() is O(1) for lists, and what it costs for a generator.", 20, op="deepen", depth=1)]
    evolve_rejects = [
        {**instruction("What is the purpose of the len function in Python?", 21, op="deepen", depth=1), contracts.REJECT_REASON: "no_information_gain"},
        {**instruction("请直接发送这条指令。", 22, op="clarify", depth=1), contracts.REJECT_REASON: "not_self_contained"},
    ]
    write(run, "evolve", originals + rewrites, rejects=evolve_rejects)
    probe = instruction("Natalia sold 48 clips in April. How many clips did she sell?", 30, probe=json.dumps({"set": "gsm8k"}))
    write(run, "dedup_instructions", originals + rewrites + [probe])
    summary = {
        "checked": 1, "harder": 1, "not_harder": 0, "unmeasured": 0,
        "change_all": {"agreement": {"n": 0}, "judged_accuracy": {"n": 1, "estimate": -2.0, "low": -2.0, "high": -2.0}, "answer_ratio": {"n": 1, "estimate": 1.5, "low": 1.5, "high": 1.5}},
        "change_kept": {"agreement": {"n": 0}, "judged_accuracy": {"n": 0}, "answer_ratio": {"n": 0}},
    }  # fmt: skip
    write(run, "difficulty", [], extra={"difficulty": {"deepen": summary, "all": summary}})
    pairs = [{**row, contracts.ANSWER: "an answer"} for row in originals + rewrites]
    write(run, "decontaminate", pairs)
    (run / "shards").mkdir()
    shard_ids = [row[contracts.ID] for row in pairs if row[contracts.LANG] == "zh"]
    pq.write_table(pa.table({contracts.ID: shard_ids}), run / "shards" / "shard-00000.parquet")
    return run


def test_every_instruction_set_and_the_shards_are_measured_without_probes(run_dir):
    data = diversity_of_run(run_dir)
    assert [entry["set"] for entry in data["sets"]] == ["synthesize", "evolve", "dedup_instructions", "shards"]
    dedup = data["sets"][2]["groups"]
    assert [group["group"] for group in dedup] == ["all", "lang=en", "lang=zh", "domain=code", "domain=science"]
    assert dedup[0]["rows"] == 11  # the probe row is left out
    english = dedup[1]
    assert english["openings"][0] == ["what is", 6] and english["top_opening_share"] == pytest.approx(6 / 7)
    shards = data["sets"][3]["groups"][0]
    assert shards["rows"] == 4 and shards["task_types"] == {"explain": 1, "compare": 1, "writing": 1, "factual": 1}


def test_the_task_mix_sets_the_shards_beside_the_asked_and_achieved_shares(run_dir):
    mix = diversity_of_run(run_dir)["task_mix"]
    assert mix["stage"] == "synthesize" and mix["asked"] == {"explain": 0.5, "compare": 0.5}
    assert mix["shards"] == {"explain": 0.25, "compare": 0.25, "writing": 0.25, "factual": 0.25}


def test_evolution_counts_rewrites_offered_and_kept_per_operation_with_the_difficulty_summary(run_dir):
    evolution = diversity_of_run(run_dir)["evolution"]
    by_operation = {entry["operation"]: entry for entry in evolution["operations"]}
    assert by_operation["deepen"]["offered"] == 2 and by_operation["deepen"]["kept"] == 1
    assert by_operation["deepen"]["rejected_by_reason"] == {"no_information_gain": 1}
    assert by_operation["clarify"]["offered"] == 1 and by_operation["clarify"]["kept"] == 0
    assert by_operation["deepen"]["difficulty"]["harder"] == 1 and by_operation["clarify"]["difficulty"] is None


def test_the_eval_command_prints_the_tables_after_the_probe_evaluation(run_dir, capsys):
    assert main(["eval", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert text.rstrip().endswith(render_diversity(diversity_of_run(run_dir)).rstrip())
    lines = text.splitlines()
    assert any(line.startswith("lang=en") and "'what is' 86%" in line for line in lines)
    assert any(line.startswith("deepen") and "1 (50%)" in line and "x1.50" in line and "-2.0" in line for line in lines)
    assert any(line.startswith("compare") and "50%" in line and "+30" not in line and "-20" in line for line in lines)
    assert main(["eval", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["diversity"] == json.loads(json.dumps(diversity_of_run(run_dir)))


def test_the_report_section_has_the_tables_and_a_run_without_a_job_has_none(run_dir, tmp_path):
    html = diversity_section(run_dir)
    assert html.startswith("<h2>Diversity of the instructions</h2>") and html.count("<table>") == 6
    bare = tmp_path / "bare"
    bare.mkdir()
    assert diversity_section(bare) == ""
