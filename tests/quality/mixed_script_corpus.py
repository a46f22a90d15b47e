"""A mixed Chinese-English near-duplicate corpus from real offline text, with copies planted by
edits that hit both scripts, and the truth decided by the edits, not by any shingling.

Chinese: translations of technical documentation that quote commands, options, paths and
identifiers, from Debian packages (scripts/test.sh installs them): the plain-text Debian Reference
(debian-reference-zh-cn, -zh-tw), the Debian New Maintainers' Guide (maint-guide-zh-cn, -zh-tw),
the Debian FAQ (debian-faq-zh-cn), and the paragraphs of Debian's Chinese manual pages that
near_duplicate_fixture leaves out (less than 60% Han: synopses, option lists, file tables). Their
documents run from a few Han characters among commands to nearly all Han. English: Python's
documentation, docstrings and sources (near_duplicate_fixture.english_documents).

A copy is made by one CopyEdit:
  - character edits: characters drawn uniformly among the non-space ones of the whole text,
    each substituted, preceded by an insertion, or deleted (a Han character by another Han
    character, any other by a Latin letter), so a Latin run is hit as often as its length says;
  - re-wrapping: each paragraph's lines joined (without a space beside a Chinese character, as
    Chinese is joined) and broken again at another width, either where a line may break (a space,
    beside a Chinese character) or anywhere at the width, inside words and commands too, as
    fold(1) and many renderers of Chinese text do;
  - a sentence moved elsewhere in the text.
DUPLICATE_EDITS change at most 0.3% of the characters; DISTINCT_EDITS at least 2%. A removal is
right only when it removes a text for another of its family: a base and its duplicate copies.

Documents are bucketed by their Han share: Han characters over all characters but spaces, after
normalisation (HAN_SHARE_BANDS).
"""

import functools
import gzip
import random
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from synthmix.quality.normalize import normalize_texts
from synthmix.quality.shingles import ShingleSpec
from tests.quality.near_duplicate_fixture import (
    CHINESE_MANPAGES,
    DISTINCT_SPEC,
    HAN,
    MIN_HAN_SHARE,
    distinct_documents,
    english_documents,
    exact_jaccard,
    han_share_of_letters,
    join_into_documents,
    manpage_paragraphs,
)

# Plain-text renderings of Chinese technical manuals, by the Debian package that installs them.
CHINESE_MANUALS = {
    "debian-reference-zh-cn": Path("/usr/share/debian-reference/debian-reference.zh-cn.txt.gz"),
    "debian-reference-zh-tw": Path("/usr/share/debian-reference/debian-reference.zh-tw.txt.gz"),
    "maint-guide-zh-cn": Path("/usr/share/doc/maint-guide-zh-cn/maint-guide.zh-cn.txt.gz"),
    "maint-guide-zh-tw": Path("/usr/share/doc/maint-guide-zh-tw/maint-guide.zh-tw.txt.gz"),
    "debian-faq-zh-cn": Path("/usr/share/doc/debian/FAQ/debian-faq.zh-cn.txt.gz"),
}
HAN_SHARE_BANDS = ((0.0, 0.2), (0.2, 0.5), (0.5, 1.0))
BAND_NAMES = ("0-20%", "20-50%", "50-100%")
# Where a wrapped line may break in "words" mode: after a space, or before or after a character
# of an unsegmented script (near_duplicate_fixture.UNSEGMENTED_CHARACTER covers those the corpus has).
CJK = re.compile("[\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef]")
# A sentence: up to and including its end mark (Chinese marks, or ASCII ones before a space).
SENTENCE = re.compile(r".+?(?:[。！？；]|[.!?;](?=\s)|$)\s*", re.DOTALL)
TABLE_OR_RULE = re.compile(r"^\s*[|+]|^-{5,}")


@dataclass(frozen=True)
class CopyEdit:
    """How one planted copy is made from its base, and whether it is still a duplicate of it."""

    name: str
    character_rate: float  # share of the non-space characters edited
    wrap: str | None  # None, "words" (at spaces and beside Chinese) or "anywhere" (fold)
    move_sentence: bool
    duplicate: bool


