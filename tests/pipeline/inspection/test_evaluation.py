"""`synthmix eval` on a run directory made by hand: known right and wrong probe answers at every
stage give known accuracies, precision, recall, lift and AUC."""

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from synthmix.pipeline import contracts
from synthmix.pipeline.cli import main
from synthmix.pipeline.contracts import with_reject_columns
from synthmix.pipeline.inspection.diversity import diversity_of_run
from synthmix.pipeline.inspection.eval_view import eval_section, render_eval
from synthmix.pipeline.inspection.evaluation import READ_SCHEMA, evaluate_run, filter_verdict
from synthmix.quality.probe_sets import Probe
from synthmix.quality.proportions import Interval
from synthmix.stages.probes import probe_row

STAGES = ["probes", "answer", "gather_samples", "consistency", "critique", "quality", {"name": "dedup_samples", "kind": "dedup"}, "probe_exit", "decontaminate"]
SCHEMA = pa.schema([field for field in READ_SCHEMA if field.name != contracts.REJECT_REASON])
REJECTS = with_reject_columns(SCHEMA)


def marker(set_name: str, key: str, reference: str | None) -> str:
    probe = Probe(set_name=set_name, key=key, question=f"question {key}", reference=reference, tests=None if reference else "check()", domain="math", lang="en")
    return probe_row(probe)[contracts.PROBE]


# Probe instruction -> (set, reference, domain, answer model, sampled answers).
PROBES = {
    "P1": ("gsm8k", "10", "math", "m1", ["10", "10", "11"]),
    "P2": ("gsm8k", "20", "math", "m1", ["20", "21", "22"]),
    "P3": ("gsm8k", "30", "math", "m1", ["31", "31", "31"]),
    "P4": ("gsm8k", "40", "math", "m1", ["40", "40", "40"]),
    "P5": ("gsm8k", "50", "math", "m1", ["51", "51", "50"]),
    "Z1": ("arithmetic_zh", "5", "math", "m1", ["5", "6", "5"]),
    "C1": ("humaneval", None, "code", "m2", ["def f(): pass"]),
}


def row(instruction: str, answer: str, *, row_id: str | None = None, score: float | None = None, reason: str | None = None) -> dict:
    set_name, reference, domain, model, _ = PROBES[instruction]
    values = {
        contracts.ID: row_id or f"pair-{instruction}",
        contracts.PARENT_ID: instruction,
        contracts.DOMAIN: domain,
        contracts.ANSWER: f"Working it out step by step. The final answer is \\boxed{{{answer}}}." if reference else answer,
        contracts.ANSWER_MODEL: model,
        contracts.PROBE: marker(set_name, instruction, reference),
        contracts.CRITIQUE_SCORE: score,
    }
    return {**values, contracts.REJECT_REASON: reason, contracts.REJECT_DETAIL: None} if reason else values


def plain(row_id: str) -> dict:
    """A row that is no probe: evaluation must ignore it wherever it is."""
    return {
        contracts.ID: row_id,
        contracts.PARENT_ID: "G",
        contracts.DOMAIN: "general",
        contracts.ANSWER: "10",
        contracts.ANSWER_MODEL: "m1",
        contracts.PROBE: None,
        contracts.CRITIQUE_SCORE: 9.0,
    }


def write_stage(run_dir: Path, name: str, kept: list[dict], rejected: list[dict] = (), *, manifest: bool = True) -> None:
    folder = run_dir / name
    (folder / "rejects").mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(kept, schema=SCHEMA), folder / "part-a.parquet")
    if rejected:
        pq.write_table(pa.Table.from_pylist(list(rejected), schema=REJECTS), folder / "rejects" / "part-a.parquet")
    if manifest:
        (folder / "_manifest.json").write_text(json.dumps({"fingerprint": "hand-made"}))


