"""Compaction of id-sorted part files into shards: one id order, however the rows were split."""

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.shard_compaction import UnsortedRunError, compact_into_shards, merge_sorted_runs
from pipeline.shards import SHARD_SCHEMA

TOKENIZER = {"name": "test", "vocab_size": 1000}


def shard_rows(count: int, seed: int = 0) -> pa.Table:
    rng = random.Random(seed)
    ids = [f"{rng.getrandbits(64):016x}" for _ in range(count)]
    lengths = [rng.randint(1, 40) for _ in range(count)]
    return pa.Table.from_pylist(
        [
            {"input_ids": list(range(n)), "loss_mask": None, "num_tokens": n, "id": row_id, "seed_id": f"s{i % 7}",
             "source": "a" if i % 3 else "b", "domain": "general", "synthetic": False, "meta": "{}"}
            for i, (row_id, n) in enumerate(zip(ids, lengths))
        ],
        schema=SHARD_SCHEMA,
    )


def write_parts(rows: pa.Table, directory, sizes: list[int]) -> list:
    directory.mkdir()
    paths, start = [], 0
    for index, size in enumerate(sizes):
        part = rows.slice(start, size).sort_by("id")
        pq.write_table(part, directory / f"part-{index:03d}.parquet")
        paths.append(directory / f"part-{index:03d}.parquet")
        start += size
    assert start == rows.num_rows
    return paths


def test_merge_yields_every_row_once_in_id_order(tmp_path):
    rows = shard_rows(500)
    assert list(merge_sorted_runs([], chunk_rows=8)) == []
    paths = write_parts(rows, tmp_path / "parts", [100, 3, 197, 200])
    merged = pa.concat_tables(list(merge_sorted_runs(paths, chunk_rows=7)))
    assert merged.column("id").to_pylist() == sorted(rows.column("id").to_pylist())


def test_shards_are_byte_identical_however_the_rows_were_split_into_parts(tmp_path):
    rows = shard_rows(400)
    few = write_parts(rows, tmp_path / "few", [400])
    many = write_parts(rows, tmp_path / "many", [13, 90, 1, 150, 46, 100])
    first = compact_into_shards(few, tmp_path / "shards_a", tokenizer=TOKENIZER, shard_tokens=1500, row_group_tokens=300)
    # fan_in 2 forces two levels of scratch merges before the shards are written.
    second = compact_into_shards(many, tmp_path / "shards_b", tokenizer=TOKENIZER, shard_tokens=1500, row_group_tokens=300, fan_in=2, chunk_rows=16)
    assert len(first) > 1
    assert [(s.path.name, s.rows, s.tokens, s.sha256) for s in first] == [(s.path.name, s.rows, s.tokens, s.sha256) for s in second]
    assert sorted(p.name for p in (tmp_path / "shards_b").iterdir()) == [s.path.name for s in second]
    assert sum(s.rows for s in second) == 400


def test_recompaction_replaces_the_folder_and_keeps_only_named_files(tmp_path):
    rows = shard_rows(50)
    parts = write_parts(rows, tmp_path / "parts", [25, 25])
    shard_dir = tmp_path / "shards"
    compact_into_shards(parts, shard_dir, tokenizer=TOKENIZER, shard_tokens=100)
    (shard_dir / "mix.json").write_text("{}")
    (shard_dir / "stray.parquet").write_bytes(b"old")
    (tmp_path / ".shards.tmp-9-9").mkdir()  # a killed compaction's scratch folder
    compact_into_shards(parts[:1], shard_dir, tokenizer=TOKENIZER, shard_tokens=100, keep=("mix.json",))
    assert (shard_dir / "mix.json").read_text() == "{}"
    assert not (shard_dir / "stray.parquet").exists()
    assert sum(pq.read_metadata(p).num_rows for p in shard_dir.glob("*.parquet")) == 25
    assert not list(tmp_path.glob(".shards.*"))


def test_an_unsorted_part_is_refused_and_the_old_shards_stay(tmp_path):
    rows = shard_rows(30)
    parts = write_parts(rows, tmp_path / "parts", [30])
    shard_dir = tmp_path / "shards"
    before = compact_into_shards(parts, shard_dir, tokenizer=TOKENIZER)
    pq.write_table(rows.sort_by([("id", "descending")]), tmp_path / "unsorted.parquet")
    with pytest.raises(UnsortedRunError, match="not sorted by 'id'"):
        compact_into_shards([tmp_path / "unsorted.parquet"], shard_dir, tokenizer=TOKENIZER)
    assert [p.name for p in shard_dir.glob("*.parquet")] == [s.path.name for s in before]
    assert not list(tmp_path.glob(".shards.*"))
