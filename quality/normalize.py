"""Text normalisation before hashing, so that trivially different spellings hash alike.

Whitespace is always collapsed to single spaces and trimmed; Unicode form, case and punctuation
are configurable. The work is vectorised over a whole batch: bytes are mapped through a lookup table in
numpy, non-ASCII separators are found by decoding only multi-byte characters, and only rows that
hold non-ASCII text pay for Arrow's Unicode form and case kernels. No regular expressions.
"""

import functools
import string
import unicodedata
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, ConfigDict

SPACE = ord(" ")
SEPARATOR_SPACE = 1
SEPARATOR_MARK = 2
# Planes 2-16 (CJK extensions, tags, private use) hold no punctuation, symbol or space characters,
# so the table stops at plane 2; test_normalize checks this against the running Python's Unicode.
SEPARATOR_TABLE_SIZE = 0x20000


class TextNormalization(BaseModel):
    """How text is normalised before it is shingled or hashed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # NFKC folds compatibility forms (full-width letters, ligatures, non-breaking spaces) into
    # their plain equivalents; NFC only composes accents.
    unicode_form: Literal["NFC", "NFKC", "none"] = "NFKC"
    lowercase: bool = True
    # Punctuation and symbols become spaces: "don't" and "don t" hash alike.
    strip_punctuation: bool = True


def as_large_strings(texts: pa.Array | pa.ChunkedArray | Sequence[str]) -> pa.LargeStringArray:
    """One contiguous large_string array (int64 offsets, so batches over 2 GiB of text work).

    Raises ValueError on nulls: a missing text is the caller's reject, not an empty document.
    """
    array = texts if isinstance(texts, pa.Array | pa.ChunkedArray) else pa.array(texts, pa.large_string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks else pa.array([], pa.large_string())
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        raise ValueError(f"texts have type {array.type}, expected strings; cast the column to string first")
    if array.null_count:
        raise ValueError(f"texts hold {array.null_count} nulls of {len(array)}; reject rows without text before hashing")
    return array.cast(pa.large_string())


def string_buffers(array: pa.LargeStringArray) -> tuple[np.ndarray, np.ndarray]:
    """Zero-copy views of a large_string array: (UTF-8 bytes, offsets starting at 0)."""
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int64)[array.offset : array.offset + len(array) + 1]
    data_buffer = array.buffers()[2]
    data = np.frombuffer(data_buffer, dtype=np.uint8) if data_buffer is not None else np.empty(0, np.uint8)
    return data[offsets[0] : offsets[-1]], offsets - offsets[0]


def normalize_texts(texts: pa.Array | pa.ChunkedArray | Sequence[str], normalization: TextNormalization) -> pa.LargeStringArray:
    """Normalise every text; the result has single spaces between words and none at either end."""
    array = as_large_strings(texts)
    array = normalize_non_ascii_rows(array, normalization)
    data, offsets = string_buffers(array)
    mapped = ascii_byte_table(normalization)[data]
    blank_non_ascii_separators(data, mapped, strip_punctuation=normalization.strip_punctuation)
    return collapse_spaces(mapped, offsets)


def normalize_non_ascii_rows(array: pa.LargeStringArray, normalization: TextNormalization) -> pa.LargeStringArray:
    """Unicode form and case for rows with non-ASCII text only: ASCII is already in every form."""
    non_ascii = pc.invert(pc.string_is_ascii(array))
    if not pc.any(non_ascii).as_py():
        return array
    rows = pc.filter(array, non_ascii)
    if normalization.unicode_form != "none":
        # Most text is already normalised; the quick check is far cheaper than normalising.
        form = normalization.unicode_form
        unnormalized = pa.array([not unicodedata.is_normalized(form, text) for text in rows.to_pylist()])
        if pc.any(unnormalized).as_py():
            rows = pc.replace_with_mask(rows, unnormalized, pc.utf8_normalize(pc.filter(rows, unnormalized), form))
    if normalization.lowercase:
        rows = pc.utf8_lower(rows)
    return pc.replace_with_mask(array, non_ascii, rows)


def ascii_byte_table(normalization: TextNormalization) -> np.ndarray:
    """Byte -> byte map for ASCII: whitespace (and, as configured, punctuation) to space, A-Z to a-z.

    Bytes >= 0x80 map to themselves: in UTF-8 they only occur inside multi-byte characters,
    so the table never splits or alters a non-ASCII character.
    """
    table = np.arange(256, dtype=np.uint8)
    for char in string.whitespace:
        table[ord(char)] = SPACE
    if normalization.strip_punctuation:
        for char in string.punctuation:
            table[ord(char)] = SPACE
    if normalization.lowercase:
        for char in string.ascii_uppercase:
            table[ord(char)] = ord(char.lower())
    return table


@functools.cache
def separator_classes() -> np.ndarray:
    """Class of every code point below SEPARATOR_TABLE_SIZE: SEPARATOR_SPACE (Unicode category Z),
    SEPARATOR_MARK (P or S) or 0. Built once per process from unicodedata (~20 ms)."""
    classes = np.zeros(SEPARATOR_TABLE_SIZE, dtype=np.uint8)
    for point in range(SEPARATOR_TABLE_SIZE):
        major = unicodedata.category(chr(point))[0]
        if major == "Z":
            classes[point] = SEPARATOR_SPACE
        elif major in "PS":
            classes[point] = SEPARATOR_MARK
    return classes


def utf8_code_points(data: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Code points (uint32) of the UTF-8 characters that start at byte positions `starts`."""
    padded = np.concatenate([data, np.zeros(3, dtype=np.uint8)])
    lead = padded[starts].astype(np.uint32)
    tail = [padded[starts + k].astype(np.uint32) & 0x3F for k in (1, 2, 3)]
    two = ((lead & 0x1F) << 6) | tail[0]
    three = ((lead & 0x0F) << 12) | (tail[0] << 6) | tail[1]
    four = ((lead & 0x07) << 18) | (tail[0] << 12) | (tail[1] << 6) | tail[2]
    return np.select([lead < 0x80, lead < 0xE0, lead < 0xF0], [lead, two, three], four).astype(np.uint32)


