"""Exporting a run's final pairs: a folder `datasets.load_dataset` reads, per domain, with a card the Hub's tools parse."""

import json
import shutil

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from huggingface_hub import DatasetCard

from synthmix.pipeline.cli.main import main
from synthmix.pipeline.inspection.dataset_card import card_metadata_problems, size_category
from synthmix.pipeline.inspection.final_pairs import export_final_pairs
from synthmix.pipeline.inspection.run_contents import RunInspectionError
from synthmix.pipeline.store import StageDir
from tests.pipeline.inspection_run import make_inspection_run

STAGES = ["seeds", "synthesize", "evolve", "critique", "tokenize"]
PROBE_FILE = "part-zz-probe.parquet"


@pytest.fixture(scope="module")
def run(tmp_path_factory, ray_session):
    """The inspection run as a finished job (critique its last stage before the shards), with one
    probe row left among critique's kept rows, as a job without probe_exit leaves them."""
    run = make_inspection_run(tmp_path_factory.mktemp("final-pairs"))
    job = yaml.safe_load((run.run_dir / "job.yaml").read_text())
    (run.run_dir / "job.yaml").write_text(yaml.safe_dump({**job, "stages": STAGES}))
    critique = StageDir(run.run_dir, "critique")
    kept = pq.read_table(critique.part_files()).to_pylist()
    probe = {**kept[0], "id": "probe-1", "domain": "math", "probe": json.dumps({"set": "gsm8k", "key": "1", "reference": "4"})}
    pq.write_table(pa.Table.from_pylist([probe]), critique.path / PROBE_FILE)
    return run


def kept_pairs(run):
    files = [path for path in StageDir(run.run_dir, "critique").part_files() if path.name != PROBE_FILE]
    return sorted(pq.read_table(files).to_pylist(), key=lambda row: row["id"])


def test_each_domain_config_loads_with_the_kept_rows_and_no_probe(run, tmp_path):
    out = tmp_path / "pairs"
    result = export_final_pairs(run.run_dir, out)
    expected = kept_pairs(run)
    assert result["stage"] == "critique" and result["probes_left_out"] == 1
    assert result["rows"] == len(expected) == 5
    everything = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))["train"]  # the default config: every domain
    assert sorted(everything["id"]) == [row["id"] for row in expected]
    assert "probe-1" not in everything["id"]
    by_domain = {}
    for row in expected:
        by_domain.setdefault(row["domain"], []).append(row)
    assert set(result["configs"]) == {"all", *by_domain}
    for domain, rows in by_domain.items():
        loaded = datasets.load_dataset(str(out), domain, cache_dir=str(tmp_path / "cache"))["train"]
        assert loaded["id"] == [row["id"] for row in rows]  # sorted by id
        assert loaded["answer"] == [row["answer"] for row in rows] and set(loaded["domain"]) == {domain}
    # Lineage and judgement go out; internal columns stay in the run.
    assert {"id", "instruction", "answer", "domain", "lang", "critique_score", "seed_id", "source_id", "origin"} <= set(everything.column_names)
    assert not {"probe", "reject_reason", "passage", "samples"} & set(everything.column_names)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["cache", "pairs"]  # no temporary folder left


def test_the_card_parses_and_its_metadata_passes_the_offline_checks(run, tmp_path):
    out = tmp_path / "pairs"
    export_final_pairs(run.run_dir, out, seed_licences={"corpus.jsonl": "CC-BY-4.0"})
    card = DatasetCard.load(out / "README.md")
    assert card_metadata_problems(card) == []
    data = card.data.to_dict()
    # The job's model (smollm2-135m) is Apache-2.0; the seed file's licence is the one stated at export.
    assert data["license"] == ["apache-2.0", "cc-by-4.0"] and "license_name" not in data
    assert "| seeds `corpus.jsonl` (3 rows) | cc-by-4.0 | - | stated at export |" in card.text
    assert data["language"] == ["en"] and data["size_categories"] == ["n<1K"]
    assert [config["config_name"] for config in data["configs"]] == ["all", "code", "math", "science"]
    for heading in ("## Columns", "## Licence", "## Funnel", "## Models and prompts", "## Filters", "## Deduplication", "## How it was made"):
        assert heading in card.text
    assert "| critique | critique | critique_low 1 | not measured |" in card.text  # no probe reached the critique
    assert "neither was done" in card.text  # the run has no dedup or decontaminate stage


def test_a_bad_card_header_is_caught_offline(run, tmp_path):
    export_final_pairs(run.run_dir, tmp_path / "pairs")
    card = DatasetCard.load(tmp_path / "pairs" / "README.md")
    card.data.license, card.data.language, card.data.size_categories = "psf-2.0", ["english"], ["tiny"]
    assert card_metadata_problems(card) == [
        "license 'psf-2.0' is not a Hub licence id",
        "language 'english' is not a known code",
        "size category 'tiny' is unknown",
    ]


def test_size_categories_follow_the_row_count():
    assert [size_category(rows) for rows in (0, 999, 1_000, 54_321, 2_000_000)] == ["n<1K", "n<1K", "1K<n<10K", "10K<n<100K", "1M<n<10M"]


def test_an_existing_output_is_refused_and_left_alone(run, tmp_path):
    out = tmp_path / "pairs"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(RunInspectionError, match="already exists"):
        export_final_pairs(run.run_dir, out)
    assert [path.name for path in out.iterdir()] == ["mine.txt"]


def test_a_run_whose_last_stage_has_not_run_is_a_clear_error(run, tmp_path):
    unfinished = tmp_path / "run"
    shutil.copytree(run.run_dir, unfinished)
    job = yaml.safe_load((unfinished / "job.yaml").read_text())
    (unfinished / "job.yaml").write_text(yaml.safe_dump({**job, "stages": ["seeds", "critique", "quality", "tokenize"]}))
    with pytest.raises(RunInspectionError, match="stage 'quality', the run's last before its shards, has not finished"):
        export_final_pairs(unfinished, tmp_path / "pairs")
    assert not (tmp_path / "pairs").exists()


def test_the_cli_exports_final_pairs_without_a_stage_and_a_stage_with_one(run, tmp_path, capsys):
    out = tmp_path / "pairs"
    assert main(["export", str(run.run_dir), "--format", "hf", str(out), "--seed-license", "corpus.jsonl=mit"]) == 0
    assert "5 final pairs of stage critique" in capsys.readouterr().out
    assert DatasetCard.load(out / "README.md").data.license == ["apache-2.0", "mit"]
    # The per-stage form is unchanged: a stage name is a stage.
    assert main(["export", str(run.run_dir), "seeds", "--format", "hf", "-o", str(tmp_path / "seeds")]) == 0
    assert datasets.load_from_disk(str(tmp_path / "seeds")).num_rows == 3
    # A name that is no stage, without --format hf, says how to export the final pairs.
    assert main(["export", str(run.run_dir), "critiq"]) == 2
    assert "'critiq' is no stage" in capsys.readouterr().err
