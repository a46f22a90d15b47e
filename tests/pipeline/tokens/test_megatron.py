import struct

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.tokens.megatron import INDEX_MAGIC, export_megatron, read_megatron_index, read_megatron_sequences
from synthmix.pipeline.tokens.mixture import MixConfig, build_mix, read_mix, write_mix
from synthmix.pipeline.tokens.tokenizers import TokenizerSpec, load_tokenizer
from tests.pipeline.corpus import sample_table, save_trained_hf_tokenizer, write_sample_shards


@pytest.fixture(scope="module")
def mix_path(tmp_path_factory, hunyuan):
    directory = tmp_path_factory.mktemp("shards")
    write_sample_shards(directory, sample_table(200, sources={"docs.en": 2, "web": 1}, with_text_rows=True), hunyuan)
    write_mix(build_mix(directory, MixConfig(phases={"main": {"docs.en": 1, "web": 3}})), directory / "mix.json")
    return directory / "mix.json"


def test_export_reads_back_the_same_tokens_per_source(mix_path, tmp_path):
    exported = export_megatron(mix_path, tmp_path)
    table = pa.concat_tables(pq.read_table(path) for path in sorted(mix_path.parent.glob("*.parquet")))
    for source in ("docs.en", "web"):
        rows = table.filter(pc.equal(table.column("source"), source)).column("input_ids").to_pylist()
        sequences = read_megatron_sequences(exported.datasets[source].prefix)
        assert [s.tolist() for s in sequences] == rows
        assert exported.datasets[source].tokens == sum(len(r) for r in rows)
    assert exported.datasets["docs.en"].prefix.name == "docs.en_text_document"


def test_index_follows_the_mmidx_layout(mix_path, tmp_path):
    prefix = export_megatron(mix_path, tmp_path).datasets["web"].prefix
    raw = (tmp_path / "web_text_document.idx").read_bytes()
    assert raw[:9] == INDEX_MAGIC
    version, dtype_code, sequences, documents = struct.unpack_from("<QBQQ", raw, 9)
    assert (version, dtype_code, documents) == (1, 4, sequences + 1)  # int32: Hunyuan's vocabulary exceeds uint16
    index = read_megatron_index(prefix)
    assert len(raw) == 9 + 25 + 4 * sequences + 8 * sequences + 8 * documents
    assert index.pointers[1] == index.lengths[0] * 4
    assert np.array_equal(index.documents, np.arange(sequences + 1))
    assert (tmp_path / "web_text_document.bin").stat().st_size == int(index.lengths.sum()) * 4


def test_phase_weights_become_a_megatron_blend(mix_path, tmp_path):
    exported = export_megatron(mix_path, tmp_path)
    docs, web = str((tmp_path / "docs.en_text_document").resolve()), str((tmp_path / "web_text_document").resolve())
    assert exported.data_paths["main"] == ["0.25", docs, "0.75", web]
    assert exported.blends["main"].config_blend() == ([docs, web], [0.25, 0.75])
    assert (tmp_path / "data-args-main.txt").read_text() == f"0.25 {docs}\n0.75 {web}\n"
    natural = read_mix(mix_path).phases["anneal"]
    assert exported.data_paths["anneal"][0] == f"{natural['docs.en']:.6g}"


def test_a_phase_weighting_no_exported_source_gets_no_blend(tmp_path, hunyuan):
    write_sample_shards(tmp_path / "shards", sample_table(20, sources={"web": 1}), hunyuan)
    mix_path = tmp_path / "shards" / "mix.json"
    write_mix(build_mix(tmp_path / "shards", MixConfig(phases={"anneal": {"web": 1}})), mix_path)
    export_megatron(mix_path, tmp_path / "out")
    write_mix(build_mix(tmp_path / "shards", MixConfig(phases={"anneal": {"forum": 1}})), mix_path)
    exported = export_megatron(mix_path, tmp_path / "out")
    assert sorted(exported.blends) == ["long_context", "main"]
    assert not (tmp_path / "out" / "data-args-anneal.txt").exists(), "the earlier export's anneal blend must not survive"


def test_export_leaves_no_temporary_files(mix_path, tmp_path):
    export_megatron(mix_path, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "data-args-anneal.txt",
        "data-args-long_context.txt",
        "data-args-main.txt",
        "docs.en_text_document.bin",
        "docs.en_text_document.idx",
        "web_text_document.bin",
        "web_text_document.idx",
    ]


def test_not_an_index_is_refused(tmp_path):
    (tmp_path / "x.idx").write_bytes(b"TNTIDX\x00\x00" + bytes(40))
    with pytest.raises(ValueError, match="not a Megatron MMIDIDX index"):
        read_megatron_index(tmp_path / "x")


def test_small_vocabularies_export_as_uint16(tmp_path):
    tokenizer = load_tokenizer(TokenizerSpec(kind="hf", path=save_trained_hf_tokenizer(tmp_path)))
    write_sample_shards(tmp_path / "shards", sample_table(20), tokenizer)
    write_mix(build_mix(tmp_path / "shards", MixConfig()), tmp_path / "shards" / "mix.json")
    prefix = export_megatron(tmp_path / "shards" / "mix.json", tmp_path / "out").datasets["pydoc"].prefix
    assert read_megatron_index(prefix).dtype == np.uint16
    rows = pq.read_table(tmp_path / "shards" / "w0-00000.parquet").column("input_ids").to_pylist()
    assert [s.tolist() for s in read_megatron_sequences(prefix)] == rows
