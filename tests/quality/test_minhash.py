import numpy as np
import pytest
from datasketch import MinHash

from synthmix.quality.minhash import (
    EMPTY_SLOT,
    compute_minhash_signatures,
    draw_permutations,
    estimate_jaccard,
    has_shingles,
    sign_shingles,
)
from synthmix.quality.shingles import ShingleSpec, hash_shingles
from tests.quality.near_duplicate_fixture import build_planted_corpus

SPEC = ShingleSpec(kind="word", n=5)
NUM_PERM = 128


@pytest.fixture(scope="module")
def corpus():
    return build_planted_corpus(350, seed=7, spec=SPEC)


def datasketch_estimates(texts: list[str], pairs: np.ndarray) -> np.ndarray:
    """datasketch.MinHash over the very same shingles (our 64-bit shingle hashes as bytes)."""
    hashes = hash_shingles(texts, SPEC)
    shingle_sets = [[value.to_bytes(8, "little") for value in hashes.hashes[hashes.offsets[i] : hashes.offsets[i + 1]].tolist()] for i in range(len(texts))]
    sketches = MinHash.bulk(shingle_sets, num_perm=NUM_PERM, seed=1)
    return np.array([sketches[a].jaccard(sketches[b]) for a, b in pairs])


def test_jaccard_estimates_are_as_accurate_as_datasketch(corpus, record_property):
    signatures = compute_minhash_signatures(corpus.texts, num_perm=NUM_PERM, seed=1, shingle=SPEC)
    ours = estimate_jaccard(signatures[corpus.pairs[:, 0]], signatures[corpus.pairs[:, 1]])
    reference = datasketch_estimates(corpus.texts, corpus.pairs)
    our_error = float(np.abs(ours - corpus.jaccard).mean())
    reference_error = float(np.abs(reference - corpus.jaccard).mean())
    record_property("mean_abs_error_ours", our_error)
    record_property("mean_abs_error_datasketch", reference_error)
    print(f"\nJaccard MAE over {len(ours)} pairs: ours {our_error:.4f}, datasketch {reference_error:.4f}")
    assert our_error <= reference_error + 0.005
    # No bias either: errors of 128-slot estimates average out over hundreds of pairs.
    assert abs(float((ours - corpus.jaccard).mean())) < 0.01


def test_signatures_do_not_depend_on_batching(corpus):
    texts = corpus.texts[:300]
    whole = compute_minhash_signatures(texts, num_perm=NUM_PERM, seed=3, shingle=SPEC)
    halves = [compute_minhash_signatures(part, num_perm=NUM_PERM, seed=3, shingle=SPEC) for part in (texts[:97], texts[97:])]
    assert whole.dtype == np.uint32 and whole.shape == (300, NUM_PERM)
    assert np.array_equal(whole, np.concatenate(halves))


def test_signatures_of_a_text_straddling_blocks_equal_its_own(corpus):
    texts = corpus.texts[:200]
    hashes = hash_shingles(texts, SPEC)
    assert hashes.offsets[-1] > 8192, "the batch must span more than one block of shingles"
    whole = sign_shingles(hashes, num_perm=16, seed=0)
    alone = np.concatenate([compute_minhash_signatures([text], num_perm=16, seed=0, shingle=SPEC) for text in texts])
    assert np.array_equal(whole, alone)


def test_permutations_are_a_function_of_the_seed():
    first, again, other = draw_permutations(64, 5), draw_permutations(64, 5), draw_permutations(64, 6)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], other[0])
    assert (first[0] % 2 == 1).all(), "even multipliers are not permutations"


def test_empty_text_gets_empty_slots_and_is_not_searchable():
    signatures = compute_minhash_signatures(["", "  !! ", "some words here"], num_perm=8, seed=0, shingle=SPEC)
    assert (signatures[:2] == EMPTY_SLOT).all()
    assert has_shingles(signatures).tolist() == [False, False, True]


def test_identical_texts_estimate_one_and_unrelated_texts_near_zero(corpus):
    unrelated = [corpus.texts[corpus.pairs[0, 0]], corpus.texts[corpus.pairs[1, 0]]]
    signatures = compute_minhash_signatures(unrelated * 2, num_perm=NUM_PERM, seed=0, shingle=SPEC)
    assert estimate_jaccard(signatures[:2], signatures[2:]).tolist() == [1.0, 1.0]
    assert estimate_jaccard(signatures[:1], signatures[1:2])[0] < 0.1


def test_misaligned_signatures_are_refused():
    with pytest.raises(ValueError, match="row-aligned"):
        estimate_jaccard(np.zeros((2, 8), np.uint32), np.zeros((3, 8), np.uint32))
