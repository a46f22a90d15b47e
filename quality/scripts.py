"""Writing systems of text: which script each code point belongs to, which scripts are written
without spaces between words, and the dominant script of each text of a batch (by its units).

Near-duplicate shingles of the `units` kind need this: a "word" of Chinese, Japanese or Thai text
is a whole clause, so those scripts are cut by character while space-separated scripts are cut by
word (quality/shingles.py); the dedup stage counts its documents by dominant script. The table comes from the Unicode Script property as RE2 (inside pyarrow)
knows it, built once per process, so no range list is kept here to go stale.
"""

import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synthmix.quality.normalize import utf8_code_points

# Index = script id. "none": digits, punctuation, spaces and symbols (the Common and Inherited
# scripts); "other": a script not named here.
SCRIPTS = (
    "none", "latin", "han", "hiragana", "katakana", "bopomofo", "hangul", "thai", "lao", "khmer",
    "myanmar", "cyrillic", "greek", "arabic", "hebrew", "devanagari", "other",
)  # fmt: skip
NONE, LATIN, HAN, OTHER = SCRIPTS.index("none"), SCRIPTS.index("latin"), SCRIPTS.index("han"), SCRIPTS.index("other")
# Written without spaces between words: every character of these is one `units` shingle unit.
UNSEGMENTED = frozenset({"han", "hiragana", "katakana", "bopomofo", "thai", "lao", "khmer", "myanmar"})
# The table covers planes 0 and 1; planes 2 and 3 hold only CJK ideograph extensions (Han).
TABLE_SIZE = 0x20000
HAN_PLANES_END = 0x40000
FIRST_MARKER = 0x21  # "!": markers are ASCII punctuation, one byte each


@functools.cache
def script_table() -> np.ndarray:
    """Script id (uint8, an index into SCRIPTS) of every code point below TABLE_SIZE.

    All code points as one string; RE2 replaces each script's characters by a one-byte marker,
    Common and Inherited ones first (their marker is ASCII punctuation, which is Common and so
    matches no later script), leaving one byte per code point: ~0.1 s once per process.
    """
    points = np.arange(TABLE_SIZE, dtype=np.uint32)
    points = points[(points < 0xD800) | (points >= 0xE000)]  # surrogates are not characters
    text = pa.array([points.astype("<u4").tobytes().decode("utf-32-le")], pa.large_string())
    markers = [r"[\p{Common}\p{Inherited}]", *(rf"\p{{{name.capitalize()}}}" for name in SCRIPTS[1:-1]), r"\pL"]
    # Marker of script id i is chr(FIRST_MARKER + i); "none" uses it for Common/Inherited.
    for script_id, pattern in enumerate(markers):
        marker = chr(FIRST_MARKER + (OTHER if pattern == r"\pL" else script_id))
        text = pc.replace_substring_regex(text, pattern, marker)
    # Whatever is left (unassigned, private use, marks of no named script) is none.
    text = pc.replace_substring_regex(text, rf"[^{chr(FIRST_MARKER)}-{chr(FIRST_MARKER + OTHER)}]", chr(FIRST_MARKER))
    marked = np.frombuffer(text[0].as_buffer(), dtype=np.uint8)
    table = np.full(TABLE_SIZE, NONE, dtype=np.uint8)
    table[points] = marked - FIRST_MARKER
    return table


@functools.cache
def unsegmented_ids() -> np.ndarray:
    """Boolean per script id: True for the UNSEGMENTED scripts."""
    return np.array([script in UNSEGMENTED for script in SCRIPTS])


def code_point_scripts(points: np.ndarray) -> np.ndarray:
    """Script id of each code point."""
    table = script_table()
    scripts = table[np.minimum(points, TABLE_SIZE - 1)]
    beyond = points >= TABLE_SIZE
    scripts[beyond] = np.where(points[beyond] < HAN_PLANES_END, HAN, OTHER)
    return scripts


def dominant_scripts(data: np.ndarray, unit_starts: np.ndarray, unit_offsets: np.ndarray) -> np.ndarray:
    """Per text, the id of the script most of its units (quality/shingles.py cut_units) start
    with; NONE for a text whose units all start with digits, punctuation or nothing.

    One look per unit, not per byte: an ASCII letter is Latin, other ASCII is NONE, and only
    units that start with a multi-byte character are decoded. Latin units are counted per text
    with one running sum (with character units, most units of most texts); the rest one by one."""
    texts = len(unit_offsets) - 1
    first = data[unit_starts] if len(unit_starts) else np.zeros(0, dtype=np.uint8)
    folded = first | 0x20
    latin = np.concatenate([[0], np.cumsum((first < 0x80) & (folded >= ord("a")) & (folded <= ord("z")), dtype=np.int64)])
    counts = np.zeros((texts, len(SCRIPTS)), dtype=np.int64)
    counts[:, LATIN] = latin[unit_offsets[1:]] - latin[unit_offsets[:-1]]
    wide = np.flatnonzero(first >= 0xC0)
    text_of = np.searchsorted(unit_offsets, wide, side="right") - 1
    np.add.at(counts, (text_of, code_point_scripts(utf8_code_points(data, unit_starts[wide]))), 1)
    counts[:, NONE] = 0
    dominant = counts.argmax(axis=1).astype(np.uint8)
    dominant[counts.max(axis=1, initial=0) == 0] = NONE
    return dominant
