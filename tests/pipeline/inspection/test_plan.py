"""The plan's arithmetic and its hardware profiles, on a hand-made pilot: no Ray, no engine."""

import re

import pytest
import yaml

from synthmix.pipeline.inspection.plan import HardwareProfile, PlanError, Target, load_profile, parse_target, profile_names, project, render_plan


def pilot(**kept):
    """A pilot of 10 seed chunks: two LLM stages of one model; kept pairs and tokens per domain."""
    return {
        "run_dir": "runs/p",
        "seed_chunks": 10,
        "end_stage": "dedup_samples",
        "kept": kept or {"math": {"pairs": 4, "tokens": 800}, "code": {"pairs": 6, "tokens": 3000}},
        "stages": [
            {
                "stage": "synthesize",
                "model": "m",
                "model_id": "qwen2.5-coder-0.5b",
                "generated_tokens": 1000,
                "prompt_tokens": 2000,
                "engine_s": 50.0,
                "generated_per_engine_s": 20.0,
            },
            {
                "stage": "answer",
                "model": "m",
                "model_id": "qwen2.5-coder-0.5b",
                "generated_tokens": 4000,
                "prompt_tokens": 50_000,
                "engine_s": 160.0,
                "generated_per_engine_s": 25.0,
            },
        ],
    }


def profile(**changes):
    data = {
        "name": "box",
        "description": "a test box",
        "unit": "GPU",
        "price_per_hour": 2.0,
        "models": [{"model": "Org/Big-7B", "engine": "vllm", "generated_tokens_per_s": 1000.0, "source": "https://example.org/bench"}],
    }
    return HardwareProfile(**{**data, **changes})


def test_targets_read_tokens_by_default_and_pairs_on_request():
    assert parse_target("math=2e9") == Target("math", 2e9, "tokens")
    assert parse_target("code=500pairs") == Target("code", 500, "pairs")
    assert parse_target("all=1_500tokens") == Target("all", 1500, "tokens")
    for bad in ("math", "math=", "math=-3", "math=0", "math=lots", "=5"):
        with pytest.raises(PlanError, match="DOMAIN=AMOUNT"):
            parse_target(bad)


def test_the_domain_needing_most_seeds_sizes_the_run_and_every_stage_scales_with_it():
    # math: 80 tokens per seed chunk -> 8,000 tokens need 100 chunks; code: 0.6 pairs per chunk -> 30 pairs need 50.
    plan = project(pilot(), targets=[parse_target("math=8000"), parse_target("code=30pairs")])
    assert [entry["seed_chunks"] for entry in plan["targets"]] == [100, 50]
    assert plan["seed_chunks"] == 100 and plan["scale"] == 10
    assert plan["kept"] == {"math": {"pairs": 40, "tokens": 8000}, "code": {"pairs": 60, "tokens": 30000}}
    assert [stage["generated_tokens"] for stage in plan["stages"]] == [10_000, 40_000]
    assert plan["generated_tokens"] == 50_000
    # Per kept pair (10 kept in the pilot): what the pilot spent.
    assert [stage["generated_tokens_per_kept_pair"] for stage in plan["stages"]] == [100, 400]
    assert [stage["engine_s_per_kept_pair"] for stage in plan["stages"]] == [5, 16]


def test_seeds_needed_round_up_and_all_counts_every_domain():
    plan = project(pilot(), targets=[parse_target("all=3801tokens")])  # 380 kept tokens per seed chunk
    assert plan["seed_chunks"] == 11


def test_on_the_pilots_own_hardware_the_projection_reproduces_its_engine_seconds():
    same = project(pilot(), seed_chunks=10)
    assert same["scale"] == 1 and same["engine_s"] == 210.0
    assert [stage["engine_s"] for stage in same["stages"]] == [50.0, 160.0]
    assert project(pilot(), seed_chunks=30)["engine_s"] == pytest.approx(630.0)


def test_a_profile_turns_generated_tokens_into_engine_hours_and_money():
    plan = project(pilot(), seed_chunks=36_000, profile=profile(), model_map={"m": "Org/Big-7B"})
    assert plan["generated_tokens"] == 18_000_000
    assert plan["engine_hours"] == pytest.approx(18_000_000 / 1000 / 3600)  # 5 hours
    assert plan["cost"] == pytest.approx(10.0)
    assert project(pilot(), seed_chunks=36_000, profile=profile(), model_map={"m": "org/big-7b"}, price_per_hour=4.0)["cost"] == pytest.approx(20.0)
    text = render_plan(plan)
    assert "https://example.org/bench" in text and "m priced as Org/Big-7B (--model)" in text
    assert re.search(r"total: 18,000,000 generated tokens \(187,200,000 prompt tokens\), 5.00 engine hours \(18,000 engine s\), 10 USD", text)


