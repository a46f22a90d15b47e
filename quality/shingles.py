"""Shingle hashes in bulk: n-grams of units (characters, words, or words and characters by
script) of a whole batch as one flat uint64 array.

No Python set per document: characters and words are cut and hashed over the batch's UTF-8 buffer
with numpy, and n-grams are polynomial combinations of unit hashes built by doubling, so the cost
is a few vectorised passes over the bytes. Hashes depend only on the text and the spec (no seed,
no process state), so every worker of a distributed job computes the same ones.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, model_validator

from synthmix.quality.normalize import SPACE, TextNormalization, normalize_texts, string_buffers, utf8_code_points
from synthmix.quality.scripts import code_point_scripts, unsegmented_ids

# Odd 64-bit constants (golden ratio, and splitmix64's) for polynomial combination and mixing.
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
MIX_2 = np.uint64(0x94D049BB133111EB)
# LOW_BYTES_MASK[k] keeps the k low bytes of a little-endian uint64.
LOW_BYTES_MASK = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
# (n, winnow) of each kind when a spec leaves them out. auto's were chosen on the mixed-script
# benchmark (docs/recipe.md, near-duplicates): 10 characters are the longest shingle that still finds
# copies with a sentence moved at every Han share (so the least loose on text that merely shares
# phrases); winnowed 9-character shingles (one of every 4) do as well with 0.4 of the shingles.
DEFAULTS = {"auto": (9, 4), "units": (5, 1), "word": (5, 1), "char": (5, 1)}
UNITS_PER_CHUNK = 1 << 19  # units hashed at once (hash_unit_shingles): 4 MiB per uint64 array


class ShingleSpec(BaseModel):
    """What a shingle is. Record it with signatures: other specs give incomparable hashes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # What a shingle is made of:
    #   auto: n consecutive characters of the text with its spaces left out, whatever their script
    #         (winnowed: see winnow). An edit costs the same shingles in every script and a
    #         document has as many shingles per character in any, so the similarity of two texts
    #         is the share of characters they have in common, measured the same in a Chinese, an
    #         English or a mixed text; and where the lines of a text break (a re-wrapped page, a
    #         word split or joined at a line end) does not count.
    #   units: n consecutive units, a unit being a word in space-separated scripts and a single
    #         character in unsegmented ones (Han, kana, Thai, Lao, Khmer, Myanmar, Bopomofo:
    #         quality/scripts.py). Cheaper for English, but an edit in a Latin word costs a whole
    #         word unit where one in a Han run costs a character, and a line break inside a word
    #         makes two units of it.
    #   word: space-separated words only (a line of Chinese is then one "word").
    #   char: every code point, spaces included (English then shingles like a bag of words).
    kind: Literal["auto", "units", "word", "char"] = "auto"
    # Units per shingle; left out (or null), the kind's (DEFAULTS).
    n: int = Field(None, ge=1, le=64)
    # Of every run of `winnow` consecutive shingles, only the one with the smallest hash is kept
    # (winnowing, Schleimer, Wilkerson and Aiken 2003: about 2 / (winnow + 1) of them, chosen by
    # content, so two texts sharing n + winnow - 1 units share one); 1 keeps every shingle. Left
    # out (or null), the kind's (DEFAULTS): 4 for auto's one shingle a character, else 1.
    winnow: int = Field(None, ge=1, le=64)
    normalization: TextNormalization = TextNormalization()

    @model_validator(mode="before")
    @classmethod
    def kind_defaults(cls, data: Any) -> Any:
        """n and winnow left out or null take the kind's DEFAULTS; an unknown kind is left for field
        validation to name."""
        kind = data.get("kind", "auto") if isinstance(data, dict) else None
        if kind not in DEFAULTS:
            return data
        n, winnow = DEFAULTS[kind]
        return {**data, "n": n if data.get("n") is None else data["n"], "winnow": winnow if data.get("winnow") is None else data["winnow"]}


@dataclass(frozen=True)
class ShingleHashes:
    """Document i owns hashes[offsets[i]:offsets[i + 1]]; a text shorter than n units is one
    shingle of all its units, and an empty text has none."""

    hashes: np.ndarray  # uint64
    offsets: np.ndarray  # int64, one more than the number of documents

    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def take(self, documents: np.ndarray) -> "ShingleHashes":
        """The shingles of the given documents, in that order."""
        counts = self.counts()[documents]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        within = np.arange(int(offsets[-1])) - np.repeat(offsets[:-1], counts)
        return ShingleHashes(hashes=self.hashes[np.repeat(self.offsets[:-1][documents], counts) + within], offsets=offsets)


