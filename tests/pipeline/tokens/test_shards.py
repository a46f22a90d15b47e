import json

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.file_digest import sha256_file
from synthmix.pipeline.tokens.rendering import RenderConfig, render_table
from synthmix.pipeline.tokens.shards import (
    SHARD_SCHEMA,
    TOKENIZER_METADATA_KEY,
    ShardWriter,
    conform_to_shard_schema,
    read_shard_tokenizer,
    summarize_shard,
)
from tests.pipeline.corpus import sample_table


@pytest.fixture(scope="module")
def rows(cl100k):
    batch = sample_table(300, sources={"a": 1, "b": 3}, with_text_rows=True)
    return render_table(batch, cl100k, RenderConfig(loss_mask=True))


def write_in_batches(writer: ShardWriter, table: pa.Table, batch_rows: int = 37) -> list:
    with writer:
        for start in range(0, table.num_rows, batch_rows):
            writer.write(table.slice(start, batch_rows))
    return writer.close()


def test_shards_roll_at_the_token_budget_and_keep_every_row_in_order(tmp_path, rows, cl100k):
    budget = 6_000
    infos = write_in_batches(
        ShardWriter(tmp_path, prefix="w0", tokenizer=cl100k.describe(), shard_tokens=budget, row_group_tokens=1_500),
        rows,
    )
    assert len(infos) > 3
    assert [info.path.name for info in infos] == [f"w0-{i:05d}.parquet" for i in range(len(infos))]
    assert all(info.tokens <= budget for info in infos)
    assert sum(info.rows for info in infos) == rows.num_rows
    read_back = pa.concat_tables(pq.read_table(info.path) for info in infos)
    assert read_back.select(SHARD_SCHEMA.names).cast(SHARD_SCHEMA).equals(rows)
    for info in infos:
        assert info.sha256 == sha256_file(info.path)
        assert info.tokens == pq.read_table(info.path).column("num_tokens").to_numpy().sum()


def test_row_groups_hold_at_most_the_configured_tokens(tmp_path, rows, cl100k):
    infos = write_in_batches(ShardWriter(tmp_path, prefix="w0", tokenizer=cl100k.describe(), row_group_tokens=1_000), rows, batch_rows=100)
    (info,) = infos
    metadata = pq.ParquetFile(info.path).metadata
    group_tokens = [pq.ParquetFile(info.path).read_row_group(g, columns=["num_tokens"]).column(0).to_numpy().sum() for g in range(metadata.num_row_groups)]
    assert metadata.num_row_groups > 5
    assert max(group_tokens) <= 1_000
    assert metadata.row_group(0).column(0).compression == "ZSTD"


def test_a_row_larger_than_the_budget_gets_a_shard_of_its_own(tmp_path, rows, cl100k):
    longest = int(np.argmax(rows.column("num_tokens").to_numpy()))
    table = pa.concat_tables([rows.slice(0, 2), rows.slice(longest, 1), rows.slice(3, 2)])
    budget = int(rows.column("num_tokens")[longest].as_py()) - 1
    infos = write_in_batches(ShardWriter(tmp_path, prefix="w0", tokenizer=cl100k.describe(), shard_tokens=budget), table)
    assert [info.rows for info in infos] == [2, 1, 2]


def test_shards_load_with_datasets_and_pyarrow(tmp_path, rows, cl100k):
    infos = write_in_batches(ShardWriter(tmp_path, prefix="w0", tokenizer=cl100k.describe(), shard_tokens=8_000), rows)
    loaded = datasets.load_dataset("parquet", data_files=[str(info.path) for info in infos], split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert loaded.num_rows == rows.num_rows
    assert loaded[0]["input_ids"] == rows.column("input_ids")[0].as_py()
    assert loaded[2]["loss_mask"] is None
    assert pq.read_table(infos[0].path).schema.remove_metadata() == SHARD_SCHEMA


def test_tokenizer_description_travels_in_the_file_metadata(tmp_path, rows, cl100k):
    (info,) = write_in_batches(ShardWriter(tmp_path, prefix="w0", tokenizer=cl100k.describe()), rows)
    assert read_shard_tokenizer(info.path) == cl100k.describe()
    assert json.loads(pq.read_schema(info.path).metadata[TOKENIZER_METADATA_KEY])["eos_id"] == cl100k.eos_id


def test_a_failed_write_leaves_committed_shards_and_no_partial_file(tmp_path, rows, cl100k):
    writer = ShardWriter(tmp_path, prefix="w0", tokenizer=cl100k.describe(), shard_tokens=6_000, row_group_tokens=1_500)
    with pytest.raises(RuntimeError, match="worker died"), writer:
        writer.write(rows.slice(0, 150))
        raise RuntimeError("worker died")
    files = sorted(path.name for path in tmp_path.iterdir())
    assert files and all(not name.startswith(".") for name in files)
    for name in files:
        assert pq.read_table(tmp_path / name).num_rows > 0


def test_rows_missing_lineage_are_refused_before_writing(rows):
    broken = rows.set_column(4, "seed_id", pa.array([None] * rows.num_rows, pa.string()))
    with pytest.raises(ValueError, match="seed_id"):
        conform_to_shard_schema(broken)
    with pytest.raises(ValueError, match="lack columns"):
        conform_to_shard_schema(rows.drop_columns(["domain"]))


def test_summary_counts_rows_and_tokens_by_source_and_domain(tmp_path, rows, cl100k):
    (info,) = write_in_batches(ShardWriter(tmp_path, prefix="w0", tokenizer=cl100k.describe()), rows)
    summary = summarize_shard(info.path)
    tokens = rows.column("num_tokens").to_numpy()
    sources = np.array(rows.column("source").to_pylist())
    assert (summary.rows, summary.tokens, summary.sha256) == (info.rows, info.tokens, info.sha256)
    assert summary.tokens_by_source == {s: int(tokens[sources == s].sum()) for s in ("a", "b")}
    assert summary.rows_by_source == {"a": 150, "b": 150}
    assert sum(summary.tokens_by_domain.values()) == summary.tokens
    assert summary.synthetic_rows == 200
