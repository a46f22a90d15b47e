import numpy as np

from synthmix.quality.duplicate_selection import pair_jaccard
from synthmix.quality.normalize import TextNormalization, normalize_texts
from synthmix.quality.shingles import DEFAULTS, ShingleSpec, hash_shingles
from tests.quality.mixed_script_corpus import chinese_technical_documents, small_mixed_corpus
from tests.quality.near_duplicate_fixture import (
    DISTINCT_SPEC,
    chinese_documents,
    exact_jaccard,
    real_documents,
    reference_hash,
    reference_shingles,
    reference_units,
)

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


def test_units_are_words_and_unsegmented_characters_on_real_mixed_text():
    spec = ShingleSpec(kind="units", n=1)
    texts = chinese_documents(60, 60, DISTINCT_SPEC) + real_documents(min_words=40, file_limit=20)[:60]
    hashes = hash_shingles(texts, spec)
    unit_of_hash: dict[int, str] = {}
    for index, text in enumerate(normalize_texts(texts, spec.normalization).to_pylist()):
        units = reference_units(text, "units")
        values = shingles_of(hashes, index).tolist()
        assert len(values) == len(units)
        for value, unit in zip(values, units, strict=True):
            assert unit_of_hash.setdefault(value, unit) == unit, "two different units share a hash"
    assert len(set(unit_of_hash.values())) == len(unit_of_hash)


def test_unit_shingles_span_a_switch_of_script():
    spec = ShingleSpec(kind="units", n=2)
    hashes = hash_shingles(["用numpy计算", "用 numpy 计 算", "numpy计"], spec)
    assert hashes.counts().tolist() == [3, 3, 1]  # 用|numpy, numpy|计, 计|算
    together, spaced, part = (shingles_of(hashes, i) for i in range(3))
    assert together.tolist() == spaced.tolist() and part.tolist() == together[1:2].tolist()


def test_units_are_words_on_text_without_unsegmented_scripts():
    texts = real_documents(min_words=40, file_limit=20)[:50] + ["Привет мир, 한국어 문장 and ñandú"]
    assert np.array_equal(hash_shingles(texts, ShingleSpec(kind="units")).hashes, hash_shingles(texts, WORDS).hashes)


def test_auto_shingles_are_the_character_ngrams_of_the_text_without_spaces_on_real_mixed_text():
    spec = ShingleSpec(kind="auto", n=7, winnow=1)
    texts = chinese_technical_documents(300)[::40] + real_documents(min_words=40, file_limit=20)[:40] + ["短", ""]
    hashes = hash_shingles(texts, spec)
    truth = reference_shingles(texts, spec)
    ngram_of_hash: dict[int, str] = {}
    for index, ngrams in enumerate(truth):
        values = shingles_of(hashes, index).tolist()
        assert len(set(values)) == len(ngrams)
        text = normalize_texts([texts[index]], spec.normalization)[0].as_py().replace(" ", "")
        windows = [text[i : i + 7] for i in range(len(text) - 6)] or ([text] if text else [])
        for value, window in zip(values, windows, strict=True):
            assert ngram_of_hash.setdefault(value, window) == window, "two different 7-grams share a hash"
    assert len(set(ngram_of_hash.values())) == len(ngram_of_hash), "one 7-gram got two hashes"


def test_auto_shingles_do_not_see_where_lines_break_or_spaces_fall():
    spec = ShingleSpec(kind="auto", n=4)
    page = "你可以用 apt-get install 安装软件包，\n然后运行 dpkg -l 查看。"
    rewrapped = "你可以用\napt-get inst\nall 安装软\n件包，然后运行 dpkg\n-l 查看。"
    joined = "你可以用apt-get install安装软件包，然后运行dpkg -l查看。"
    hashes = hash_shingles([page, rewrapped, joined], spec)
    assert shingles_of(hashes, 0).tolist() == shingles_of(hashes, 1).tolist() == shingles_of(hashes, 2).tolist()
    # The units kind sees a word cut at a line end ("inst all") as two different words.
    units = hash_shingles([page, rewrapped], ShingleSpec(kind="units", n=4))
    assert set(shingles_of(units, 0).tolist()) != set(shingles_of(units, 1).tolist())


