"""The inspection commands through `synthmix`'s entry point: text, --json, and errors with exit code 2."""

import json

import pytest

from synthmix.pipeline.cli import main
from tests.pipeline.inspection_run import make_inspection_run


@pytest.fixture(scope="module")
def run(tmp_path_factory, ray_session):
    return make_inspection_run(tmp_path_factory.mktemp("cli"))


def test_inspect_run_prints_the_funnel_as_a_table_and_as_json(run, capsys):
    assert main(["inspect", str(run.run_dir)]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].split()[:4] == ["stage", "state", "in", "out"]
    assert "not_utf8 1, parse_error 1" in table and "embedded 240→150" in table
    assert main(["inspect", str(run.run_dir), "--json"]) == 0
    stages = [row["stage"] for row in json.loads(capsys.readouterr().out)]
    assert stages == ["seeds", "synthesize", "evolve", "critique", "shards"]


def test_inspect_stage_shows_distributions_and_wrapped_samples(run, capsys):
    assert main(["inspect", str(run.run_dir), "critique", "--sample", "2", "--where", "critique_score >= 8"]) == 0
    out = capsys.readouterr().out
    assert "3 rows" in out and "critique_score" in out and out.count("── sample") == 2
    assert main(["inspect", str(run.run_dir), "critique", "--sample", "2", "--seed", "4", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["samples"]) == 2


def test_inspect_rejects_by_reason(run, capsys):
    assert main(["inspect", str(run.run_dir), "evolve", "--reason", "near_duplicate", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["matched"] == 2 and {row["reject_reason"] for row in result["samples"]} == {"near_duplicate"}


def test_bad_where_exits_2_naming_the_columns(run, capsys):
    assert main(["inspect", str(run.run_dir), "critique", "--where", "score < 5"]) == 2
    assert "critique_score" in capsys.readouterr().err


def test_trace_prints_the_line_and_json(run, capsys):
    assert main(["trace", str(run.run_dir), run.evolved_id]) == 0
    out = capsys.readouterr().out
    assert out.index("[seeds]") < out.index("[synthesize]") < out.index("[critique]") < out.index("[shards]")
    assert main(["trace", str(run.run_dir), run.evolved_id, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == run.evolved_id


def test_report_and_export_write_their_files(run, tmp_path, capsys):
    assert main(["report", str(run.run_dir), "-o", str(tmp_path / "r.html")]) == 0
    assert (tmp_path / "r.html").read_text().count("<svg") >= 7
    assert main(["export", str(run.run_dir), "critique", "--format", "jsonl", "-o", str(tmp_path / "c.jsonl")]) == 0
    assert len((tmp_path / "c.jsonl").read_text().splitlines()) == 5
