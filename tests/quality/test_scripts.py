import unicodedata

import numpy as np

from synthmix.quality.normalize import TextNormalization, normalize_texts
from synthmix.quality.scripts import SCRIPTS, UNSEGMENTED, code_point_scripts, dominant_scripts, script_table
from synthmix.quality.shingles import cut_units


def scripts_of(text: str) -> list[str]:
    return [SCRIPTS[i] for i in code_point_scripts(np.array([ord(c) for c in text], dtype=np.uint32))]


def test_code_points_get_their_unicode_script():
    assert scripts_of("a中ひカㄅ한ไລកမжαعאक") == [
        "latin", "han", "hiragana", "katakana", "bopomofo", "hangul", "thai", "lao", "khmer", "myanmar",
        "cyrillic", "greek", "arabic", "hebrew", "devanagari",
    ]  # fmt: skip
    # Digits, punctuation, spaces and the kana length mark are shared by scripts (Common).
    assert scripts_of("1。 ー-") == ["none"] * 5
    assert scripts_of("\U00020000ა") == ["han", "other"]  # CJK extension B (plane 2); Georgian


def test_every_cjk_unified_ideograph_is_han_and_unsegmented():
    table = script_table()
    ideographs = [p for p in range(0x4E00, 0xA000) if unicodedata.name(chr(p), "").startswith("CJK UNIFIED IDEOGRAPH")]
    assert len(ideographs) > 20000
    assert {SCRIPTS[i] for i in table[ideographs]} == {"han"} and "han" in UNSEGMENTED
    assert "latin" not in UNSEGMENTED and "hangul" not in UNSEGMENTED  # Korean is written with spaces


def test_dominant_script_is_the_script_of_most_units():
    texts = ["hello world 中文", "中文 ab cd 数据库", "", "1234 !!", "Ünïcödé", "ひらがなです漢字", "тест 2024"]
    units = cut_units(normalize_texts(texts, TextNormalization()), "auto")
    assert [SCRIPTS[i] for i in dominant_scripts(units.data, units.starts, units.offsets)] == [
        "latin", "han", "none", "none", "latin", "hiragana", "cyrillic",
    ]  # fmt: skip
