"""What a run's generation cost, read from its manifests: per stage and model, and per pair kept at the end."""

from collections import Counter

import pyarrow as pa
import pytest
import yaml

from synthmix.pipeline.cli.main import main
from synthmix.pipeline.inspection.generation_cost import cost_section, generation_cost, render_cost
from synthmix.pipeline.store import StageDir, UnitCounts
from synthmix.pipeline.unit_commit import count_llm_usage_by_domain

STAGES = [
    {"name": "synthesize"},
    {"name": "answer"},
    {"name": "probe_exit"},
    {"name": "decontaminate"},
    {"name": "tokenize"},
]


def write_stage(run_dir, name, *, kept=(), rejected=(), llm=None, by_domain=None, engine=None):
    """A committed stage as the runner writes it: rows per domain, and its LLM counts."""
    stage_dir = StageDir(run_dir, name)
    stage_dir.clear()
    counts = UnitCounts(rows_in=len(kept) + len(rejected), rows_out=len(kept), rejected=Counter(reason for _, reason in rejected))
    counts.llm = {model: Counter(values) for model, values in (llm or {}).items()}
    counts.llm_by_domain = {model: {domain: Counter(values) for domain, values in domains.items()} for model, domains in (by_domain or {}).items()}
    accepted = pa.Table.from_pylist([{"id": f"{name}-{n}", "domain": domain} for n, domain in enumerate(kept)])
    rejects = pa.Table.from_pylist([{"id": f"{name}-r{n}", "domain": domain, "reject_reason": reason} for n, (domain, reason) in enumerate(rejected)])
    stage_dir.commit_unit("0000", accepted if kept else None, rejects, pa.array([f"{name}-{n}" for n in range(len(kept))], pa.string()), counts)
    manifest = {"stage": name, "fingerprint": "hand-written", **counts.to_json(), "wall_s": 2.0}
    for model, usage in (engine or {}).items():
        manifest["llm"][model].update(usage)
    stage_dir.commit(manifest)


@pytest.fixture
def run_dir(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "job.yaml").write_text(yaml.safe_dump({"name": "cost", "stages": STAGES}))
    write_stage(
        run_dir,
        "synthesize",
        llm={"m": {"requests": 4, "prompt_tokens": 400, "generated_tokens": 100}},
        by_domain={"m": {"general": {"requests": 4, "prompt_tokens": 400, "generated_tokens": 100}}},
        engine={"m": {"startup_s": 30.0, "engine_s": 5.0, "dtype": "float32"}},
    )
    write_stage(
        run_dir,
        "answer",
        llm={"m": {"requests": 9, "prompt_tokens": 900, "generated_tokens": 300}},
        by_domain={"m": {"math": {"generated_tokens": 240}, "general": {"generated_tokens": 60}}},
        engine={"m": {"startup_s": 0.0, "engine_s": 12.0, "dtype": "float32"}},
    )
    # Probes the recipe kept leave at probe_exit (reason probe); the pairs go on to decontaminate.
    write_stage(run_dir, "probe_exit", kept=["general", "general", "general"], rejected=[("math", "probe"), ("math", "probe")])
    write_stage(run_dir, "decontaminate", kept=["general", "general"], rejected=[("general", "contaminated")])
    write_stage(run_dir, "tokenize", kept=["general", "general"])
    return run_dir


def test_cost_per_stage_and_model_comes_from_the_manifests(run_dir):
    cost = generation_cost(run_dir)
    synthesize, answer = cost["stages"]
    assert (synthesize["stage"], synthesize["model"], synthesize["dtype"]) == ("synthesize", "m", "float32")
    assert (answer["requests"], answer["prompt_tokens"], answer["generated_tokens"]) == (9, 900, 300)
    assert (answer["engine_s"], answer["startup_s"], answer["generated_per_engine_s"]) == (12.0, 0.0, 25.0)
    assert cost["generated_tokens"] == 400


def test_kept_pairs_are_the_last_stage_before_the_shards_and_the_probes_set_aside(run_dir):
    cost = generation_cost(run_dir)
    assert cost["kept"] == {"stages": ["decontaminate", "probe_exit"], "rows": 4, "by_domain": {"general": 2, "math": 2}}
    assert cost["generated_tokens_per_kept"] == 100.0
    assert cost["by_domain"] == [
        {"domain": "general", "generated_tokens": 160, "kept": 2, "generated_tokens_per_kept": 80.0},
        {"domain": "math", "generated_tokens": 240, "kept": 2, "generated_tokens_per_kept": 120.0},
    ]


def test_a_run_whose_last_stage_has_not_run_keeps_nothing_yet(run_dir):
    (run_dir / "decontaminate" / "_manifest.json").unlink()
    cost = generation_cost(run_dir)
    assert cost["kept"] is None and cost["generated_tokens_per_kept"] is None
    assert "no pairs kept yet" in render_cost(cost)


def test_the_cost_shows_in_inspect_and_in_the_report(run_dir, capsys):
    text = render_cost(generation_cost(run_dir))
    assert "generated tokens per kept pair: 100 (400 tokens, 4 pairs kept after 'decontaminate' and the probes set aside by 'probe_exit')" in text
    assert "per domain: general 80, math 120" in text
    assert "<h2>Generation cost</h2>" in cost_section(run_dir) and "12.0" in cost_section(run_dir)
    assert main(["inspect", str(run_dir)]) == 0
    assert "generated tokens per kept pair: 100" in capsys.readouterr().out


def test_unit_counts_keep_their_per_domain_counts_through_json():
    counts = UnitCounts(rows_in=2, rows_out=2, llm={"m": Counter(requests=2, generated_tokens=7)})
    counts.llm_by_domain = {"m": {"math": Counter(requests=1, generated_tokens=5), "code": Counter(requests=1, generated_tokens=2)}}
    data = counts.to_json()
    assert data["llm"]["m"]["by_domain"] == {"code": {"generated_tokens": 2, "requests": 1}, "math": {"generated_tokens": 5, "requests": 1}}
    again = UnitCounts.from_json(data)
    again.add(UnitCounts.from_json(data))
    assert again.llm == {"m": Counter(requests=4, generated_tokens=14)}
    assert again.llm_by_domain["m"]["math"] == Counter(requests=2, generated_tokens=10)


def test_a_batchs_generation_is_counted_per_model_and_domain_of_its_rows():
    batch = pa.table(
        {
            "domain": ["math", "math", "code", "math"],
            "llm_model": ["m", "m", "m", None],
            "num_input_tokens": [10, 11, 12, None],
            "num_generated_tokens": [5, 6, 7, None],
        }
    )
    assert count_llm_usage_by_domain(batch) == {
        "m": {"math": Counter(requests=2, prompt_tokens=21, generated_tokens=11), "code": Counter(requests=1, prompt_tokens=12, generated_tokens=7)}
    }
    assert count_llm_usage_by_domain(batch.drop_columns(["domain"])) == {}
