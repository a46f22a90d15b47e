import pyarrow as pa

from synthmix.quality.fasttext_input import to_fasttext_lines


def test_every_kind_of_line_break_becomes_a_space() -> None:
    lines = to_fasttext_lines(["a\nb\r\nc\u2028d", None], lowercase=False)
    assert lines == ["a b c d", ""]


def test_lowercasing_is_applied_only_when_asked() -> None:
    texts = pa.chunked_array([["Hello World"], ["ÉCOLE"]])
    assert to_fasttext_lines(texts, lowercase=True) == ["hello world", "école"]
    assert to_fasttext_lines(texts, lowercase=False) == ["Hello World", "ÉCOLE"]
