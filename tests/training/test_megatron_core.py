"""Megatron-Core reads a real run's Megatron export the way a Megatron-LM job does, on CPU.

`megatron-core` (dev extra) is NVIDIA's own data path: `IndexedDataset` reads the `.bin/.idx`
files, `IndexedDatasetBuilder` is the writer ours must match byte for byte, and
`BlendedMegatronDatasetBuilder` turns a `--data-args-path` file into the blended GPT dataset a
trainer samples from. Its compiled `helpers_cpp` (sample and blending indices) ships in the wheel.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from megatron.core.datasets.blended_megatron_dataset_builder import BlendedMegatronDatasetBuilder
from megatron.core.datasets.gpt_dataset import GPTDataset, GPTDatasetConfig
from megatron.core.datasets.indexed_dataset import DType, IndexedDataset, IndexedDatasetBuilder
from megatron.core.datasets.utils import get_blend_from_list
from megatron.core.tokenizers import MegatronTokenizer

from synthmix.pipeline.cli import main
from synthmix.pipeline.tokens.mixture import read_mix
from tests.training.conftest import SOURCES, VOCAB_SIZE

SEQUENCE_LENGTH = 64
SAMPLES = 600


@pytest.fixture(scope="module")
def export_dir(instruction_mix, tmp_path_factory):
    """The documented command: `synthmix megatron MIX_JSON OUT_DIR`."""
    out = tmp_path_factory.mktemp("megatron")
    assert main(["megatron", str(instruction_mix.mix_path), str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def one_rank_process_group(tmp_path_factory):
    """What torchrun gives a Megatron-LM job: BlendedDataset asks torch.distributed for its rank
    before it writes its cache. One gloo rank runs on CPU."""
    import torch.distributed as dist

    if dist.is_initialized():
        yield
        return
    dist.init_process_group("gloo", init_method=f"file://{tmp_path_factory.mktemp('rendezvous') / 'store'}", world_size=1, rank=0)
    yield
    dist.destroy_process_group()


def rows_of(instruction_mix, source: str) -> list[list[int]]:
    shards = instruction_mix.shards
    return [ids for ids, s in zip(shards["input_ids"].to_pylist(), shards["source"].to_pylist(), strict=True) if s == source]


def test_indexed_dataset_gives_every_shard_row_document_for_document(instruction_mix, export_dir):
    for source in SOURCES:
        rows = rows_of(instruction_mix, source)
        dataset = IndexedDataset(str(export_dir / f"{source}_text_document"))
        assert len(dataset) == len(rows) > 0
        assert np.array_equal(dataset.document_indices, np.arange(len(rows) + 1))
        assert [dataset[i].tolist() for i in range(len(dataset))] == rows
        assert dataset.index.dtype == np.uint16  # a 2,000-token vocabulary


def test_export_is_byte_identical_to_megatron_cores_own_builder(instruction_mix, export_dir, tmp_path):
    for source in SOURCES:
        reference = tmp_path / f"{source}_reference"
        builder = IndexedDatasetBuilder(f"{reference}.bin", dtype=DType.optimal_dtype(VOCAB_SIZE))
        for row in rows_of(instruction_mix, source):
            builder.add_document(torch.tensor(row), [len(row)])
        builder.finalize(f"{reference}.idx")
        for extension in (".bin", ".idx"):
            ours = (export_dir / f"{source}_text_document{extension}").read_bytes()
            assert ours == (tmp_path / f"{source}_reference{extension}").read_bytes(), f"{source}{extension}"


@pytest.mark.parametrize("phase", ["main", "anneal"])
def test_a_phase_blend_is_sampled_in_the_mix_weights(instruction_mix, export_dir, one_rank_process_group, tmp_path, phase):
    # `--data-args-path FILE`: Megatron-LM reads the file's words as it would `--data-path`'s.
    blend = get_blend_from_list((export_dir / f"data-args-{phase}.txt").read_text().split())
    config = GPTDatasetConfig(
        random_seed=1234,
        sequence_length=SEQUENCE_LENGTH,
        blend=blend,
        split="100,0,0",
        path_to_cache=str(tmp_path / "cache"),  # --data-cache-path
        # --tokenizer-type NullTokenizer --vocab-size V: the ids are already tokens.
        tokenizer=MegatronTokenizer.from_pretrained(metadata_path={"library": "null"}, vocab_size=VOCAB_SIZE),
        reset_position_ids=False,
        reset_attention_mask=False,
        eod_mask_loss=False,
    )
    train, valid, test = BlendedMegatronDatasetBuilder(GPTDataset, [SAMPLES, 0, 0], lambda: True, config).build()
    assert valid is None and test is None and len(train) >= SAMPLES

    weights = read_mix(instruction_mix.mix_path).phases[phase]
    sources = [prefix.rsplit("/", 1)[1].removesuffix("_text_document") for prefix in blend[0]]
    documents = {source: [" ".join(map(str, row)) for row in rows_of(instruction_mix, source)] for source in sources}
    eos = int(read_mix(instruction_mix.mix_path).tokenizer["eos_id"])
    drawn = np.zeros(len(sources), dtype=int)
    for index in range(len(train)):
        sample = train[index]
        source = sources[int(sample["dataset_id"])]
        drawn[int(sample["dataset_id"])] += 1
        tokens = np.append(sample["tokens"].numpy(), sample["labels"][-1].item())
        # Split at end-of-document ids: every piece is a run of tokens of one of that source's documents.
        for piece in np.split(tokens, np.flatnonzero(tokens == eos) + 1):
            if len(piece):
                text = " ".join(map(str, piece))
                assert any(text in document for document in documents[source]), f"sample {index} has tokens not of {source}"
    for source, count in zip(sources, drawn, strict=True):
        share, expected = count / len(train), weights[source]
        assert abs(share - expected) <= 3 * math.sqrt(expected * (1 - expected) / len(train)), (source, share, expected)
    assert set(sources) == {source for source, weight in weights.items() if weight > 0}