def test_a_model_missing_from_the_profile_is_named_with_the_way_out():
    with pytest.raises(
        PlanError, match=r"no throughput for model 'qwen2.5-coder-0.5b' \(stage 'synthesize', job model 'm'\).*--model m=MODEL \(one of: Org/Big-7B\)"
    ):
        project(pilot(), seed_chunks=20, profile=profile())


def test_a_target_in_a_domain_the_pilot_kept_nothing_of_cannot_be_projected():
    with pytest.raises(PlanError, match="kept no 'science' pairs"):
        project(pilot(), targets=[parse_target("science=100pairs")])


def test_targets_and_a_seed_count_exclude_each_other():
    with pytest.raises(PlanError, match="either targets"):
        project(pilot(), targets=[parse_target("math=1")], seed_chunks=5)


def test_engine_seconds_the_pilot_did_not_measure_need_a_profile():
    measured = pilot()
    measured["stages"][0]["engine_s"] = None
    with pytest.raises(PlanError, match="no engine seconds measured.*--hardware"):
        project(measured, seed_chunks=20)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"models": []}, "at least 1"),
        ({"models": [{"model": "x", "engine": "vllm", "generated_tokens_per_s": 0, "source": "u"}]}, "greater than 0"),
        ({"models": [{"model": "x", "engine": "vllm", "generated_tokens_per_s": 5}]}, "source"),
        ({"price_per_hour": -1}, "greater than 0"),
        ({"tokens_per_s": 3}, "Extra inputs"),
    ],
)
def test_a_malformed_profile_file_is_refused_saying_what_is_wrong(tmp_path, changes, message):
    data = profile().model_dump()
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**data, **changes}))
    with pytest.raises(PlanError, match=f"(?s)bad.yaml is not a profile.*{message}"):
        load_profile(str(path))


def test_an_unknown_profile_name_lists_the_shipped_ones():
    with pytest.raises(PlanError, match="'a100' does not exist; name one of cpu-2core, h100"):
        load_profile("a100")


def test_every_shipped_profile_loads_and_cites_each_figure():
    assert {"cpu-2core", "h100"} <= set(profile_names())
    for name in profile_names():
        shipped = load_profile(name)
        for entry in shipped.models:
            assert entry.source.startswith("https://") or entry.source.startswith("measured"), f"{name}: {entry.model} has no source"
    assert load_profile("h100").throughput("qwen2.5-coder-7b-instruct").model == "Qwen/Qwen2.5-Coder-7B-Instruct"


def test_a_pilot_too_small_to_fill_its_batches_is_flagged_when_its_own_seconds_are_scaled():
    small = pilot()
    small["stages"][1].update(requests=7, batch_size=32)
    small["stages"][0].update(requests=40, batch_size=32)
    notes = project(small, seed_chunks=30)["assumptions"]
    assert any("batches ran part-empty" in line and "answer (7 < 32)" in line and "synthesize" not in line.split(":")[-1] for line in notes)
    assert not any("part-empty" in line for line in project(small, seed_chunks=30, profile=profile(), model_map={"m": "Org/Big-7B"})["assumptions"])


def test_a_stage_that_reads_far_more_than_it_writes_is_flagged_on_a_profile():
    plan = project(pilot(), seed_chunks=20, profile=profile(), model_map={"m": "Org/Big-7B"})
    assert [stage["prompt_tokens"] for stage in plan["stages"]] == [4000, 100_000] and plan["prompt_tokens"] == 104_000
    flagged = [line for line in plan["assumptions"] if line.startswith("prompt tokens are not priced")]
    assert len(flagged) == 1 and "answer (1e+05 prompt tokens)" in flagged[0] and "synthesize" not in flagged[0]


def test_fixed_sets_scaled_with_the_seeds_are_named_only_where_the_job_has_them():
    assert not any("fixed sets" in line for line in project(pilot(), seed_chunks=20)["assumptions"])
    with_probes = {**pilot(), "fixed_sets": ["probes", "judged_responses"]}
    assert any("fixed sets of probes, judged_responses" in line for line in project(with_probes, seed_chunks=20)["assumptions"])