def blank_non_ascii_separators(data: np.ndarray, mapped: np.ndarray, *, strip_punctuation: bool) -> None:
    """Overwrite in `mapped` every byte of a non-ASCII space (and, as configured, punctuation or
    symbol) character with a space; the ASCII ones were mapped by ascii_byte_table."""
    starts = np.flatnonzero(data >= 0xC0)  # lead bytes of multi-byte characters
    if not len(starts):
        return
    points = utf8_code_points(data, starts)
    table = separator_classes()
    classes = np.where(points < len(table), table[np.minimum(points, len(table) - 1)], 0)
    blank = starts[(classes == SEPARATOR_SPACE) | ((classes == SEPARATOR_MARK) & strip_punctuation)]
    width = 2 + (data[blank] >= 0xE0) + (data[blank] >= 0xF0)
    for k in range(4):
        mapped[blank[width > k] + k] = SPACE


def collapse_spaces(mapped: np.ndarray, offsets: np.ndarray) -> pa.LargeStringArray:
    """Texts from bytes and offsets, keeping a space only between two non-space bytes of one text."""
    is_space = mapped == SPACE
    follows_space = np.empty_like(is_space)
    follows_space[1:] = is_space[:-1]
    follows_space[:1] = True
    # A text's first byte follows nothing: treat it like a space so leading spaces drop.
    follows_space[offsets[:-1][offsets[:-1] < len(mapped)]] = True
    dropped = is_space & follows_space
    # Positions of the dropped bytes only (far fewer than all bytes) give each text's new end.
    new_offsets = (offsets - np.searchsorted(np.flatnonzero(dropped), offsets)).astype(np.int64)
    collapsed = pa.LargeStringArray.from_buffers(len(offsets) - 1, pa.py_buffer(new_offsets), pa.py_buffer(mapped[~dropped]))
    # At most one space is left at each text's end, the first of its trailing run.
    return pc.utf8_rtrim(collapsed, " ")


def joined_texts(block: pa.Table, text_columns: list[str]) -> pa.Array:
    """The text columns joined by newlines, nulls as empty strings."""
    parts = [pc.fill_null(block[name].cast(pa.large_string()), "") for name in text_columns]
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, pa.scalar("\n", pa.large_string()))
