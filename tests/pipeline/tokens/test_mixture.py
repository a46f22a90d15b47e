import json

import pyarrow.parquet as pq
import pytest

from synthmix.pipeline.tokens.mixture import MixConfig, MixMismatchError, build_mix, read_mix, validate_mix, write_mix
from tests.pipeline.corpus import sample_table, write_sample_shards


@pytest.fixture
def shard_dir(tmp_path, cl100k):
    directory = tmp_path / "shards"
    write_sample_shards(directory, sample_table(240, sources={"books": 2, "web": 1}, with_text_rows=True), cl100k)
    return directory


def test_mix_totals_equal_the_shards_contents(shard_dir):
    mix = build_mix(shard_dir, MixConfig())
    write_mix(mix, shard_dir / "mix.json")
    tables = [pq.read_table(shard_dir / shard.path) for shard in mix.shards]
    assert len(mix.shards) > 1
    assert mix.rows == sum(t.num_rows for t in tables) == 240
    assert mix.tokens == sum(t.column("num_tokens").to_numpy().sum() for t in tables)
    assert sum(mix.tokens_by_source.values()) == sum(mix.tokens_by_domain.values()) == mix.tokens
    assert mix.rows_by_source == {"books": 120, "web": 120}
    assert validate_mix(shard_dir / "mix.json") == mix
    assert read_mix(shard_dir / "mix.json") == mix


def test_phase_weights_become_token_fractions(shard_dir):
    config = MixConfig(phases={"main": {"books": 3, "web": 1}, "anneal": {"books": 1}})
    mix = build_mix(shard_dir, config)
    assert mix.phases["main"] == {"books": 0.75, "web": 0.25}
    assert mix.phases["anneal"] == {"books": 1.0, "web": 0.0}
    natural = {source: tokens / mix.tokens for source, tokens in mix.tokens_by_source.items()}
    assert mix.phases["long_context"] == pytest.approx(natural)


def test_weights_for_absent_sources_are_left_out_and_listed(shard_dir):
    mix = build_mix(shard_dir, MixConfig(phases={"main": {"books": 1, "forum": 3}, "anneal": {"forum": 1}}))
    assert mix.missing_sources == {"main": ["forum"], "anneal": ["forum"]}
    assert mix.phases["main"] == {"books": 1.0, "web": 0.0}
    assert mix.phases["anneal"] == {}
    with pytest.raises(ValueError, match="non-negative"):
        MixConfig(phases={"main": {"books": -1}})


def test_natural_shards_are_listed_beside_synthetic_ones(shard_dir, tmp_path, cl100k):
    natural_dir = tmp_path / "natural"
    write_sample_shards(natural_dir, sample_table(30, sources={"wiki": 1}), cl100k, prefix="wiki")
    mix = build_mix(shard_dir, MixConfig(natural_dirs=[natural_dir]))
    write_mix(mix, shard_dir / "mix.json")
    origins = {shard.path.split("/")[-1]: shard.origin for shard in mix.shards}
    assert origins["wiki-00000.parquet"] == "natural"
    assert {o for name, o in origins.items() if name.startswith("w0")} == {"synthetic"}
    assert mix.rows_by_source["wiki"] == 30
    validate_mix(shard_dir / "mix.json")


def test_shards_of_another_tokenizer_are_refused(shard_dir, tmp_path, hunyuan):
    other = tmp_path / "other"
    write_sample_shards(other, sample_table(5), hunyuan)
    with pytest.raises(ValueError, match="retokenize"):
        build_mix(shard_dir, MixConfig(natural_dirs=[other]))


def test_validation_reports_a_changed_shard(shard_dir):
    write_mix(build_mix(shard_dir, MixConfig()), shard_dir / "mix.json")
    manifest = json.loads((shard_dir / "mix.json").read_text())
    manifest["shards"][0]["tokens"] += 1
    (shard_dir / "mix.json").write_text(json.dumps(manifest))
    with pytest.raises(MixMismatchError, match="tokens listed"):
        validate_mix(shard_dir / "mix.json")


def test_mix_write_leaves_no_temporary_file(shard_dir):
    write_mix(build_mix(shard_dir, MixConfig()), shard_dir / "mix.json")
    assert not [path for path in shard_dir.iterdir() if path.name.startswith(".")]


def test_no_shards_make_an_empty_mix_only_when_allowed(tmp_path):
    (tmp_path / "none").mkdir()
    with pytest.raises(ValueError, match="run the tokenize stage first"):
        build_mix(tmp_path / "none", MixConfig())
    empty = build_mix(tmp_path / "never-made", MixConfig(), allow_empty=True)
    assert empty.rows == 0 and empty.shards == [] and empty.phases["main"] == {}