def test_one_edited_character_costs_n_auto_shingles_in_either_script():
    spec = ShingleSpec(kind="auto", n=5, winnow=1)
    base = "the package manager 软件包管理器 installs dependencies 并解决依赖关系 automatically"
    latin_edit, han_edit = base.replace("manager", "manazer"), base.replace("管理器", "管现器")
    hashes = hash_shingles([base, latin_edit, han_edit], spec)
    original = set(shingles_of(hashes, 0).tolist())
    for copy in (1, 2):
        assert len(original - set(shingles_of(hashes, copy).tolist())) == 5


def test_n_and_winnow_left_out_are_the_defaults_of_their_kind():
    for kind, defaults in DEFAULTS.items():
        assert (ShingleSpec(kind=kind).n, ShingleSpec(kind=kind).winnow) == defaults
    assert ShingleSpec.model_validate({"kind": "word", "n": None, "winnow": None}).n == 5
    assert (ShingleSpec(kind="auto", n=3).n, ShingleSpec(kind="auto", n=3).winnow) == (3, DEFAULTS["auto"][1])


def test_winnowed_auto_shingles_are_those_a_plain_python_winnowing_keeps_on_real_mixed_text():
    spec = ShingleSpec()
    texts = chinese_technical_documents(300)[::60] + real_documents(min_words=40, file_limit=20)[:30] + ["短", "", "x" * 30]
    hashes = hash_shingles(texts, spec)
    for index, kept in enumerate(reference_shingles(texts, spec)):
        ours = set(shingles_of(hashes, index).tolist())
        theirs = {reference_hash(ngram.split("\x00"), spec.n) for ngram in kept}
        assert ours == theirs, index


def test_winnowing_keeps_two_in_window_plus_one_and_follows_the_jaccard_of_all_shingles():
    corpus = small_mixed_corpus()
    every = hash_shingles(corpus.texts, ShingleSpec(winnow=1))
    for window in (2, 4):
        kept = hash_shingles(corpus.texts, ShingleSpec(winnow=window))
        assert abs(len(kept.hashes) / len(every.hashes) - 2 / (window + 1)) < 0.02
        difference = pair_jaccard(kept, corpus.pairs) - pair_jaccard(every, corpus.pairs)
        assert abs(difference.mean()) < 0.01 and difference.std() < 0.02, (window, difference.mean(), difference.std())
    # Texts that share a run of n + winnow - 1 characters share a kept shingle, in any script.
    shared = "dpkg-reconfigure 重新配置软件包"
    texts = [f"前面的文字 before {shared} 后面 after", f"totally different start {shared} 不同的结尾"]
    first, second = (set(shingles_of(hash_shingles(texts, ShingleSpec()), i).tolist()) for i in (0, 1))
    assert first & second


def test_a_copy_scores_by_how_much_of_it_changed_whatever_its_han_share():
    """Copies made by the same character edits score alike in English text and in Chinese text of
    every Han share with auto shingles; with word units they score by where the edits fell."""
    corpus = small_mixed_corpus()
    groups = corpus.pair_groups()
    units = exact_jaccard(corpus.texts, corpus.pairs, ShingleSpec(kind="units"))
    for edit in ("0.2% characters", "0.3% characters", "2% characters", "4% characters, re-wrapped anywhere", "8% characters"):
        chosen = [(corpus.pair_edit == edit) & (groups == group) for group in sorted(set(groups.tolist()))]
        assert min(mask.sum() for mask in chosen) >= 5
        auto_means = [corpus.jaccard[mask].mean() for mask in chosen]
        assert max(auto_means) - min(auto_means) <= 0.04, (edit, auto_means)
        if edit == "2% characters":
            unit_means = [units[mask].mean() for mask in chosen]
            assert max(unit_means) - min(unit_means) >= 0.2, unit_means
