import string
import sys
import unicodedata

import pyarrow as pa
import pytest

from synthmix.quality.normalize import SEPARATOR_MARK, SEPARATOR_SPACE, TextNormalization, normalize_texts, separator_classes
from tests.quality.near_duplicate_fixture import real_documents

DEFAULT = TextNormalization()


def reference_normalize(text: str) -> str:
    """The default normalisation, one character at a time in plain Python."""
    folded = unicodedata.normalize("NFKC", text).lower()
    spaced = "".join(" " if char in string.whitespace or unicodedata.category(char)[0] in "PSZ" else char for char in folded)
    return " ".join(spaced.split(" ")).strip()


def collapse(text: str) -> str:
    return " ".join(text.split())


def test_case_punctuation_and_spacing_are_folded():
    assert normalize_texts(["  Hello,  World!\t\n(again)  "], DEFAULT).to_pylist() == ["hello world again"]


def test_nfkc_folds_full_width_letters_ligatures_and_ideographic_spaces():
    assert normalize_texts(["ＡＢＣ　ｄｅｆ ﬁle"], DEFAULT).to_pylist() == ["abc def file"]


def test_nfc_keeps_compatibility_characters():
    nfc = TextNormalization(unicode_form="NFC")
    assert normalize_texts(["ﬁle Cafe\u0301"], nfc).to_pylist() == ["ﬁle café"]


def test_non_ascii_punctuation_and_symbols_become_spaces():
    texts = ["“Quoted”—dash… €5", "中文，标点。结束"]
    assert normalize_texts(texts, DEFAULT).to_pylist() == ["quoted dash 5", "中文 标点 结束"]


def test_punctuation_is_kept_when_stripping_is_off():
    keep = TextNormalization(strip_punctuation=False, lowercase=False)
    assert normalize_texts(["Don't  stop — “now”."], keep).to_pylist() == ["Don't stop — “now”."]


def test_matches_a_character_by_character_reference_on_real_text():
    texts = real_documents(min_words=40, file_limit=40)[:400] + ["Ünïcödé “text” — with ½ and ﬀ"]
    expected = [collapse(reference_normalize(text)) for text in texts]
    assert normalize_texts(texts, DEFAULT).to_pylist() == expected


def test_empty_and_blank_texts_become_empty():
    assert normalize_texts(["", "   ", "!?", "a"], DEFAULT).to_pylist() == ["", "", "", "a"]


def test_sliced_and_chunked_arrays_normalise_like_lists():
    texts = ["A, b", "C!  d", "É f"]
    sliced = pa.array(["skip"] + texts).slice(1)
    chunked = pa.chunked_array([texts[:1], texts[1:]])
    expected = ["a b", "c d", "é f"]
    assert normalize_texts(sliced, DEFAULT).to_pylist() == expected
    assert normalize_texts(chunked, DEFAULT).to_pylist() == expected


def test_nulls_are_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="nulls"):
        normalize_texts(pa.array(["a", None]), DEFAULT)


def test_separator_table_covers_every_punctuation_symbol_and_space_character():
    table = separator_classes()
    outside = [point for point in range(len(table), sys.maxunicode + 1) if unicodedata.category(chr(point))[0] in "PSZ"]
    assert outside == []
    assert table[ord("。")] == SEPARATOR_MARK and table[0x3000] == SEPARATOR_SPACE and table[ord("中")] == 0
