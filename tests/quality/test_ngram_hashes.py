import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from synthmix.quality.ngram_hashes import hash_ngram_sizes, hash_ngrams, hash_strings, hash_words, split_words

REPO_ROOT = Path(__file__).resolve().parents[2]  # `python -c` imports quality/ from its working directory


def test_words_are_lowercased_without_punctuation_and_han_characters_split() -> None:
    assert split_words(["Hello, World! 你好 x2", ""]).to_pylist() == [["hello", "world", "你", "好", "x2"], [""]]


def test_equal_strings_hash_equal_and_different_ones_differ() -> None:
    hashes = hash_strings(pa.array(["a", "a", "", "ab", "b", "a\x00", "\x00"]))
    assert hashes.dtype == np.uint64
    assert hashes[0] == hashes[1]
    assert len(set(hashes[[0, 2, 3, 4, 5, 6]].tolist())) == 6


def test_hashes_are_the_same_in_another_process() -> None:
    code = "import pyarrow as pa; from synthmix.quality.ngram_hashes import hash_strings; print(hash_strings(pa.array(['x']))[0])"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    other = run.stdout.strip()
    assert int(other) == int(hash_strings(pa.array(["x"]))[0])


def test_words_of_each_text_are_delimited_by_offsets() -> None:
    words = hash_words(["one two", None, "", "three"])
    assert words.doc_offsets.tolist() == [0, 2, 2, 2, 3]
    assert words.words.to_pylist() == ["one", "two", "three"]


def test_ngrams_never_cross_a_text_boundary() -> None:
    ngrams = hash_ngrams(hash_words(["a b c", "d", "e f"]), 2)
    assert ngrams.doc_ids.tolist() == [0, 0, 2]
    assert ngrams.starts.tolist() == [0, 1, 4]


def test_the_same_ngram_in_two_texts_hashes_equal() -> None:
    ngrams = hash_ngrams(hash_words(["x y z", "y z w"]), 2)
    assert ngrams.hashes[1] == ngrams.hashes[2]
    assert len(set(ngrams.hashes.tolist())) == 3


def test_a_non_positive_ngram_size_is_an_error() -> None:
    with pytest.raises(ValueError, match="must be positive"):
        hash_ngrams(hash_words(["a"]), 0)


def test_several_sizes_at_once_equal_one_size_at_a_time() -> None:
    words = hash_words(["the cat sat on the mat", "a b", "one two three four"])
    together = hash_ngram_sizes(words, [1, 2, 3])
    for n in (1, 2, 3):
        alone = hash_ngrams(words, n)
        np.testing.assert_array_equal(together[n].hashes, alone.hashes)
        np.testing.assert_array_equal(together[n].starts, alone.starts)
    assert len(together[3].hashes) == 4 + 0 + 2
