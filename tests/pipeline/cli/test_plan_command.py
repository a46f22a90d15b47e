"""`synthmix plan` on a real run (Ray, the runner, the real stages) whose engine is the project's fake, and `run --pilot`."""

import functools
import json

import pyarrow.parquet as pq
import pytest
import yaml

from synthmix.pipeline.cli.main import main
from synthmix.pipeline.llm import engine_pool
from synthmix.pipeline.store import StageDir
from tests.pipeline.fake_engine import FakeBackend

PASSAGES = [
    "A hash table maps keys to buckets with a hash function and resolves collisions by chaining or by probing the next slot.",
    "The derivative of a polynomial lowers each exponent by one and multiplies each term by its old exponent.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in the chloroplasts of plants.",
    "A binary search halves the sorted range on every step, so it finds an item among a million in twenty comparisons.",
    "Ray Data streams blocks between operators, so a map stage never holds the whole dataset in memory at once.",
    "MinHash estimates the Jaccard similarity of two shingle sets from the agreement of their signatures.",
]


def write_job(root, stages=("seeds", "synthesize", "answer")):
    (root / "seeds.jsonl").write_text("".join(json.dumps({"text": text, "domain": "code"}) + "\n" for text in PASSAGES))
    job = {
        "name": "planned",
        "run_dir": str(root / "runs" / "planned"),
        "models": {"embedded": {"engine": "embedded", "batch_size": 4}},
        "stages": list(stages),
        "seeds": {"path": "seeds.jsonl"},
        "synthesize": {"instructions_per_call": 2},
        "answer": {"samples": 1, "sampling": {"max_tokens": 64}},
    }
    path = root / "job.yaml"
    path.write_text(yaml.safe_dump({key: value for key, value in job.items() if key in ("name", "run_dir", "models", "stages", *stages)}))
    return path


@pytest.fixture(scope="module")
def pilot(tmp_path_factory, ray_session):
    """`synthmix run job.yaml --pilot 4` on the fake engine; the run goes beside the job's own run_dir."""
    root = tmp_path_factory.mktemp("plan")
    job = write_job(root)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine_pool, "BACKEND_FACTORY", functools.partial(FakeBackend, answer_after_s=0.02))
        assert main(["run", str(job), "--pilot", "4"]) == 0
    return root / "runs" / "planned-pilot-4"


def plan_json(capsys, *args):
    capsys.readouterr()
    assert main(["plan", *map(str, args), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_pilot_caps_the_seed_chunks_in_a_run_folder_of_its_own(pilot):
    seeds = StageDir(pilot, "seeds").manifest()
    assert seeds["rows_out"] == 4 and seeds["rejected"] == {"not_drawn": 2}
    assert seeds["fingerprint_parts"]["params"]["max_chunks"] == 4
    kept_seeds = {row["id"] for path in StageDir(pilot, "seeds").part_files() for row in pq.read_table(path).to_pylist()}
    answered_seeds = {row["seed_id"] for path in StageDir(pilot, "answer").part_files() for row in pq.read_table(path).to_pylist()}
    assert answered_seeds and answered_seeds <= kept_seeds


def test_plan_for_a_seed_count_scales_every_stage_and_reproduces_the_pilot_at_its_own_size(pilot, capsys):
    same = plan_json(capsys, pilot, "--seeds", 4)
    manifests = {name: StageDir(pilot, name).manifest()["llm"]["embedded"] for name in ("synthesize", "answer")}
    assert same["scale"] == 1
    assert {stage["stage"]: stage["generated_tokens"] for stage in same["stages"]} == {name: llm["generated_tokens"] for name, llm in manifests.items()}
    assert same["engine_s"] == pytest.approx(sum(llm["engine_s"] for llm in manifests.values()))

    tripled = plan_json(capsys, pilot, "--seeds", 12)
    assert tripled["scale"] == 3
    assert tripled["generated_tokens"] == pytest.approx(3 * same["generated_tokens"], abs=2)
    assert tripled["engine_s"] == pytest.approx(3 * same["engine_s"])


def test_plan_for_a_target_on_a_profile_prices_the_engine_hours(pilot, capsys, tmp_path):
    kept = StageDir(pilot, "answer").manifest()["rows_out"]
    profile = tmp_path / "box.yaml"
    profile.write_text(
        yaml.safe_dump(
            {
                "name": "box",
                "description": "a test box",
                "unit": "GPU",
                "price_per_hour": 2.0,
                "models": [{"model": "smollm2-135m", "engine": "fake", "generated_tokens_per_s": 10.0, "source": "made up for the test"}],
            }  # fmt: skip
        )
    )
    plan = plan_json(capsys, pilot, "--target", f"code={10 * kept}pairs", "--hardware", profile)
    assert plan["seed_chunks"] == 40 and plan["kept"]["code"]["pairs"] == 10 * kept
    assert plan["engine_s"] == pytest.approx(plan["generated_tokens"] / 10.0, rel=1e-3)
    assert plan["cost"] == pytest.approx(plan["engine_hours"] * 2.0)

    capsys.readouterr()
    assert main(["plan", str(pilot), "--target", "code=1e6", "--hardware", "h100", "--model", "embedded=Qwen/Qwen2.5-Coder-7B-Instruct"]) == 0
    text = capsys.readouterr().out
    assert "assumptions:" in text and "embedded priced as Qwen/Qwen2.5-Coder-7B-Instruct (--model)" in text and "https://" in text


def test_plan_says_which_model_the_profile_lacks(pilot, capsys):
    assert main(["plan", str(pilot), "--seeds", "8", "--hardware", "h100"]) == 2
    error = capsys.readouterr().err
    assert "has no throughput for model 'smollm2-135m'" in error and "--model embedded=MODEL" in error


def test_plan_refuses_an_unfinished_run(tmp_path, ray_session, capsys):
    job = write_job(tmp_path, stages=("seeds", "synthesize", "answer"))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(engine_pool, "BACKEND_FACTORY", FakeBackend)
        assert main(["run", str(job), "--run-dir", str(tmp_path / "half"), "--to", "seeds"]) == 0
    capsys.readouterr()
    assert main(["plan", str(tmp_path / "half"), "--seeds", "10"]) == 2
    assert "is not finished: synthesize, answer" in capsys.readouterr().err
