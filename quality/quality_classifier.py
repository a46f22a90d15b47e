"""A fastText supervised classifier of sample quality: train from labelled texts, score P(high), save, load."""

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import fasttext
import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from quality.fasttext_input import to_fasttext_lines

_LABEL_PREFIX = "__label__"


class QualityClassifierParams(BaseModel):
    """fastText training settings; the defaults suit tens of thousands of samples on one core."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    high_label: str = Field("high", pattern=r"^\S+$", description="the label whose probability score_quality returns")
    epoch: int = Field(10, ge=1)
    lr: float = Field(0.5, gt=0)
    dim: int = Field(50, ge=1)
    word_ngrams: int = Field(2, ge=1)
    min_count: int = Field(1, ge=1)
    # fastText's default of 2M buckets makes a 400 MB model at dim 50; 200k keeps it near 40 MB.
    bucket: int = Field(200_000, ge=1)


def train_quality_classifier(
    texts: Sequence[str | None] | pa.Array | pa.ChunkedArray,
    labels: Sequence[str],
    *,
    params: QualityClassifierParams,
    seed: int,
) -> fasttext.FastText._FastText:
    """A classifier fitted on `texts` with their `labels` (at least two distinct ones, one `params.high_label`).

    Training runs on one thread with `seed`, so the same inputs give the same model. fastText reads
    training data only from a file: the texts go to a temporary file that is deleted afterwards.
    """
    lines = to_fasttext_lines(texts, lowercase=True)
    if len(lines) != len(labels):
        raise ValueError(f"{len(lines)} texts but {len(labels)} labels; pass one label per text")
    distinct = sorted(set(labels))
    malformed = [label for label in distinct if not re.fullmatch(r"\S+", label)]
    if malformed:
        raise ValueError(f"labels {malformed[:5]} are empty or contain whitespace, which fastText cannot read; use e.g. 'high'/'low'")
    if params.high_label not in distinct or len(distinct) < 2:
        raise ValueError(
            f"labels {distinct[:10]} must include '{params.high_label}' and at least one other label; "
            "label some texts as the high class and some as another, or set params.high_label"
        )
    with tempfile.TemporaryDirectory(prefix="synthmix-quality-") as folder:
        training_file = Path(folder) / "train.txt"
        training_file.write_text(
            "".join(f"{_LABEL_PREFIX}{label} {line}\n" for label, line in zip(labels, lines, strict=True)),
            encoding="utf-8",
        )
        return fasttext.train_supervised(
            input=str(training_file),
            epoch=params.epoch,
            lr=params.lr,
            dim=params.dim,
            wordNgrams=params.word_ngrams,
            minCount=params.min_count,
            bucket=params.bucket,
            thread=1,
            seed=seed,
            verbose=0,
        )


def score_quality(
    model: fasttext.FastText._FastText,
    texts: Sequence[str | None] | pa.Array | pa.ChunkedArray,
    *,
    high_label: str = "high",
) -> np.ndarray:
    """Probability of `high_label` per text (float32 in [0, 1]), from one batched fastText call."""
    target = _LABEL_PREFIX + high_label
    if target not in model.get_labels():
        raise ValueError(f"the classifier has labels {model.get_labels()} and no '{target}'; pass the high_label it was trained with")
    lines = to_fasttext_lines(texts, lowercase=True)
    if not lines:
        return np.array([], dtype=np.float32)
    label_lists, probability_lists = model.predict(lines, k=-1)
    pairs = zip(label_lists, probability_lists, strict=True)
    scores = np.array([probabilities[list(labels).index(target)] for labels, probabilities in pairs], dtype=np.float32)
    return np.clip(scores, 0.0, 1.0)


def save_quality_classifier(model: fasttext.FastText._FastText, path: Path) -> None:
    """Write the model to `path` (fastText's .bin format)."""
    model.save_model(str(path))


def load_quality_classifier(path: Path) -> fasttext.FastText._FastText:
    """Read a model written by `save_quality_classifier`."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"no quality classifier at {path}; train one with `synthmix quality train` first")
    return fasttext.load_model(str(path))
