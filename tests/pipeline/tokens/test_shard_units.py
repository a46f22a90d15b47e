"""Planning tokenize tasks over input files, and publishing committed parts as the shard folder."""

import os

import pyarrow as pa
import pyarrow.parquet as pq

from synthmix.pipeline.file_digest import sha256_file
from synthmix.pipeline.tokens.shard_units import balanced_groups, publish_shards
from synthmix.pipeline.tokens.shards import ShardWriter

TOKENIZER = {"name": "test", "kind": "tiktoken"}


def files_of_sizes(tmp_path, sizes):
    paths = []
    for index, size in enumerate(sizes):
        path = tmp_path / f"part-{index:03d}.parquet"
        path.write_bytes(b"x" * size)
        paths.append(path)
    return paths


def test_groups_are_consecutive_runs_of_similar_bytes(tmp_path):
    files = files_of_sizes(tmp_path, [100, 100, 100, 100, 400, 100, 100, 100, 100])
    groups = balanced_groups(files, 2)
    assert [path for group in groups for path in group] == files
    sizes = [sum(path.stat().st_size for path in group) for group in groups]
    assert len(groups) == 2 and max(sizes) <= 800, sizes


def test_never_more_groups_than_files_or_slots(tmp_path):
    files = files_of_sizes(tmp_path, [10, 10, 10])
    assert balanced_groups(files, 8) == [[path] for path in files]
    assert balanced_groups(files, 1) == [files]
    assert balanced_groups([], 4) == []


def shard_rows(start, count, tokens=5):
    return pa.table(
        {
            "input_ids": [[1] * tokens for _ in range(count)],
            "loss_mask": pa.nulls(count, pa.list_(pa.uint8())),
            "num_tokens": [tokens] * count,
            "id": [f"r{start + i:04d}" for i in range(count)],
            "seed_id": ["s"] * count,
            "source": ["src"] * count,
            "domain": ["general"] * count,
            "synthetic": [False] * count,
            "meta": ["{}"] * count,
            "source_id": [None] * count,
            "origin": [None] * count,
        }
    )


def test_published_shards_are_the_parts_in_order_and_the_swap_keeps_other_stages_files(tmp_path):
    parts = []
    for index in range(3):
        with ShardWriter(tmp_path / "parts", prefix=f"p{index}", tokenizer=TOKENIZER) as writer:
            writer.write(shard_rows(index * 10, 4 + index))
        parts.append(writer.close()[0].path)
    shard_dir = tmp_path / "shards"
    shard_dir.mkdir()
    (shard_dir / "shard-00007.parquet").write_bytes(b"stale")
    (shard_dir / "mix.json").write_text("{}")  # the mix stage's, not tokenize's
    (shard_dir / "megatron").mkdir()
    (shard_dir / "megatron" / "index.json").write_text("{}")
    (tmp_path / ".shards.tmp-9-9").mkdir()  # left by a killed publish

    shards = publish_shards(parts, shard_dir)
    assert [info.path.name for info in shards] == ["shard-00000.parquet", "shard-00001.parquet", "shard-00002.parquet"]
    assert [(info.rows, info.tokens) for info in shards] == [(4, 20), (5, 25), (6, 30)]
    assert sorted(path.name for path in shard_dir.iterdir()) == ["megatron", "mix.json", *[info.path.name for info in shards]]
    assert (shard_dir / "mix.json").read_text() == "{}" and (shard_dir / "megatron" / "index.json").is_file()
    for info, part in zip(shards, parts):
        assert info.sha256 == sha256_file(part) == sha256_file(info.path)
        assert os.path.samefile(info.path, part), "a hard link, not a copy"
        assert pq.read_table(info.path)["id"].to_pylist() == pq.read_table(part)["id"].to_pylist()
    assert not list(tmp_path.glob(".shards.*"))