@pytest.fixture
def run_dir(tmp_path) -> Path:
    run = tmp_path / "run"
    run.mkdir()
    (run / "job.yaml").write_text(yaml.safe_dump({"name": "hand", "stages": STAGES}))
    samples = [row(p, answer, row_id=f"{p}-{i}") for p, (*_, answers) in PROBES.items() for i, answer in enumerate(answers)]
    write_stage(run, "answer", [*samples, plain("G-0")], [row("P1", "", row_id="P1-3", reason="llm_error")])
    pairs = {p: row(p, answers[0]) for p, (*_, answers) in PROBES.items()}
    write_stage(run, "gather_samples", [*pairs.values(), plain("G")])
    # consistency rejects P2 (whose first sample is right) and keeps the others' majority answer.
    write_stage(
        run,
        "consistency",
        [row(p, {"P5": "51", "P3": "31"}.get(p, PROBES[p][1] or PROBES[p][4][0])) for p in ("P1", "P3", "P4", "P5", "Z1", "C1")] + [plain("G")],
        [row("P2", "20", reason="inconsistent")],
    )
    scores = {"P1": 8.0, "P4": 9.0, "P5": 8.0, "Z1": 7.0, "C1": 6.0}
    kept = {p: row(p, {"P5": "51"}.get(p, PROBES[p][1] or PROBES[p][4][0]), score=scores[p]) for p in scores}
    write_stage(run, "critique", [*kept.values(), plain("G")], [row("P3", "31", score=4.0, reason="critique_low")])
    write_stage(
        run,
        "quality",
        [kept[p] for p in ("P1", "P4", "P5", "Z1")] + [plain("G")],
        [{**kept["C1"], contracts.REJECT_REASON: "repetitive", contracts.REJECT_DETAIL: None}],
    )
    write_stage(
        run,
        "dedup_samples",
        [kept[p] for p in ("P1", "P5", "Z1")] + [plain("G")],
        [{**kept["P4"], contracts.REJECT_REASON: "near_duplicate", contracts.REJECT_DETAIL: None}],
    )
    write_stage(run, "probe_exit", [plain("G")], [{**kept[p], contracts.REJECT_REASON: "probe", contracts.REJECT_DETAIL: None} for p in ("P1", "P5", "Z1")])
    folder = run / "decontaminate"
    folder.mkdir()
    pq.write_table(pa.table({contracts.ID: ["G"], contracts.ANSWER: ["10"]}), folder / "part-a.parquet")  # no probe column at all
    return run


def by(entries: list[dict], **keys) -> dict:
    return next(entry for entry in entries if all(entry[key] == value for key, value in keys.items()))


def test_sample_and_survivor_accuracy_per_model_and_domain(run_dir):
    result = evaluate_run(run_dir)
    assert result["probes"] == 7 and result["failed_samples"] == 1
    math = by(result["by_model_domain"], answer_model="m1", domain="math")
    # Samples right: P1 2, P2 1, P3 0, P4 3, P5 1, Z1 2 = 9 of 18; survivors P1, Z1 right, P5 wrong.
    assert (math["probes"], math["samples"]["k"], math["samples"]["n"]) == (6, 9, 18)
    assert (math["survivors"]["k"], math["survivors"]["n"]) == (2, 3)
    assert math["lift"]["estimate"] == pytest.approx(2 / 3 - 1 / 2, abs=1e-4)
    assert math["lift"]["low"] < 0 < math["lift"]["high"], "three survivors cannot show a lift"
    code = by(result["by_model_domain"], answer_model="m2", domain="code")
    assert (code["probes"], code["not_judged"], code["samples"]["n"], code["survivors"]["n"]) == (1, 1, 0, 0)


