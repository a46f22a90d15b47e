"""`synthmix quality train`: fit the fastText quality classifier the `quality` stage applies.

Labelled rows come from Parquet, in one of two ways:
- `--input GLOB... --label-column C`: one set with a label column — bool (true = high), text
  (the value named by `--high-label` is high), or a number with `--threshold` (>= is high);
- `--positive PATH... --negative PATH...`: two sets, e.g. a run's `critique` (accepted) and
  `critique/rejects` (`--reasons critique_low` keeps only rejects for that reason).
A PATH is a Parquet file, a glob, or a folder (its `*.parquet`, not its subfolders).
Each row's text is chosen as the `quality` stage chooses it (`synthmix.pipeline.inputs.sample_text`), so the
model is trained on the same text it will judge. A held-out share reports accuracy.
"""

from __future__ import annotations

import argparse
import glob
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import ValidationError

from synthmix.pipeline import contracts
from synthmix.pipeline.inputs.sample_text import row_texts
from synthmix.quality.quality_classifier import QualityClassifierParams, QualityTrainingError, save_quality_classifier, score_quality, train_quality_classifier

LOW_LABEL = "low"


class TrainingInputError(ValueError):
    """Labelled input that cannot train a classifier: no files, a missing column, one class only."""


@dataclass(frozen=True)
class TrainingSummary:
    rows: int
    high: int
    low: int
    held_out: int
    held_out_accuracy: float | None
    wall_s: float


def find_parquet_files(pattern: str) -> list[Path]:
    """A file, a folder's `*.parquet`, or a glob; raises TrainingInputError when nothing matches."""
    path = Path(pattern)
    if path.is_dir():
        files = sorted(path.glob("*.parquet"))
    else:
        files = sorted(Path(match) for match in glob.glob(pattern, recursive=True))
    if not files:
        raise TrainingInputError(f"{pattern!r} names no Parquet file; give a file, a glob or a folder holding *.parquet (e.g. runs/NAME/critique)")
    return files


def read_labelled_set(patterns: list[str], *, text_column: str | None, reasons: list[str] | None) -> pa.Array:
    """The texts of every row of the files, keeping only rejects with one of `reasons` when given."""
    texts = []
    for pattern in patterns:
        for path in find_parquet_files(pattern):
            table = pq.read_table(path)
            if reasons is not None and contracts.REJECT_REASON in table.column_names:
                table = table.filter(pc.is_in(table[contracts.REJECT_REASON], value_set=pa.array(reasons, pa.string())))
            texts.append(_texts_of(table, text_column, path))
    return pa.concat_arrays(texts) if texts else pa.array([], pa.string())


def read_labelled_column(
    patterns: list[str], *, label_column: str, high_label: str, threshold: float | None, text_column: str | None
) -> tuple[pa.Array, list[str]]:
    """Texts and high/low labels from one set with a label column."""
    texts, labels = [], []
    for pattern in patterns:
        for path in find_parquet_files(pattern):
            table = pq.read_table(path)
            if label_column not in table.column_names:
                raise TrainingInputError(f"{path} has no column {label_column!r} (columns: {', '.join(table.column_names)}); pass --label-column")
            labels.extend(_labels_of(table[label_column], high_label, threshold, path))
            texts.append(_texts_of(table, text_column, path))
    return (pa.concat_arrays(texts) if texts else pa.array([], pa.string())), labels


def _texts_of(table: pa.Table, text_column: str | None, path: Path) -> pa.Array:
    try:
        return row_texts(table, text_column)
    except ValueError as error:
        raise TrainingInputError(f"{path}: {error}") from None


def _labels_of(values: pa.ChunkedArray, high_label: str, threshold: float | None, path: Path) -> list[str]:
    kind = values.type
    if pa.types.is_boolean(kind):
        return [high_label if value else LOW_LABEL for value in values.to_pylist()]
    if pa.types.is_integer(kind) or pa.types.is_floating(kind):
        if threshold is None:
            raise TrainingInputError(f"{path}: label column is numeric ({kind}); pass --threshold T (rows >= T are {high_label!r})")
        return [high_label if value is not None and value >= threshold else LOW_LABEL for value in values.to_pylist()]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return [high_label if value == high_label else LOW_LABEL for value in values.to_pylist()]
    raise TrainingInputError(f"{path}: label column type {kind} is not bool, number or text")


