"""Texts as fastText wants them: one line each, since its `predict` rejects any text containing "\\n"."""

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from synthmix.quality.ngram_hashes import as_string_array


def to_fasttext_lines(texts: Sequence[str | None] | pa.Array | pa.ChunkedArray, *, lowercase: bool) -> list[str]:
    """Each text on one line (line breaks become spaces, null becomes ""), lowercased if asked.

    Training and prediction must prepare text the same way, so both go through this function.
    """
    lines = pc.replace_substring_regex(as_string_array(texts), r"[\r\n\v\f\x{2028}\x{2029}\x{85}]+", " ")
    if lowercase:
        lines = pc.utf8_lower(lines)
    return lines.to_pylist()
