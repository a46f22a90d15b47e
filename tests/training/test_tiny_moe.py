"""A tiny Hunyuan-shaped MoE trains on a real run's shards through the packed reader, and resumes.

The training is a plain PyTorch loop: batches of `PackedSequenceReader.next_sequence()`, the
loss weighted by `label_mask`. Halfway, it checkpoints the model, the optimizer and the reader's
`state_dict()` as JSON, and a fresh model, optimizer and reader continue from the checkpoint, as
a restarted job would.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from synthmix.pipeline.tokens.mixture import read_mix
from synthmix.pipeline.tokens.packing import PackedSequence, PackedSequenceReader
from tests.training.conftest import VOCAB_SIZE
from tests.training.tiny_moe import Step, TinyMoE, TinyMoEConfig, train_step

SEQ_LEN = 128
BATCH = 8
STEPS_BEFORE_RESTART = 20
STEPS_AFTER_RESTART = 20
SEED = 11


@dataclass(frozen=True)
class Training:
    steps: list[Step]
    uninterrupted: list[PackedSequence]  # what one reader, never restarted, yields over as many sequences


def reader_for(mix_path, state=None) -> PackedSequenceReader:
    return PackedSequenceReader(mix_path, phase="main", seq_len=SEQ_LEN, seed=SEED, state=state)


def train(model: TinyMoE, optimizer: torch.optim.Optimizer, reader: PackedSequenceReader, steps: int) -> list[Step]:
    return [train_step(model, optimizer, [reader.next_sequence() for _ in range(BATCH)]) for _ in range(steps)]


def new_optimizer(model: TinyMoE) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)


@pytest.fixture(scope="module")
def training(instruction_mix, tmp_path_factory) -> Training:
    torch.manual_seed(0)
    config = TinyMoEConfig(vocab_size=VOCAB_SIZE)
    model = TinyMoE(config)
    optimizer = new_optimizer(model)
    reader = reader_for(instruction_mix.mix_path)
    steps = train(model, optimizer, reader, STEPS_BEFORE_RESTART)

    checkpoint = tmp_path_factory.mktemp("checkpoint")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, checkpoint / "model.pt")
    (checkpoint / "reader.json").write_text(json.dumps(reader.state_dict()))
    del model, optimizer, reader

    saved = torch.load(checkpoint / "model.pt")
    model = TinyMoE(config)
    model.load_state_dict(saved["model"])
    optimizer = new_optimizer(model)
    optimizer.load_state_dict(saved["optimizer"])
    reader = reader_for(instruction_mix.mix_path, state=json.loads((checkpoint / "reader.json").read_text()))
    steps += train(model, optimizer, reader, STEPS_AFTER_RESTART)

    fresh = reader_for(instruction_mix.mix_path)
    uninterrupted = [fresh.next_sequence() for _ in range((STEPS_BEFORE_RESTART + STEPS_AFTER_RESTART) * BATCH)]
    return Training(steps=steps, uninterrupted=uninterrupted)


def test_the_loss_falls(training):
    losses = [step.loss for step in training.steps]
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < first - 1.5, f"loss went from {first:.2f} to {last:.2f}"


def test_the_resumed_reader_continues_without_repeating_or_skipping_a_sequence(training):
    trained = [sequence for step in training.steps for sequence in step.sequences]
    assert len(trained) == len(training.uninterrupted)
    for index, (got, want) in enumerate(zip(trained, training.uninterrupted, strict=True)):
        for name in ("input_ids", "labels", "label_mask", "position_ids", "segment_ids"):
            assert np.array_equal(getattr(got, name), getattr(want, name)), f"sequence {index}: {name}"
    # The restart fell inside a document: the first resumed sequence continues it.
    assert trained[STEPS_BEFORE_RESTART * BATCH].continues_document


def first_epoch_documents(training, rows_by_source: dict[str, int]) -> dict[tuple[str, int], dict]:
    """Each source's first-epoch documents as trained: their tokens and the positions trained as targets."""
    documents: dict[tuple[str, int], dict] = defaultdict(lambda: {"ids": [], "targets": set()})
    started: Counter[str] = Counter()
    for step in training.steps:
        for sequence, weights in zip(step.sequences, step.weights, strict=True):
            for segment, source in enumerate(sequence.sources, start=1):
                where = sequence.segment_ids == segment
                positions = sequence.position_ids[where]
                if positions[0] == 0:
                    started[source] += 1
                key = (source, started[source])
                if started[source] <= rows_by_source[source]:
                    documents[key]["ids"] += sequence.input_ids[where].tolist()
                    # A weight at position p trains the token at p + 1 of the same document.
                    documents[key]["targets"] |= {int(p) + 1 for p in positions[weights[where] == 1]}
    unfinished = [source for source, rows in rows_by_source.items() if started[source] <= rows]
    assert not unfinished, f"training ended inside the first epoch of {unfinished}; train for more steps"
    return documents


def test_the_model_trains_on_exactly_the_unmasked_tokens_of_the_shards(instruction_mix, training):
    mix = read_mix(instruction_mix.mix_path)
    documents = first_epoch_documents(training, mix.rows_by_source)
    shards = instruction_mix.shards
    unmasked = {  # shard row's ids -> positions of its unmasked tokens (the first has nothing before it)
        tuple(ids): {i for i, m in enumerate(mask) if m and i > 0}
        for ids, mask in zip(shards["input_ids"].to_pylist(), shards["loss_mask"].to_pylist(), strict=True)
    }
    assert all(mask is not None for mask in shards["loss_mask"].to_pylist()), "every row is an instruction pair"

    trained_count = sum(len(document["targets"]) for document in documents.values())
    trained_weights = sum(int(step.weights.sum()) for step in training.steps)
    assert trained_count == sum(len(positions) for positions in unmasked.values())
    assert trained_weights > trained_count  # later epochs train on too; only the first is counted here

    seen = Counter(tuple(document["ids"]) for document in documents.values())
    assert set(seen) == set(unmasked) and set(seen.values()) == {1}, "each shard row once in the first epoch"
    for document in documents.values():
        assert document["targets"] == unmasked[tuple(document["ids"])]
    prompt_tokens = sum(mask.count(0) for mask in shards["loss_mask"].to_pylist())
    assert prompt_tokens > len(unmasked)  # the prompts are masked, more than just each row's first token
