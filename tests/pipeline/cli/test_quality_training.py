"""`synthmix quality train`: train on a small run's accepted vs rejected rows, then apply the model in a quality stage."""

from pydoc_data.topics import topics

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.cli import main
from synthmix.quality.quality_classifier import load_quality_classifier, score_quality
from tests.stages.answer_rows import answer_row, run_after_answers

PRODUCTS = ["running shoes", "smart watches", "phone cases", "garden chairs", "coffee makers", "winter coats", "desk lamps", "headphones"]
HOOKS = ["Click here to grab", "Sign up for free and win", "Subscribe to our newsletter for", "Tap here for cheap"]
CLOSERS = ["All rights reserved.", "See our privacy policy.", "Terms of service apply.", "We use cookies to improve your visit."]


def documentation_paragraphs() -> list[str]:
    """Real English prose: paragraphs of Python's documentation topics."""
    paragraphs = [part.strip() for name in sorted(topics) for part in topics[name].split("\n\n")]
    return [part for part in paragraphs if 25 <= len(part.split()) <= 120 and "    " not in part]


def spam(index: int) -> str:
    product, other = PRODUCTS[index % len(PRODUCTS)], PRODUCTS[(index * 3 + 1) % len(PRODUCTS)]
    return (
        f"{HOOKS[index % len(HOOKS)]} the best deals on {product}! Limited offer: {10 + index % 60}% off {other} "
        f"today only, buy now while stocks last. {CLOSERS[index % len(CLOSERS)]}"
    )


def pairs(paragraphs: list[str], spam_indexes: range, prefix: str) -> list[dict]:
    good = [answer_row(f"{prefix}good{i}", "Explain this part of Python.", text) for i, text in enumerate(paragraphs)]
    bad = [answer_row(f"{prefix}spam{i}", "Explain this part of Python.", spam(i)) for i in spam_indexes]
    return good + bad


def test_a_classifier_trained_on_a_runs_accepted_vs_rejected_rows_filters_the_next_run(tmp_path, ray_session, capsys):
    paragraphs = documentation_paragraphs()
    assert len(paragraphs) >= 100
    # Run 1: heuristics reject the spam as boilerplate; its accepted rows and rejects label the data.
    first = run_after_answers(tmp_path, pairs(paragraphs[:60], range(60), "a"), "quality", {}, name="first")
    assert first.manifest["rejected"].get("boilerplate") == 60

    model = tmp_path / "models" / "quality.bin"
    run_dir = tmp_path / "first" / "quality"
    code = main(["quality", "train", "--positive", str(run_dir), "--negative", str(run_dir / "rejects"), "--reasons", "boilerplate", "-o", str(model)])
    assert code == 0 and model.is_file()
    assert "model written to" in capsys.readouterr().out

    # Run 2: new rows, boilerplate rule off, so only the classifier can catch the spam.
    section = {"classifier": "models/quality.bin", "min_quality": 0.5, "heuristics": {"max_boilerplate_matches": None}}
    second = run_after_answers(tmp_path, pairs(paragraphs[60:100], range(60, 100), "b"), "quality", section, name="second")
    low = [row for row in second.rejected.values() if row["reject_reason"] == "quality_low"]
    assert {row["id"] for row in low} == {f"bspam{i}" for i in range(60, 100)}
    assert all(row["quality_score"] < 0.5 for row in low)
    assert sum(row_id.startswith("bgood") for row_id in second.accepted) >= 36
    assert all(row["quality_score"] >= 0.5 for row in second.accepted.values())
    assert second.manifest["rows_in"] == 80 == len(second.accepted) + len(second.rejected)


def test_a_labelled_column_trains_from_bool_labels_and_reports_held_out_accuracy(tmp_path, capsys):
    paragraphs = documentation_paragraphs()[:80]
    texts = paragraphs + [spam(i) for i in range(80)]
    labels = [True] * 80 + [False] * 80
    pq.write_table(pa.table({"text": texts, "good": labels}), tmp_path / "labelled.parquet")
    model_path = tmp_path / "model.bin"
    assert main(["quality", "train", "--input", str(tmp_path / "labelled.parquet"), "--label-column", "good", "-o", str(model_path)]) == 0
    output = capsys.readouterr().out
    assert "held-out accuracy" in output and "80 high, 80 low" in output
    model = load_quality_classifier(model_path)
    scores = score_quality(model, [spam(500), paragraphs[0]])
    assert scores[0] < 0.5 < scores[1]


@pytest.mark.parametrize(
    "table, extra, message",
    [
        (pa.table({"text": ["a", "b"], "score": [1.0, 9.0]}), [], "pass --threshold"),
        (pa.table({"text": ["a", "b"], "score": [7.0, 9.0]}), ["--threshold", "5"], "needs both classes"),
        (pa.table({"body": ["a", "b"], "score": [1.0, 9.0]}), ["--threshold", "5"], "set text_column"),
    ],
)
def test_unusable_labels_exit_with_a_message_naming_the_fix(tmp_path, capsys, table, extra, message):
    pq.write_table(table, tmp_path / "set.parquet")
    code = main(["quality", "train", "--input", str(tmp_path / "set.parquet"), "--label-column", "score", *extra, "-o", str(tmp_path / "m.bin")])
    assert code == 2
    assert message in capsys.readouterr().err


def test_training_that_diverges_exits_naming_the_learning_rate(tmp_path, capsys):
    texts = documentation_paragraphs()[:80] + [spam(i) for i in range(80)]
    pq.write_table(pa.table({"text": texts, "good": [True] * 80 + [False] * 80}), tmp_path / "labelled.parquet")
    code = main(["quality", "train", "--input", str(tmp_path / "labelled.parquet"), "--label-column", "good", "--lr", "1000", "-o", str(tmp_path / "m.bin")])
    assert code == 2
    assert "diverged (its loss became NaN) at lr=1000" in capsys.readouterr().err
    assert not (tmp_path / "m.bin").exists()


def test_a_path_with_no_parquet_is_an_error(tmp_path, capsys):
    code = main(["quality", "train", "--positive", str(tmp_path / "nothing"), "--negative", str(tmp_path), "-o", str(tmp_path / "m.bin")])
    assert code == 2
    assert "names no Parquet file" in capsys.readouterr().err
