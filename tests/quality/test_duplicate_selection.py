import numpy as np

from synthmix.quality.duplicate_selection import (
    choose_representatives,
    exact_leaders,
    pair_jaccard,
    rank_documents,
    select_kept,
)
from synthmix.quality.shingles import ShingleSpec, hash_shingles
from tests.quality.near_duplicate_fixture import chinese_documents, exact_jaccard, real_documents


def test_pair_jaccard_equals_python_sets_on_real_english_and_chinese_text():
    spec = ShingleSpec()
    texts = real_documents(min_words=60, file_limit=40)[:40] + chinese_documents(40, 60, spec)
    rng = np.random.default_rng(0)
    pairs = rng.integers(0, len(texts), size=(300, 2))
    # Near pairs too: each text with a copy that lost its last sentence.
    texts += [text[: int(len(text) * 0.9)] for text in texts]
    pairs = np.concatenate([pairs, np.stack([np.arange(80), np.arange(80) + 80], axis=1)])
    measured = pair_jaccard(hash_shingles(texts, spec), pairs)
    assert np.allclose(measured, exact_jaccard(texts, pairs, spec))
    assert measured[300:].min() > 0.5 and np.all(measured[pairs[:, 0] == pairs[:, 1]] == 1.0)


def test_a_chain_does_not_remove_its_far_end():
    # a ~ b ~ c but a !~ c; a is kept first, b is removed for a, and c, which resembles only
    # the removed b, is kept. Connected components would have removed c for a.
    pairs = np.array([[0, 1], [1, 2], [0, 2]])
    selection = select_kept(pairs, np.array([0.85, 0.85, 0.7]), rank=np.arange(3), leaders=np.arange(3), threshold=0.8)
    assert selection.kept.tolist() == [0, 0, 2]
    assert selection.similarity[1] == 0.85 and np.isnan(selection.similarity[[0, 2]]).all()


def test_a_document_is_removed_for_its_most_similar_kept_document():
    pairs = np.array([[0, 3], [1, 3], [2, 3]])
    selection = select_kept(pairs, np.array([0.82, 0.95, 0.9]), rank=np.arange(4), leaders=np.arange(4), threshold=0.8)
    assert selection.kept.tolist() == [0, 1, 2, 1]
    assert selection.group_sizes().tolist() == [1, 2, 1, 2]


def test_pairs_below_the_threshold_never_remove_anything():
    pairs = np.array([[0, 1], [1, 2]])
    selection = select_kept(pairs, np.array([0.79, 0.5]), rank=np.arange(3), leaders=np.arange(3), threshold=0.8)
    assert not selection.is_duplicate().any()


def test_exact_copies_follow_their_leader():
    # 0 and 2 are one text, 1 and 3 another; 1 ranks first. 0 resembles 1 at 0.9: removed for it,
    # and its copy 2 with it (near, 0.9); 3 is an exact copy of the kept 1.
    leaders = exact_leaders(np.array([b"x" * 16, b"y" * 16, b"x" * 16, b"y" * 16], dtype="S16"), np.array([1, 0, 2, 3]))
    assert leaders.tolist() == [0, 1, 0, 1]
    selection = select_kept(np.array([[2, 3]]), np.array([0.9]), rank=np.array([1, 0, 2, 3]), leaders=leaders, threshold=0.8)
    assert selection.kept.tolist() == [1, 1, 1, 1]
    assert selection.exact.tolist() == [False, False, False, True]
    assert selection.similarity[[0, 2, 3]].tolist() == [0.9, 0.9, 1.0]


def test_rank_is_highest_score_then_smallest_id_with_nan_last():
    rank = rank_documents(np.array([0.5, 0.9, 0.9, np.nan]), ["a", "c", "b", "d"])
    assert rank.tolist() == [2, 1, 0, 3]


def test_representative_is_highest_score_then_smallest_id():
    clusters = np.array([0, 0, 0, 3, 3, 5])
    scores = np.array([0.5, 0.9, 0.9, np.nan, 0.1, np.nan])
    ids = ["a", "c", "b", "x", "y", "z"]
    assert choose_representatives(clusters, scores, ids).tolist() == [2, 2, 2, 4, 4, 5]