DUPLICATE_EDITS = (
    CopyEdit("re-wrapped", 0.0, "words", False, True),
    CopyEdit("re-wrapped anywhere", 0.0, "anywhere", False, True),
    CopyEdit("0.2% characters", 0.002, None, False, True),
    CopyEdit("0.3% characters", 0.003, None, False, True),
    CopyEdit("re-wrapped anywhere, 0.2% characters", 0.002, "anywhere", False, True),
    CopyEdit("a sentence moved", 0.0, None, True, True),
    CopyEdit("a sentence moved, re-wrapped, 0.1% characters", 0.001, "words", True, True),
)
DISTINCT_EDITS = (
    CopyEdit("2% characters", 0.02, None, False, False),
    CopyEdit("4% characters, re-wrapped anywhere", 0.04, "anywhere", False, False),
    CopyEdit("8% characters", 0.08, None, False, False),
)


def display_width(character: str) -> int:
    return 2 if unicodedata.east_asian_width(character) in "WF" else 1


def manual_paragraphs(path: Path) -> list[str]:
    """Prose and command paragraphs of a plain-text manual (blank-line separated); tables, rules
    and one-line headings left out."""
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    paragraphs = []
    for block in re.split(r"\n[ \t]*\n", text):
        lines = [line for line in block.split("\n") if line.strip()]
        if len(lines) > 1 or (lines and len(lines[0].strip()) > 40):
            if not any(TABLE_OR_RULE.match(line) for line in lines):
                paragraphs.append("\n".join(lines))
    return paragraphs


def mixed_manpage_sections() -> list[list[str]]:
    """Each page of Debian's Chinese manual pages as its paragraphs that are not mostly Chinese:
    those near_duplicate_fixture.chinese_manpage_sections leaves out (synopses, option lists, file
    tables, parts left in English), less leftovers of roff macros (1 backslash in 20 characters)."""
    return [[p for p in paragraphs if han_share_of_letters(p) < MIN_HAN_SHARE and 20 * p.count("\\") <= len(p)] for paragraphs in manpage_paragraphs()]


def non_space_characters(text: str) -> int:
    return len(text) - sum(character.isspace() for character in text)


def chinese_technical_documents(min_chars: int) -> list[str]:
    """Every document of min_chars or more from the Chinese manuals and manual pages that holds Han
    characters, in source order (not yet kept apart: see build_mixed_corpus)."""
    missing = [package for package, path in CHINESE_MANUALS.items() if not path.is_file()]
    if missing or not (CHINESE_MANPAGES[0] / "man1" / "ab.1.gz").is_file():
        raise FileNotFoundError(
            f"Debian packages {missing + ['manpages-zh']} provide the mixed-script corpus and some are not installed; "
            "scripts/test.sh installs them (apt-get install manpages-zh " + " ".join(CHINESE_MANUALS) + ")"
        )
    sections = [manual_paragraphs(path) for path in CHINESE_MANUALS.values()]
    return [document for document in join_into_documents(sections + mixed_manpage_sections(), min_chars, non_space_characters) if HAN.search(document)]


# --- edits ---------------------------------------------------------------------------------
def edit_characters(text: str, rate: float, han: list[str], rng: random.Random) -> str:
    """Substitute, insert before or delete round(rate * characters) characters other than spaces
    (at least one if rate > 0), drawn uniformly over the whole text."""
    if rate == 0.0:
        return text
    characters = list(text)
    positions = [i for i, character in enumerate(characters) if not character.isspace()]
    for position in rng.sample(positions, min(len(positions), max(1, round(rate * len(positions))))):
        original = characters[position]
        replacement = rng.choice(han) if HAN.fullmatch(original) else rng.choice("abcdefghijklmnopqrstuvwxyz")
        operation = rng.choice(("substitute", "insert", "delete"))
        characters[position] = {"substitute": replacement, "insert": replacement + original, "delete": ""}[operation]
    return "".join(characters)


def join_lines(paragraph: str) -> str:
    """A paragraph's lines as one line: joined without a space beside a Chinese character or after a
    hyphen or slash (where wrapping cut a word or URL), with one elsewhere."""
    joined = ""
    for line in (line.strip() for line in paragraph.split("\n")):
        if joined and line:
            glue = "" if CJK.match(joined[-1]) or CJK.match(line[0]) or joined[-1] in "-/" else " "
            joined += glue + line
        else:
            joined += line
    return joined


