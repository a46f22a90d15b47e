import numpy as np

from quality.normalize import TextNormalization, normalize_texts
from quality.shingles import ShingleSpec, hash_shingles
from tests.quality.near_duplicate_fixture import chinese_documents, real_documents, reference_units

WORDS = ShingleSpec(kind="word", n=5)


def shingles_of(hashes, index: int) -> np.ndarray:
    return hashes.hashes[hashes.offsets[index] : hashes.offsets[index + 1]]


def test_equal_hashes_mean_equal_word_ngrams_on_real_text():
    texts = real_documents(min_words=40, file_limit=60)[:500]
    hashes = hash_shingles(texts, WORDS)
    ngram_of_hash: dict[int, tuple[str, ...]] = {}
    all_ngrams = set()
    for index, text in enumerate(normalize_texts(texts, WORDS.normalization).to_pylist()):
        words = text.split(" ")
        ngrams = [tuple(words[i : i + 5]) for i in range(len(words) - 4)]
        values = shingles_of(hashes, index).tolist()
        assert len(values) == len(ngrams)
        for value, ngram in zip(values, ngrams, strict=True):
            assert ngram_of_hash.setdefault(value, ngram) == ngram, "two different 5-grams share a hash"
        all_ngrams.update(ngrams)
    assert len(ngram_of_hash) == len(all_ngrams), "one 5-gram got two hashes"


def test_words_longer_than_eight_bytes_are_hashed_by_every_byte():
    spec = ShingleSpec(kind="word", n=1)
    words = ["internationalization", "internationalizatiom", "abcdefgh", "abcdefghi", "abcdefgh\u00e9"]
    hashes = hash_shingles([" ".join(words)], spec).hashes
    assert len(set(hashes.tolist())) == len(words)


def test_text_shorter_than_n_is_one_shingle_and_empty_text_has_none():
    hashes = hash_shingles(["one two", "", "a b c d e f"], WORDS)
    assert hashes.counts().tolist() == [1, 0, 2]


def test_hashes_do_not_depend_on_the_rest_of_the_batch():
    texts = ["alpha beta gamma delta epsilon zeta", "", "x", "Alpha, BETA gamma delta epsilon zeta!"]
    together = hash_shingles(texts, WORDS)
    for index, text in enumerate(texts):
        alone = hash_shingles([text], WORDS)
        assert shingles_of(together, index).tolist() == alone.hashes.tolist()
    assert shingles_of(together, 0).tolist() == shingles_of(together, 3).tolist()


def test_empty_batch_has_no_shingles():
    assert hash_shingles([], WORDS).offsets.tolist() == [0]
    assert hash_shingles(["", ""], ShingleSpec(kind="char")).counts().tolist() == [0, 0]


def test_char_shingles_are_code_point_ngrams():
    spec = ShingleSpec(kind="char", n=2)
    hashes = hash_shingles(["中文文本", "文本", "ab"], spec)
    assert hashes.counts().tolist() == [3, 1, 1]
    first = shingles_of(hashes, 0).tolist()
    assert first[1] != first[2] and first[2] == shingles_of(hashes, 1).tolist()[0]


def test_char_shingles_keep_spaces_between_words():
    spec = ShingleSpec(kind="char", n=3, normalization=TextNormalization())
    assert hash_shingles(["ab cd", "abcd"], spec).counts().tolist() == [3, 2]


def test_auto_units_are_words_and_unsegmented_characters_on_real_mixed_text():
    spec = ShingleSpec(kind="auto", n=1)
    texts = chinese_documents(60, 60, ShingleSpec()) + real_documents(min_words=40, file_limit=20)[:60]
    hashes = hash_shingles(texts, spec)
    unit_of_hash: dict[int, str] = {}
    for index, text in enumerate(normalize_texts(texts, spec.normalization).to_pylist()):
        units = reference_units(text, "auto")
        values = shingles_of(hashes, index).tolist()
        assert len(values) == len(units)
        for value, unit in zip(values, units, strict=True):
            assert unit_of_hash.setdefault(value, unit) == unit, "two different units share a hash"
    assert len(set(unit_of_hash.values())) == len(unit_of_hash)


def test_auto_shingles_span_a_switch_of_script():
    spec = ShingleSpec(kind="auto", n=2)
    hashes = hash_shingles(["用numpy计算", "用 numpy 计 算", "numpy计"], spec)
    assert hashes.counts().tolist() == [3, 3, 1]  # 用|numpy, numpy|计, 计|算
    together, spaced, part = (shingles_of(hashes, i) for i in range(3))
    assert together.tolist() == spaced.tolist() and part.tolist() == together[1:2].tolist()


def test_auto_is_word_on_text_without_unsegmented_scripts():
    texts = real_documents(min_words=40, file_limit=20)[:50] + ["Привет мир, 한국어 문장 and ñandú"]
    assert np.array_equal(hash_shingles(texts, ShingleSpec(kind="auto")).hashes, hash_shingles(texts, WORDS).hashes)