def test_accuracy_per_probe_set(run_dir):
    sets = evaluate_run(run_dir)["by_set"]
    assert [entry["set"] for entry in sets] == ["arithmetic_zh", "gsm8k", "humaneval"]
    gsm8k = by(sets, set="gsm8k")
    assert (gsm8k["samples"]["k"], gsm8k["samples"]["n"], gsm8k["survivors"]["k"], gsm8k["survivors"]["n"]) == (7, 15, 1, 2)
    samples = gsm8k["samples"]
    assert (samples["low"], samples["high"]) == (pytest.approx(0.2481, abs=1e-4), pytest.approx(0.6988, abs=1e-4)), "Wilson 95% of 7/15"


def test_each_filter_reports_kept_and_rejected_accuracy_precision_and_recall(run_dir):
    filters = evaluate_run(run_dir)["filters"]
    assert [entry["stage"] for entry in filters] == ["consistency", "critique", "quality", "dedup_samples"]
    consistency = by(filters, stage="consistency")
    assert (consistency["in"], consistency["kept"], consistency["rejected"]) == (7, 6, 1)
    assert consistency["rejected_by_reason"] == {"inconsistent": 1}
    assert (consistency["kept_accuracy"]["k"], consistency["kept_accuracy"]["n"]) == (3, 5)
    assert (consistency["precision"]["k"], consistency["precision"]["n"]) == (0, 1), "it rejected a right answer"
    assert (consistency["recall"]["k"], consistency["recall"]["n"]) == (0, 2), "and kept both wrong ones"
    critique = by(filters, stage="critique")
    assert (critique["precision"]["k"], critique["precision"]["n"], critique["recall"]["k"], critique["recall"]["n"]) == (1, 1, 1, 2)
    assert critique["kept_minus_rejected"]["estimate"] == pytest.approx(0.75)
    assert critique["verdict"] == "unclear", "one rejected probe cannot show that critique helps"
    quality = by(filters, stage="quality")
    assert (quality["in"], quality["rejected"], quality["rejected_accuracy"]["n"], quality["verdict"]) == (5, 1, 0, "n/a"), "it rejected only a code probe"


def test_critique_auc_orders_right_answers_above_wrong_ones(run_dir):
    auc = evaluate_run(run_dir)["critique_auc"]
    # right 8, 9, 7 against wrong 4, 8: 4.5 of 6 pairs in order (the 8-8 tie counts half).
    assert (auc["stage"], auc["right"], auc["wrong"]) == ("critique", 3, 2)
    assert auc["estimate"] == pytest.approx(0.75)
    assert 0 <= auc["low"] < 0.75 < auc["high"] <= 1


def test_without_probe_exit_the_last_filter_kept_rows_are_the_survivors(run_dir):
    (run_dir / "probe_exit" / "_manifest.json").unlink()
    result = evaluate_run(run_dir)
    assert "dedup_samples" in result["survivors_are"]
    math = by(result["by_model_domain"], answer_model="m1", domain="math")
    assert (math["survivors"]["k"], math["survivors"]["n"]) == (2, 3)


def test_a_filter_verdict_follows_its_interval():
    assert filter_verdict(Interval(0.3, 0.05, 0.5)) == "helps"
    assert filter_verdict(Interval(-0.3, -0.5, -0.05)) == "hurts"
    assert filter_verdict(Interval(0.1, -0.2, 0.4)) == "unclear"
    assert filter_verdict(Interval(None, None, None)) == "n/a"


def test_eval_reads_the_run_and_writes_nothing(run_dir):
    before = {path: path.stat().st_mtime_ns for path in run_dir.rglob("*")}
    evaluate_run(run_dir)
    eval_section(run_dir)
    assert {path: path.stat().st_mtime_ns for path in run_dir.rglob("*")} == before