def wrap_line(line: str, width: int, *, anywhere: bool) -> list[str]:
    """A line broken into lines of at most `width` columns (Chinese characters are two wide): at
    the last place a line may break, or (anywhere) right at the width."""
    lines: list[str] = []
    current, columns, last_break = "", 0, None
    for character in line:
        if columns + display_width(character) > width and current:
            cut = len(current) if anywhere or last_break is None else last_break
            lines.append(current[:cut].rstrip())
            current = current[cut:].lstrip()
            columns, last_break = sum(display_width(c) for c in current), None
        if character == " " and not current:
            continue
        if not anywhere and (character == " " or CJK.match(character)) and current:
            last_break = len(current) + (character == " ")  # a space ends the line, a character starts the next
        current += character
        columns += display_width(character)
    return [*lines, current] if current else lines


def rewrap(text: str, width: int, *, anywhere: bool) -> str:
    return "\n\n".join("\n".join(wrap_line(join_lines(paragraph), width, anywhere=anywhere)) for paragraph in text.split("\n\n"))


def move_sentence(text: str, rng: random.Random) -> str:
    """One sentence taken out and put back elsewhere (text of a single sentence is left as is)."""
    sentences = SENTENCE.findall(text)
    if len(sentences) < 2:
        return text
    moved = sentences.pop(rng.randrange(len(sentences)))
    target = rng.choice([i for i in range(len(sentences) + 1)])
    sentences.insert(target, moved if moved[-1:].isspace() else moved + " ")
    return "".join(sentences)


def make_copy(base: str, edit: CopyEdit, han: list[str], rng: random.Random) -> str:
    text = move_sentence(base, rng) if edit.move_sentence else base
    if edit.wrap is not None:
        text = rewrap(text, rng.randint(40, 100), anywhere=edit.wrap == "anywhere")
    return edit_characters(text, edit.character_rate, han, rng)


# --- the corpus ----------------------------------------------------------------------------
@dataclass(frozen=True)
class MixedCorpus:
    """texts[pairs[k, 0]] is a base and texts[pairs[k, 1]] its copy made by pair_edit[k]
    (duplicate[k] says whether that edit keeps it a duplicate), exact Jaccard jaccard[k] under the
    default shingles. language[i] is "en" or "zh"; han_share[i] is the Han share of text i's base."""

    texts: list[str]
    language: np.ndarray
    han_share: np.ndarray
    pairs: np.ndarray
    pair_edit: np.ndarray
    duplicate: np.ndarray
    jaccard: np.ndarray

    def pair_groups(self) -> np.ndarray:
        """A group name per pair: "en", or "zh <band>" by the base's Han share."""
        base = self.pairs[:, 0]
        bands = np.searchsorted([high for _, high in HAN_SHARE_BANDS[:-1]], self.han_share[base], side="right")
        return np.where(self.language[base] == "en", "en", np.char.add("zh ", np.array(BAND_NAMES)[bands]))

    def families(self) -> np.ndarray:
        """Per text, the index of its base if it is a base with a duplicate copy or such a copy, else -1:
        texts of one family may be removed for each other, and no text for any other."""
        family = np.full(len(self.texts), -1, dtype=np.int64)
        base, copy = self.pairs[self.duplicate, 0], self.pairs[self.duplicate, 1]
        family[base], family[copy] = base, base
        return family


def han_shares(texts: list[str]) -> np.ndarray:
    """Han characters over all characters but spaces, of each normalised text (0 for an empty one)."""
    shares = []
    for text in normalize_texts(texts, ShingleSpec().normalization).to_pylist():
        characters = len(text) - text.count(" ")
        shares.append(len(HAN.findall(text)) / characters if characters else 0.0)
    return np.array(shares)


# Copies per base: (duplicate copies, distinct copies) per base, by language. Chinese bases are few
# (some 2,000 distinct ones): each gets two duplicate copies, with different edits.
COPIES_PER_BASE = {"en": (0.3, 0.1), "zh": (2.0, 0.5)}