def mix64(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over all output bits (in place)."""
    values ^= values >> np.uint64(30)
    values *= MIX_1
    values ^= values >> np.uint64(27)
    values *= MIX_2
    values ^= values >> np.uint64(31)
    return values


def hash_shingles(texts: pa.Array | pa.ChunkedArray | Sequence[str], spec: ShingleSpec) -> ShingleHashes:
    """Normalise the texts, cut them into units (words, code points, or by script) and hash their n-grams."""
    return hash_normalized_shingles(normalize_texts(texts, spec.normalization), spec)


@dataclass(frozen=True)
class TextUnits:
    """The units of normalised texts: text i owns units offsets[i]:offsets[i + 1]; unit k starts
    at byte starts[k] of data (the texts' UTF-8) and hashes to hashes[k]."""

    hashes: np.ndarray  # uint64
    offsets: np.ndarray  # int64, one more than the number of texts
    data: np.ndarray  # uint8
    starts: np.ndarray  # int64


def hash_normalized_shingles(normalized: pa.LargeStringArray, spec: ShingleSpec) -> ShingleHashes:
    """hash_shingles for texts already normalised with spec.normalization (normalize_texts)."""
    return hash_unit_shingles(cut_units(normalized, spec.kind), spec)


def hash_unit_shingles(units: TextUnits, spec: ShingleSpec) -> ShingleHashes:
    """The shingles of the texts' units (spec.n-grams, winnowed), one chunk of whole texts at a time (text_chunks)."""
    pieces = [hash_chunk_shingles(units, first, last, spec) for first, last in text_chunks(units.offsets)]
    if len(pieces) == 1:
        return pieces[0]
    counts = np.concatenate([piece.counts() for piece in pieces])
    return ShingleHashes(hashes=np.concatenate([piece.hashes for piece in pieces]), offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))


def text_chunks(unit_offsets: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) text indices of runs of whole texts of about UNITS_PER_CHUNK units, covering all
    texts: hashed (and signed, quality/minhash.py sign_units) a run at a time, the working arrays
    stay a few MiB, in cache and reused, where one pass over a batch of characters would allocate
    and page in arrays of hundreds of MiB (measured: signing took a third less time)."""
    starts = np.searchsorted(unit_offsets, np.arange(0, int(unit_offsets[-1]), UNITS_PER_CHUNK), side="right") - 1
    bounds = [0, *np.unique(starts[starts > 0]).tolist(), len(unit_offsets) - 1]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def hash_chunk_shingles(units: TextUnits, first: int, last: int, spec: ShingleSpec) -> ShingleHashes:
    """The shingles of texts first..last - 1 only."""
    start, end = int(units.offsets[first]), int(units.offsets[last])
    return winnow(hash_ngrams(units.hashes[start:end], units.offsets[first : last + 1] - start, spec.n), spec.winnow)


def winnow(shingles: ShingleHashes, window: int) -> ShingleHashes:
    """Each text's shingles winnowed: the smallest hash of every run of `window` consecutive
    shingles, kept once where the smallest changes (a text of fewer shingles keeps its smallest).

    About 2 / (window + 1) of the shingles stay, chosen by their own hashes: two texts that share
    a run of window shingles keep its smallest in both, and an edit changes what is kept only
    within window - 1 shingles of the shingles it changed, so the Jaccard similarity of the kept
    sets follows that of all shingles (tests/quality/test_shingles.py measures it)."""
    if window == 1:
        return shingles
    hashes, offsets = shingles.hashes, shingles.offsets
    counts = shingles.counts()
    smallest = sliding_minimum(hashes, window)  # the runs that reach into the next text are dropped below
    # Runs start at all but each text's last window - 1 shingles (few, so those are listed).
    runs = np.maximum(counts - window + 1, np.minimum(counts, 1))
    dropped = counts - runs
    within = np.arange(int(dropped.sum())) - np.repeat(np.cumsum(dropped) - dropped, dropped)
    keep = np.ones(len(smallest), dtype=bool)
    keep[np.repeat(offsets[:-1] + runs, dropped) + within] = False
    short = np.flatnonzero((counts > 0) & (counts < window))
    if len(short):  # one run over all of a short text: its smallest, by reduceat over (start, end) pairs
        bounds = np.stack([offsets[short], offsets[short + 1]], axis=1).reshape(-1)
        smallest[offsets[short]] = np.minimum.reduceat(np.append(hashes, np.uint64(0)), bounds)[::2]
    keep[1:] &= smallest[1:] != smallest[:-1]
    keep[offsets[:-1][counts > 0]] = True  # a text's first run counts whatever came before it
    kept = np.flatnonzero(keep)
    return ShingleHashes(hashes=smallest[kept], offsets=np.searchsorted(kept, offsets).astype(np.int64))


def sliding_minimum(values: np.ndarray, window: int) -> np.ndarray:
    """m[i] = min(values[i:i + window]) (cut short at the end), by doubling: the minimum of a run is
    that of two overlapping runs of the largest power of two it holds."""
    smallest, width = values.copy(), 1
    while 2 * width <= window:
        np.minimum(smallest[:-width], smallest[width:], out=smallest[:-width])
        width *= 2
    if width < window:
        np.minimum(smallest[: -(window - width)], smallest[window - width :], out=smallest[: -(window - width)])
    return smallest


def cut_units(normalized: pa.LargeStringArray, kind: str) -> TextUnits:
    """The units of a ShingleSpec kind: code points (without spaces for auto), else words (split
    by script for units)."""
    data, offsets = string_buffers(normalized)
    if kind == "auto":
        return code_points(*drop_spaces(data, offsets))
    if kind == "char":
        return code_points(data, offsets)
    return hash_words(normalized, split_unsegmented=kind == "units")


def drop_spaces(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The texts' UTF-8 bytes without spaces, and their offsets."""
    spaces = np.flatnonzero(data == SPACE)
    return np.delete(data, spaces), offsets - np.searchsorted(spaces, offsets)


def hash_words(normalized: pa.LargeStringArray, *, split_unsegmented: bool = False) -> TextUnits:
    """Hash every word of normalised texts.

    A word is a run of bytes between single spaces (normalize_texts' guarantee: none at either
    end of a text). With split_unsegmented, every character of an unsegmented script is a word
    of its own and ends the run before it, e.g. "用numpy计算" -> 用, numpy, 计, 算.
    """
    data, offsets = string_buffers(normalized)
    nonempty = offsets[:-1] < offsets[1:]
    is_space = np.append(data == SPACE, False)
    is_start = np.empty_like(is_space)
    is_start[1:] = is_space[:-1]
    is_start[0] = False
    is_start[offsets[:-1][nonempty]] = True
    is_space[offsets[1:][nonempty]] = True  # now marks every word's end: a space or a text's end
    if split_unsegmented:
        mark_unsegmented_characters(data, is_start, is_space)
    starts = np.flatnonzero(is_start)
    lengths = np.flatnonzero(is_space) - starts  # every word has exactly one end, after its start
    unit_offsets = np.searchsorted(starts, offsets).astype(np.int64)
    return TextUnits(hashes=hash_spans(data, starts, lengths), offsets=unit_offsets, data=data, starts=starts)


def mark_unsegmented_characters(data: np.ndarray, is_start: np.ndarray, is_end: np.ndarray) -> None:
    """Mark each unsegmented-script character as a word of its own: it starts a word and ends the
    one before it, and the byte after it starts one (unless a space or a text's end is there).
    Every start keeps exactly one end after it, so a word's length is its end minus its start.

    Every unsegmented script lies above U+0800, so only 3- and 4-byte characters are decoded;
    text without them costs one comparison per byte."""
    leads = np.flatnonzero(data >= 0xE0)
    if not len(leads):
        return
    chosen = leads[unsegmented_ids()[code_point_scripts(utf8_code_points(data, leads))]]
    after = chosen + 3 + (data[chosen] >= 0xF0)
    is_end[chosen[~is_start[chosen]]] = True  # only where a word is open (no space or text start before)
    is_start[chosen] = True
    is_end[after] = True
    follows = after[~is_space_or_end(data, after)]
    is_start[follows] = True


def is_space_or_end(data: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Whether each byte position is past the data or holds a space."""
    past = positions >= len(data)
    spaces = np.zeros(len(positions), dtype=bool)
    spaces[~past] = data[positions[~past]] == SPACE
    return past | spaces


def hash_spans(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """A uint64 hash of each byte span data[start:start + length], read 8 bytes at a time through
    an unaligned uint64 view; equal spans hash equal in any batch and process."""
    padded = np.zeros(len(data) + 8, dtype=np.uint8)
    padded[: len(data)] = data
    windows = np.ndarray(shape=(len(data) + 1,), dtype="<u8", buffer=padded, strides=(1,))

    # Pass k reads bytes 8k..8k+7 of the spans longer than 8k bytes; most words need one pass.
    block = windows[starts] & LOW_BYTES_MASK[np.minimum(lengths, 8)]  # drop bytes past the span's end
    hashes = mix64((lengths.astype(np.uint64) * GOLDEN ^ block) * GOLDEN)
    spans = np.flatnonzero(lengths > 8)
    passes = 1
    while len(spans):
        remaining = lengths[spans] - 8 * passes
        block = windows[starts[spans] + 8 * passes] & LOW_BYTES_MASK[np.minimum(remaining, 8)]
        hashes[spans] = mix64((hashes[spans] ^ block) * GOLDEN)
        passes += 1
        spans = spans[remaining > 8]
    return hashes


def code_points(data: np.ndarray, offsets: np.ndarray) -> TextUnits:
    """Every Unicode code point of texts given as UTF-8 bytes and offsets, as units (the code point
    itself is the unit's hash)."""
    starts = np.flatnonzero((data & 0xC0) != 0x80)  # every byte but UTF-8 continuation bytes
    points = data[starts].astype(np.uint64)
    multi_byte = np.flatnonzero(points >= 0xC0)
    points[multi_byte] = utf8_code_points(data, starts[multi_byte])
    return TextUnits(hashes=points, offsets=np.searchsorted(starts, offsets).astype(np.int64), data=data, starts=starts)


def hash_ngrams(units: np.ndarray, unit_offsets: np.ndarray, n: int) -> ShingleHashes:
    """Hash every window of n consecutive units that stays inside one text."""
    lengths = np.diff(unit_offsets)
    per_text = np.where(lengths >= n, lengths - n + 1, np.minimum(lengths, 1))
    offsets = np.concatenate([[0], np.cumsum(per_text)]).astype(np.int64)
    # Hash the window at every position of the flat unit array, then keep the windows that start a
    # shingle: all but each text's last n - 1 positions (few, so they are listed, not the kept ones).
    padded = np.concatenate([units, np.zeros(n, dtype=np.uint64)])
    windows = polynomial_windows(padded, n)[: len(units)]
    windows += np.uint64(n * int(power(GOLDEN, n + 1)) % 2**64)  # the length: a text shorter than n differs
    dropped = lengths - per_text
    within = np.arange(int(dropped.sum())) - np.repeat(np.cumsum(dropped) - dropped, dropped)
    keep = np.ones(len(units), dtype=bool)
    keep[np.repeat(unit_offsets[:-1] + per_text, dropped) + within] = False
    hashes = windows[keep]
    # A text shorter than n is one shingle of its units only: its window above ran into the next text.
    short = np.flatnonzero((lengths > 0) & (lengths < n))
    if len(short):
        first, widths = unit_offsets[short], lengths[short]
        values = widths.astype(np.uint64) * GOLDEN
        for position in range(n):
            values *= GOLDEN
            values += np.where(widths > position, padded[first + position], np.uint64(0))
        hashes[offsets[short]] = values
    return ShingleHashes(hashes=mix64(hashes), offsets=offsets)


def power(base: np.uint64, exponent: int) -> np.uint64:
    """base ** exponent mod 2**64."""
    return np.uint64(pow(int(base), exponent, 2**64))


def polynomial_windows(values: np.ndarray, n: int) -> np.ndarray:
    """h[i] = sum over t < n of values[i + t] * GOLDEN ** (n - 1 - t) mod 2**64, for every i up to
    len(values) - n: the hash of each window of n values.

    Built by doubling, since h of a window of a + b values is h of its first a times GOLDEN ** b
    plus h of its last b: log2(n) passes over the array, not n."""
    done, done_length = None, 0  # the first done_length values of each window
    block, block_length = values, 1  # windows of block_length values, each a power of two
    while True:
        if n & block_length:
            # Append a block to what is done: the block's windows start done_length values later.
            tail = block[done_length : done_length + len(values) - n + 1]
            if done is None:
                done = tail.copy()
            else:
                done = done[: len(tail)] * power(GOLDEN, block_length)
                done += tail
            done_length += block_length
        if done_length == n:
            return done
        doubled = block[: len(block) - block_length] * power(GOLDEN, block_length)
        doubled += block[block_length:]
        block, block_length = doubled, 2 * block_length