def test_the_cli_prints_the_tables_and_json(run_dir, capsys):
    assert main(["eval", str(run_dir)]) == 0
    text = capsys.readouterr().out
    assert text == render_eval(evaluate_run(run_dir)) + "\n"
    lines = text.splitlines()
    assert any(line.split()[:3] == ["m1", "math", "6"] and "50.0% [" in line and "9/18" in line and "2/3" in line for line in lines)
    assert any(line.startswith("critique ") and line.rstrip().endswith("! unclear") for line in lines)
    assert "critique_score AUC (critique, right vs wrong answers): 0.750" in text
    assert main(["eval", str(run_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps({**evaluate_run(run_dir), "diversity": diversity_of_run(run_dir)}))


def test_a_run_without_probes_says_how_to_add_them(tmp_path, capsys):
    run = tmp_path / "plain"
    run.mkdir()
    (run / "job.yaml").write_text(yaml.safe_dump({"name": "plain", "stages": ["answer"]}))
    write_stage(run, "answer", [plain("G-0")])
    assert main(["eval", str(run)]) == 0
    assert "no probe rows in this run" in capsys.readouterr().out
    assert eval_section(run) == ""


def test_a_missing_run_directory_is_an_error(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "absent")]) == 2
    assert "does not exist" in capsys.readouterr().err


def add_verify_code(run: Path, *, code_passes: bool) -> None:
    """A verify_code stage after consistency that ran the code probe's tests."""
    stages = list(STAGES)
    stages.insert(stages.index("consistency") + 1, "verify_code")
    (run / "job.yaml").write_text(yaml.safe_dump({"name": "hand", "stages": stages}))
    math = [row(p, {"P5": "51", "P3": "31"}.get(p, PROBES[p][1])) for p in ("P1", "P3", "P4", "P5", "Z1")]
    code = {**row("C1", "def f(): pass"), contracts.META: json.dumps({"verify_code": {"outcome": "passed", "tests": "row"}})}
    if code_passes:
        write_stage(run, "verify_code", [*math, code, plain("G")])
    else:
        write_stage(
            run, "verify_code", [*math, plain("G")], [{**row("C1", "def f(): pass"), contracts.REJECT_REASON: "tests_failed", contracts.REJECT_DETAIL: None}]
        )


def test_code_probes_are_judged_by_their_tests_as_verify_code_ran_them(run_dir, capsys):
    add_verify_code(run_dir, code_passes=True)
    result = evaluate_run(run_dir)
    code = by(result["by_model_domain"], answer_model="m2", domain="code")
    assert (code["not_judged"], code["samples"]["k"], code["samples"]["n"]) == (0, 1, 1)
    critique, quality = by(result["filters"], stage="critique"), by(result["filters"], stage="quality")
    assert (critique["kept_accuracy"]["k"], critique["kept_accuracy"]["n"]) == (4, 5), "the passing code probe counts as right"
    assert (quality["rejected_accuracy"]["k"], quality["rejected_accuracy"]["n"], quality["verdict"]) == (1, 1, "unclear")
    verify = by(result["filters"], stage="verify_code")
    assert (verify["in"], verify["rejected"], verify["kept_accuracy"]["n"], verify["verdict"]) == (6, 0, 5, "n/a"), "the judge does not grade itself"
    assert main(["eval", str(run_dir)]) == 0
    assert "code probes: judged by their tests as 'verify_code' ran them" in capsys.readouterr().out

    failing = run_dir.parent / "failing"
    failing.mkdir()
    for path in run_dir.iterdir():
        if path.name not in ("verify_code", "job.yaml"):
            (failing / path.name).symlink_to(path)
    add_verify_code(failing, code_passes=False)
    code = by(evaluate_run(failing)["by_model_domain"], answer_model="m2", domain="code")
    assert (code["not_judged"], code["samples"]["k"], code["samples"]["n"]) == (0, 0, 1)


def test_the_report_section_holds_the_tables(run_dir):
    html = eval_section(run_dir)
    # Accuracy by model and by set, the filters; then the critique's AUC per signal and its min_score table.
    assert html.startswith("<h2>Probes</h2>") and html.count("<table>") == 5
    assert "<h3>Critique critique: AUC per signal</h3>" in html
    assert "<td>consistency</td>" in html and "9/18" in html