def build_mixed_corpus(documents: int, *, seed: int, chinese_share: float = 0.1, min_chars: int = 400) -> MixedCorpus:
    """`documents` texts, chinese_share of them from the Chinese technical manuals, bases and their
    copies (COPIES_PER_BASE). Edits cycle through DUPLICATE_EDITS and DISTINCT_EDITS; texts are
    shuffled."""
    rng = random.Random(seed)
    chinese = round(documents * chinese_share)
    texts, languages, shares, planted, edits = [], [], [], [], []
    for language, count in (("en", documents - chinese), ("zh", chinese)):
        duplicate_share, distinct_share = COPIES_PER_BASE[language]
        base_count = round(count / (1 + duplicate_share + distinct_share))
        if language == "en":
            bases = english_documents(base_count, min_chars // 5, DISTINCT_SPEC)
        else:
            pool = chinese_technical_documents(min_chars)
            rng.shuffle(pool)
            bases = distinct_documents(pool, DISTINCT_SPEC, 0.2, limit=base_count)
            if len(bases) < base_count:
                raise ValueError(
                    f"only {len(bases)} distinct Chinese technical documents of >= {min_chars} characters, {base_count} asked; "
                    f"lower documents or chinese_share (at most about {len(bases) * (1 + duplicate_share + distinct_share) / documents:.3f})"
                )
        han = sorted({character for text in bases for character in HAN.findall(text)}) or ["\u4e00"]
        base_shares = han_shares(bases)
        copies = [(i % base_count, DUPLICATE_EDITS[i % len(DUPLICATE_EDITS)]) for i in range(round(base_count * duplicate_share))]
        copies += [(i, DISTINCT_EDITS[i % len(DISTINCT_EDITS)]) for i in range(0, base_count, max(1, round(1 / distinct_share)))]
        copies = copies[: count - base_count]
        offset = len(texts)
        texts += bases
        shares += base_shares.tolist()
        for index, edit in copies:
            planted.append((offset + index, len(texts)))
            edits.append(edit)
            texts.append(make_copy(bases[index], edit, han, rng))
            shares.append(base_shares[index])
        languages += [language] * (len(texts) - offset)
    order = list(range(len(texts)))
    rng.shuffle(order)
    position = {original: new for new, original in enumerate(order)}
    pairs = np.array([(position[a], position[b]) for a, b in planted], dtype=np.int64).reshape(-1, 2)
    shuffled = [texts[original] for original in order]
    return MixedCorpus(
        texts=shuffled,
        language=np.array([languages[original] for original in order], dtype=object),
        han_share=np.array([shares[original] for original in order]),
        pairs=pairs,
        pair_edit=np.array([edit.name for edit in edits], dtype=object),
        duplicate=np.array([edit.duplicate for edit in edits], dtype=bool),
        jaccard=exact_jaccard(shuffled, pairs, ShingleSpec()),
    )


def score_mixed_removals(corpus: MixedCorpus, removed: dict[int, int]) -> dict[str, dict[str, float]]:
    """Per pair group (MixedCorpus.pair_groups) and "all": recall, the share of duplicate pairs of
    which not both texts are kept; and, over all groups, precision, the share of removed texts
    removed for a text of their own family (MixedCorpus.families: a distinct copy, or any other
    text, is a wrong removal). removed maps each removed text to the text kept for it."""
    groups = corpus.pair_groups()
    found = np.array([a in removed or b in removed for a, b in corpus.pairs.tolist()])
    scores: dict[str, dict[str, float]] = {}
    for group in [*sorted(set(groups.tolist())), "all"]:
        chosen = corpus.duplicate & ((groups == group) | (group == "all"))
        scores[group] = {"pairs": int(chosen.sum()), "recall": float(found[chosen].mean()) if chosen.any() else float("nan")}
    family = corpus.families()
    right = sum(family[doc] == family[kept] != -1 for doc, kept in removed.items())
    scores["all"]["precision"] = right / len(removed) if removed else 1.0
    scores["all"]["removed"] = len(removed)
    return scores


@functools.cache
def small_mixed_corpus() -> MixedCorpus:
    """The corpus the tests share, built once per process: 1,500 texts, 60% of them Chinese."""
    return build_mixed_corpus(1500, seed=0, chinese_share=0.6)
