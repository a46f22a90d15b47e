import json
import os
import random
import subprocess
import sys
from pathlib import Path
from pydoc_data.topics import topics

import numpy as np
import pytest

from synthmix.quality.quality_classifier import (
    QualityClassifierParams,
    QualityTrainingError,
    load_quality_classifier,
    save_quality_classifier,
    score_quality,
    train_quality_classifier,
)

ROOT = Path(__file__).resolve().parents[2]


def _labelled_texts() -> tuple[list[str], list[str]]:
    """Real pydoc prose labelled high; the same paragraphs with words shuffled and repeated labelled low."""
    rng = random.Random(7)
    texts, labels = [], []
    for paragraph in (p for topic in topics.values() for p in topic.split("\n\n") if len(p.split()) > 20):
        words = paragraph.split()
        rng.shuffle(words)
        texts += [paragraph, " ".join(words[: len(words) // 2] * 2)]
        labels += ["high", "low"]
    return texts, labels


def _split() -> tuple[list[str], list[str], list[str], list[str]]:
    texts, labels = _labelled_texts()
    order = list(range(len(texts)))
    random.Random(0).shuffle(order)
    cut = int(len(order) * 0.8)
    train, test = order[:cut], order[cut:]
    return [texts[i] for i in train], [labels[i] for i in train], [texts[i] for i in test], [labels[i] for i in test]


@pytest.fixture(scope="module")
def split_data() -> tuple[list[str], list[str], list[str], list[str]]:
    return _split()


@pytest.fixture(scope="module")
def model(split_data):
    train_texts, train_labels, _, _ = split_data
    return train_quality_classifier(train_texts, train_labels, params=QualityClassifierParams(), seed=1)


def test_classifier_separates_held_out_real_from_degraded_text(model, split_data) -> None:
    _, _, test_texts, test_labels = split_data
    scores = score_quality(model, test_texts)
    high = np.array(test_labels) == "high"
    assert scores.dtype == np.float32 and np.all((scores >= 0) & (scores <= 1))
    assert scores[high].mean() - scores[~high].mean() > 0.3
    assert ((scores > 0.5) == high).mean() > 0.75


def test_saved_and_loaded_classifier_gives_the_same_scores(model, split_data, tmp_path) -> None:
    _, _, test_texts, _ = split_data
    save_quality_classifier(model, tmp_path / "quality.bin")
    loaded = load_quality_classifier(tmp_path / "quality.bin")
    np.testing.assert_array_equal(score_quality(loaded, test_texts), score_quality(model, test_texts))


def test_same_data_and_seed_train_the_same_classifier(model, split_data) -> None:
    train_texts, train_labels, test_texts, _ = split_data
    again = train_quality_classifier(train_texts, train_labels, params=QualityClassifierParams(), seed=1)
    np.testing.assert_array_equal(score_quality(again, test_texts), score_quality(model, test_texts))


# A process whose allocator hands back freed memory full of 1e30 (glibc told never to map fresh
# memory nor give any back): before training zero-filled its allocations, fastText read that as
# the untouched nine tenths of its input matrix and ended in "Encountered NaN."; after other tests
# had run, the same data and seed gave another model.
DIRTY_MEMORY = {"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=4000000000"}
TRAIN_IN_DIRTY_MEMORY = """
import json, numpy as np
from tests.quality.test_quality_classifier import _split
from synthmix.quality.quality_classifier import QualityClassifierParams, score_quality, train_quality_classifier
train_texts, train_labels, test_texts, _ = _split()
junk = np.full(40_000_000, 1e30, dtype=np.float32)  # 160 MB: room for the matrix and what fastText allocates first
del junk
model = train_quality_classifier(train_texts, train_labels, params=QualityClassifierParams(), seed=1)
print(json.dumps(score_quality(model, test_texts).tolist()))
"""


def test_training_gives_the_same_model_whatever_memory_the_allocator_reuses(model, split_data) -> None:
    env = {**os.environ, **DIRTY_MEMORY, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", TRAIN_IN_DIRTY_MEMORY], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    scores = np.array(json.loads(done.stdout.strip().splitlines()[-1]), dtype=np.float32)
    np.testing.assert_array_equal(scores, score_quality(model, split_data[2]))


def test_training_that_diverges_names_the_setting_to_lower(split_data) -> None:
    train_texts, train_labels, _, _ = split_data
    with pytest.raises(QualityTrainingError, match=r"diverged \(its loss became NaN\) at lr=100 .*lower lr, e\.g\. to 25 \(`synthmix quality train --lr`\)"):
        train_quality_classifier(train_texts[:400], train_labels[:400], params=QualityClassifierParams(lr=100), seed=0)


def test_training_needs_the_high_label_and_another() -> None:
    with pytest.raises(ValueError, match="must include 'high'"):
        train_quality_classifier(["a", "b"], ["good", "bad"], params=QualityClassifierParams(), seed=0)
    with pytest.raises(ValueError, match="at least one other label"):
        train_quality_classifier(["a", "b"], ["high", "high"], params=QualityClassifierParams(), seed=0)


def test_labels_with_whitespace_are_refused() -> None:
    with pytest.raises(ValueError, match="contain whitespace"):
        train_quality_classifier(["a", "b"], ["high", "not good"], params=QualityClassifierParams(), seed=0)


def test_scoring_with_a_label_the_model_lacks_is_an_error(model) -> None:
    with pytest.raises(ValueError, match="no '__label__good'"):
        score_quality(model, ["text"], high_label="good")


def test_loading_a_missing_classifier_says_how_to_make_one(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="synthmix quality train"):
        load_quality_classifier(tmp_path / "absent.bin")
