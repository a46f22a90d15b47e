"""Document normalisation and paragraph-boundary chunking for seed documents."""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200b\u3000]+")
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def normalize_document(text: str, *, keep_indentation: bool = False) -> str:
    """NFC, unified newlines, runs of spaces collapsed (not leading ones in code), at most one blank line."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = []
    for line in text.split("\n"):
        if keep_indentation:
            body = line.lstrip(" \t")
            indent = line[: len(line) - len(body)]
            lines.append(indent + _SPACES.sub(" ", body).rstrip())
        else:
            lines.append(_SPACES.sub(" ", line).strip())
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def chunk_document(text: str, *, max_chars: int) -> list[str]:
    """Split at paragraph boundaries into chunks of at most `max_chars`.

    Paragraphs are packed greedily; a paragraph longer than `max_chars` is split at line
    ends, and a line longer than that at the last space before the limit (hard cut when
    there is none, as in unsegmented Chinese text).
    """
    if len(text) <= max_chars:
        return [text]
    pieces = [piece for paragraph in _PARAGRAPH_BREAK.split(text) for piece in _split_long_paragraph(paragraph, max_chars)]
    return _pack(pieces, max_chars, joiner="\n\n")


def _pack(pieces: list[str], max_chars: int, joiner: str) -> list[str]:
    """Greedily join consecutive pieces while the result stays within `max_chars`."""
    packed: list[str] = []
    current = ""
    for piece in pieces:
        candidate = f"{current}{joiner}{piece}" if current else piece
        if len(candidate) <= max_chars:
            current = candidate
        else:
            if current:
                packed.append(current)
            current = piece
    if current:
        packed.append(current)
    return packed


def _split_long_paragraph(paragraph: str, max_chars: int) -> list[str]:
    if len(paragraph) <= max_chars:
        return [paragraph]
    lines = [part for line in paragraph.split("\n") for part in _split_long_line(line, max_chars)]
    return _pack(lines, max_chars, joiner="\n")


def _split_long_line(line: str, max_chars: int) -> list[str]:
    """At the last space before the limit; a hard cut where there is none (unsegmented text)."""
    out = []
    while len(line) > max_chars:
        cut = line.rfind(" ", 0, max_chars + 1)
        if cut <= 0:
            cut = max_chars
        out.append(line[:cut].rstrip())
        line = line[cut:].lstrip()
    if line:
        out.append(line)
    return out
