import numpy as np
import pytest

from synthmix.quality.lsh import (
    BandRows,
    MinHashConfig,
    candidate_probability,
    choose_bands_rows,
    compute_band_keys,
    connect_components,
    drop_exact_copies,
    estimate_pair_jaccard,
    find_near_duplicates,
    flatten_band_keys,
    merge_pairs_into_labels,
    pair_bucket_members,
)
from synthmix.quality.shingles import ShingleSpec
from tests.quality.mixed_script_corpus import score_mixed_removals, small_mixed_corpus
from tests.quality.near_duplicate_fixture import (
    build_bilingual_corpus,
    chinese_near_duplicates,
    score_removals,
)


@pytest.fixture(scope="module")
def corpus():
    return build_bilingual_corpus(2000, seed=0)


def ids_for(count: int) -> list[str]:
    return [f"doc-{i:05d}" for i in range(count)]


def removed_pairs(result) -> set[tuple[int, int]]:
    """(smaller, larger) index pairs of each removed document and the document kept for it."""
    removed = np.flatnonzero(result.is_duplicate())
    return {tuple(sorted(pair)) for pair in zip(removed.tolist(), result.selection.kept[removed].tolist())}


def test_bands_rows_favour_recall_at_the_threshold():
    bands, rows = choose_bands_rows(0.8, 128)
    assert bands * rows <= 128
    assert candidate_probability(np.array(0.8), bands, rows) >= 0.99
    # datasketch's equal-weight optimum at 0.8 is 9 bands x 13 rows: it misses most pairs at 0.8.
    assert candidate_probability(np.array(0.8), 9, 13) < 0.9


def test_explicit_bands_rows_override_and_bad_ones_are_refused():
    assert MinHashConfig(bands=16, rows=8).band_split() == (16, 8)
    with pytest.raises(ValueError, match="exceeds num_perm"):
        MinHashConfig(bands=20, rows=8)
    with pytest.raises(ValueError, match="set both or neither"):
        MinHashConfig(bands=16)


def test_planted_duplicates_are_found_in_both_languages_and_only_true_ones_removed(corpus, record_property):
    config = MinHashConfig()
    result = find_near_duplicates(corpus.texts, ids_for(len(corpus.texts)), np.zeros(len(corpus.texts)), config)
    removed = np.flatnonzero(result.is_duplicate())
    scores = score_removals(corpus, dict(zip(removed.tolist(), result.selection.kept[removed].tolist())))
    for name, value in scores.items():
        record_property(name, value)
    print(
        f"\n{len(corpus.texts)} documents, bands x rows {config.band_split()}, estimate filter "
        f">= {config.verification_threshold():.3f}: {result.candidate_pairs} candidates, {result.likely_pairs} "
        f"likely, {result.similar_pairs} truly >= {config.threshold}; " + ", ".join(f"{k} {v:.4g}" for k, v in scores.items())
    )
    assert scores["pairs_en"] > 100 and scores["pairs_zh"] > 20
    assert scores["recall_en"] >= 0.98 and scores["recall_zh"] >= 0.98
    assert scores["precision"] >= 0.99


def removals(result) -> dict[int, int]:
    removed = np.flatnonzero(result.is_duplicate())
    return dict(zip(removed.tolist(), result.selection.kept[removed].tolist()))


def test_mixed_script_copies_are_found_at_every_han_share_and_only_duplicates_removed(record_property):
    """Chinese technical text quoting commands, with copies re-wrapped (inside words too), edited in
    either script or with a sentence moved: found in English and at every Han share."""
    corpus = small_mixed_corpus()
    ids, scores = ids_for(len(corpus.texts)), np.zeros(len(corpus.texts))
    found = score_mixed_removals(corpus, removals(find_near_duplicates(corpus.texts, ids, scores, MinHashConfig())))
    for group, values in found.items():
        record_property(group, values)
    print("\nmixed-script corpus, default shingles: " + "; ".join(f"{group} {values}" for group, values in found.items()))
    assert set(found) == {"en", "zh 0-20%", "zh 20-50%", "zh 50-100%", "all"}
    for group in found:
        assert found[group]["pairs"] >= 50 and found[group]["recall"] >= 0.98, group
    assert found["all"]["precision"] >= 0.99
    # Word units see a word cut by a line break as two words: English and Latin-heavy text suffer.
    by_units = score_mixed_removals(corpus, removals(find_near_duplicates(corpus.texts, ids, scores, MinHashConfig(shingles=ShingleSpec(kind="units")))))
    assert by_units["en"]["recall"] < 0.9 and by_units["zh 0-20%"]["recall"] < 0.9


def test_chinese_near_duplicates_need_shingles_that_see_inside_a_line():
    texts = chinese_near_duplicates(3) + ["An unrelated English paragraph about hashing shingles of words."]
    ids, scores = ids_for(len(texts)), np.zeros(len(texts))

    by_default = find_near_duplicates(texts, ids, scores, MinHashConfig())
    by_char = find_near_duplicates(texts, ids, scores, MinHashConfig(shingles=ShingleSpec(kind="char", n=3)))
    by_word = find_near_duplicates(texts, ids, scores, MinHashConfig(shingles=ShingleSpec(kind="word", n=5)))

    assert removed_pairs(by_default) == removed_pairs(by_char) == {(0, 2), (1, 3)}
    # The first text has no spaces: a whitespace word is a whole line, which one edit changes.
    assert (0, 2) not in removed_pairs(by_word), "whitespace words cannot see edits inside a Chinese line"


