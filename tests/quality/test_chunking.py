from synthmix.quality.chunking import chunk_document, normalize_document


def test_normalize_applies_nfc_and_collapses_spaces_and_blank_lines():
    text = "Cafe\u0301  au\u00a0lait \r\n\r\n\r\n\r\nsecond\t\tline  "
    assert normalize_document(text) == "Caf\u00e9 au lait\n\nsecond line"


def test_normalize_keeps_code_indentation_when_asked():
    code = "def f():\n    return  1\n"
    assert normalize_document(code, keep_indentation=True) == "def f():\n    return 1"
    assert normalize_document(code) == "def f():\nreturn 1"


def test_short_document_is_one_chunk():
    assert chunk_document("one paragraph", max_chars=100) == ["one paragraph"]


def test_chunks_break_at_paragraphs_and_respect_the_limit():
    paragraphs = [f"para {i} " + "x" * 40 for i in range(10)]
    chunks = chunk_document("\n\n".join(paragraphs), max_chars=120)
    assert all(len(chunk) <= 120 for chunk in chunks)
    assert "\n\n".join(chunks) == "\n\n".join(paragraphs)


def test_unsegmented_text_longer_than_the_limit_is_cut_hard():
    text = "中文没有空格" * 50
    chunks = chunk_document(text, max_chars=64)
    assert all(len(chunk) <= 64 for chunk in chunks) and "".join(chunks) == text


def test_long_paragraph_splits_at_line_ends_first():
    paragraph = "\n".join(f"line {i} " + "y" * 30 for i in range(8))
    chunks = chunk_document(paragraph, max_chars=90)
    assert all(len(chunk) <= 90 for chunk in chunks)
    assert all(chunk.startswith("line") for chunk in chunks)