def train_and_save(texts: pa.Array, labels: list[str], output: Path, *, params: QualityClassifierParams, seed: int, holdout: float) -> TrainingSummary:
    """Train on all but a seeded `holdout` share, report its accuracy, save the model to `output`."""
    started = time.perf_counter()
    high = sum(label == params.high_label for label in labels)
    if high == 0 or high == len(labels):
        raise TrainingInputError(
            f"{len(labels)} rows, {high} labelled {params.high_label!r}: a classifier needs both classes; "
            "check --label-column/--threshold or the --positive/--negative paths"
        )
    held = np.random.default_rng(seed).random(len(labels)) < holdout
    train_index = np.flatnonzero(~held)
    train_high = sum(labels[i] == params.high_label for i in train_index)
    if train_high in (0, len(train_index)):
        raise TrainingInputError(
            f"after holding out {int(held.sum())} of {len(labels)} rows, the training rows hold one class only; label more rows, or pass --holdout 0"
        )
    model = train_quality_classifier(texts.take(pa.array(train_index)), [labels[i] for i in train_index], params=params, seed=seed)
    accuracy = None
    if held.any():
        held_index = np.flatnonzero(held)
        scores = score_quality(model, texts.take(pa.array(held_index)), high_label=params.high_label)
        truth = np.array([labels[i] == params.high_label for i in held_index])
        accuracy = float(np.mean((scores >= 0.5) == truth))
    output.parent.mkdir(parents=True, exist_ok=True)
    save_quality_classifier(model, output)
    return TrainingSummary(
        rows=len(labels),
        high=high,
        low=len(labels) - high,
        held_out=int(held.sum()),
        held_out_accuracy=accuracy,
        wall_s=time.perf_counter() - started,
    )


def command_quality_train(args: argparse.Namespace) -> int:
    try:
        params = QualityClassifierParams(high_label=args.high_label, epoch=args.epoch, lr=args.lr, dim=args.dim, word_ngrams=args.word_ngrams)
        if args.input:
            if not args.label_column:
                raise TrainingInputError("--input needs --label-column naming the column that labels each row")
            texts, labels = read_labelled_column(
                args.input, label_column=args.label_column, high_label=args.high_label, threshold=args.threshold, text_column=args.text_column
            )
        else:
            if not args.positive or not args.negative:
                raise TrainingInputError("give --input with --label-column, or both --positive and --negative")
            reasons = args.reasons.split(",") if args.reasons else None
            positive = read_labelled_set(args.positive, text_column=args.text_column, reasons=None)
            negative = read_labelled_set(args.negative, text_column=args.text_column, reasons=reasons)
            texts = pa.concat_arrays([positive, negative])
            labels = [args.high_label] * len(positive) + [LOW_LABEL] * len(negative)
        summary = train_and_save(texts, labels, args.output, params=params, seed=args.seed, holdout=args.holdout)
    except (TrainingInputError, ValidationError, QualityTrainingError) as error:
        print(f"synthmix: error: {error}", file=sys.stderr)
        return 2
    accuracy = f"{summary.held_out_accuracy:.3f}" if summary.held_out_accuracy is not None else "n/a"
    print(
        f"trained on {summary.rows - summary.held_out} of {summary.rows} rows ({summary.high} {args.high_label}, {summary.low} {LOW_LABEL}) "
        f"in {summary.wall_s:.1f} s; held-out accuracy {accuracy} on {summary.held_out} rows; model written to {args.output}"
    )
    return 0


def add_quality_parser(commands: argparse._SubParsersAction) -> None:
    """`synthmix quality train ...`."""
    quality = commands.add_parser("quality", help="train the fastText quality classifier the quality stage applies")
    actions = quality.add_subparsers(dest="quality_command", required=True)
    train = actions.add_parser("train", help="fit a classifier from labelled Parquet (e.g. a run's critique accepted vs rejected rows)")
    train.add_argument("--input", nargs="+", metavar="PARQUET", help="files, globs or folders with a label column")
    train.add_argument("--label-column", help="bool (true = high), text (== --high-label) or number (>= --threshold)")
    train.add_argument("--threshold", type=float, help="for a numeric label column, e.g. critique_score: rows >= T are high")
    train.add_argument("--positive", nargs="+", metavar="PATH", help="high-quality rows, e.g. runs/NAME/critique")
    train.add_argument("--negative", nargs="+", metavar="PATH", help="low-quality rows, e.g. runs/NAME/critique/rejects")
    train.add_argument("--reasons", metavar="R1,R2", help="keep only negative rows rejected for these reasons, e.g. critique_low")
    train.add_argument("--text-column", help="column to learn from (default: instruction + answer, else text), as the quality stage reads")
    train.add_argument("--high-label", default="high", help="label of the high class (default: high)")
    train.add_argument("--epoch", type=int, default=10)
    train.add_argument("--lr", type=float, default=QualityClassifierParams.model_fields["lr"].default, help="fastText's learning rate (default %(default)s)")
    train.add_argument("--dim", type=int, default=50)
    train.add_argument("--word-ngrams", type=int, default=2)
    train.add_argument("--holdout", type=float, default=0.1, help="share of rows held out to report accuracy (default 0.1; 0: none)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("-o", "--output", type=Path, required=True, help="model file to write, e.g. models/quality.bin")
    train.set_defaults(handler=command_quality_train)