def test_rerun_and_input_order_keep_the_same_documents(corpus):
    texts, ids = corpus.texts, ids_for(len(corpus.texts))
    scores = np.random.default_rng(0).integers(0, 3, len(texts)).astype(float)  # ties resolved by id
    first = find_near_duplicates(texts, ids, scores, MinHashConfig())
    again = find_near_duplicates(texts, ids, scores, MinHashConfig())
    assert np.array_equal(first.selection.kept, again.selection.kept) and first.is_duplicate().any()

    order = np.random.default_rng(1).permutation(len(texts))
    shuffled = find_near_duplicates([texts[i] for i in order], [ids[i] for i in order], scores[order], MinHashConfig())
    kept_id = {ids[i]: ids[k] for i, k in enumerate(first.selection.kept)}
    kept_id_shuffled = {ids[order[i]]: ids[order[k]] for i, k in enumerate(shuffled.selection.kept)}
    assert kept_id == kept_id_shuffled


def test_merging_pair_chunks_in_any_order_matches_connected_components():
    rng = np.random.default_rng(4)
    num_docs = 3000
    pairs = rng.integers(0, num_docs, size=(2500, 2))
    expected = connect_components(pairs, num_docs)
    for chunk_count in (1, 7, 40):
        labels = np.arange(num_docs)
        for chunk in np.array_split(rng.permutation(pairs), chunk_count):
            labels = merge_pairs_into_labels(labels, chunk)
        assert np.array_equal(labels, expected)
    assert len(np.unique(expected)) < num_docs  # the graph has real components to find


def test_components_are_labelled_by_their_smallest_member():
    labels = connect_components(np.array([[5, 2], [2, 7], [1, 3]]), 8)
    assert labels.tolist() == [0, 1, 2, 1, 4, 2, 6, 2]


def test_small_buckets_pair_every_member_and_big_ones_stay_linear():
    band_keys = np.array([[1, 9], [1, 8], [1, 9], [2, 7]], dtype=np.uint64)
    rows = flatten_band_keys(band_keys, np.array([10, 11, 12, 13]))
    assert pair_bucket_members(rows).tolist() == [[10, 11], [10, 12], [11, 12]]

    big = BandRows(band=np.zeros(1000, np.int32), band_hash=np.zeros(1000, np.uint64), doc=np.arange(1000))
    pairs = pair_bucket_members(big, max_anchors=3)
    assert len(pairs) == 999 + 998 + 997
    assert len(np.unique(connect_components(pairs, 1000))) == 1


def test_keys_that_share_high_bits_are_still_told_apart():
    # With 3 rows, bucket search sorts keys by their high 62 bits first: 0x10 and 0x11 tie there.
    rows = BandRows(band=np.zeros(3, np.int32), band_hash=np.array([0x10, 0x11, 0x10], np.uint64), doc=np.array([5, 6, 7]))
    assert pair_bucket_members(rows).tolist() == [[5, 7]]


def test_sharing_one_band_is_not_enough_to_merge():
    rng = np.random.default_rng(0)
    signatures = rng.integers(0, 2**32, size=(2, 128), dtype=np.uint32)
    signatures[1, :6] = signatures[0, :6]  # the first band of 6 rows matches, nothing else does
    rows = flatten_band_keys(compute_band_keys(signatures, 21, 6), np.arange(2))
    candidates = pair_bucket_members(rows)
    assert candidates.tolist() == [[0, 1]]
    assert estimate_pair_jaccard(signatures, candidates)[0] < MinHashConfig().verification_threshold()


def test_empty_texts_are_exact_copies_of_each_other_and_of_nothing_else():
    texts = ["", "", "!!!", "a real sentence with enough words to shingle"]
    result = find_near_duplicates(texts, ids_for(4), np.zeros(4), MinHashConfig())
    assert result.selection.kept.tolist() == [0, 0, 0, 3]
    assert result.selection.exact.tolist() == [False, True, True, False]


def test_exact_copies_in_a_bucket_are_left_to_the_digest_band():
    # Documents 1 and 3 are copies of one text (copy key 7): the bucket pairs 1 with 2 only.
    rows = BandRows(band=np.zeros(3, np.int32), band_hash=np.full(3, 5, np.uint64), doc=np.array([3, 1, 2]))
    kept = drop_exact_copies(rows, np.array([7, 7, 8], np.uint64))
    assert pair_bucket_members(kept).tolist() == [[1, 2]]
    copies = BandRows(band=np.zeros(4, np.int32), band_hash=np.full(4, 7, np.uint64), doc=np.array([9, 4, 6, 5]))
    assert pair_bucket_members(copies, max_anchors=1).tolist() == [[4, 5], [4, 6], [4, 9]]
