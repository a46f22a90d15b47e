"""Real offline text with planted near-duplicates of known exact Jaccard similarity.

Shared by the near-duplicate tests and tests/benchmarks/bench_minhash.py. The text is Python's own
documentation (pydoc_data.topics) and standard-library docstrings, so it is real prose and code
and needs no download; everything drawn at random comes from a seeded generator.
"""

import ast
import random
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydoc_data.topics

from quality.shingles import ShingleSpec, hash_shingles

CJK_SAMPLES = Path(sysconfig.get_paths()["stdlib"]) / "test" / "cjkencodings"

# Shares of words edited in planted copies. On documents of 120+ words with word 5-grams, up to
# 1.5% edits keep Jaccard above ~0.84 and 5% or more bring it below ~0.66. The rates leave the
# band around a 0.8 threshold nearly empty on purpose: with 128 permutations an estimate's
# standard error there is 0.035, and no estimator separates pairs at 0.79 from pairs at 0.81.
DUPLICATE_EDIT_RATES = (0.0, 0.005, 0.01, 0.015)
DISTINCT_EDIT_RATES = (0.08, 0.15, 0.3)


def pydoc_sections() -> list[list[str]]:
    """Each topic of Python's documentation as its list of paragraphs, topics in sorted order."""
    topics = pydoc_data.topics.topics
    return [[p.strip() for p in topics[name].split("\n\n") if p.strip()] for name in sorted(topics)]


def stdlib_files(limit: int) -> list[Path]:
    """The first `limit` standard-library modules, sorted by path (tests and site-packages left out)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(
        path
        for path in root.rglob("*.py")
        if "site-packages" not in path.parts and "test" not in path.parts and "tests" not in path.parts
    )
    return files[:limit]


def stdlib_docstring_sections(file_limit: int) -> list[list[str]]:
    """Each of the first file_limit stdlib modules as the list of its docstrings."""
    sections = []
    for path in stdlib_files(file_limit):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):  # a few stdlib files are templates or Latin-1
            continue
        kinds = ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
        docstrings = (ast.get_docstring(node) for node in ast.walk(tree) if isinstance(node, kinds))
        sections.append([doc for doc in docstrings if doc])
    return sections


def join_into_documents(sections: list[list[str]], min_words: int) -> list[str]:
    """Consecutive pieces of one section joined until each document has at least min_words words."""
    documents = []
    for pieces in sections:
        current: list[str] = []
        for piece in pieces:
            current.append(piece)
            if sum(len(p.split()) for p in current) >= min_words:
                documents.append("\n\n".join(current))
                current = []
    return documents


def distinct_documents(texts: list[str], spec: ShingleSpec, max_shared: float) -> list[str]:
    """Texts in order, skipping any that shares more than max_shared of its shingles with those kept,
    so that pairs between different base documents are known to be far apart."""
    hashes = hash_shingles(texts, spec)
    seen: set[int] = set()
    kept = []
    for index, text in enumerate(texts):
        shingles = set(hashes.hashes[hashes.offsets[index] : hashes.offsets[index + 1]].tolist())
        if shingles and len(shingles & seen) <= max_shared * len(shingles):
            kept.append(text)
            seen |= shingles
    return kept


def edit_words(text: str, rate: float, vocabulary: list[str], rng: random.Random) -> str:
    """Substitute, insert or delete round(rate * words) words (at least one if rate > 0).

    A rate of 0 instead changes only case and spacing: a copy that normalisation must see through.
    """
    words = text.split()
    if rate == 0.0:
        return "  ".join(word.upper() if i % 7 == 0 else word for i, word in enumerate(words))
    for _ in range(max(1, round(rate * len(words)))):
        position = rng.randrange(len(words))
        operation = rng.choice(("substitute", "insert", "delete"))
        if operation == "substitute":
            words[position] = rng.choice(vocabulary)
        elif operation == "insert":
            words.insert(position, rng.choice(vocabulary))
        elif len(words) > 1:
            del words[position]
    return " ".join(words)


def exact_jaccard(texts: list[str], pairs: np.ndarray, spec: ShingleSpec) -> np.ndarray:
    """Exact Jaccard similarity of the shingle sets of each pair of texts."""
    hashes = hash_shingles(texts, spec)
    sets = [
        set(hashes.hashes[hashes.offsets[i] : hashes.offsets[i + 1]].tolist()) for i in range(len(texts))
    ]
    return np.array([len(sets[a] & sets[b]) / max(1, len(sets[a] | sets[b])) for a, b in pairs])


@dataclass(frozen=True)
class PlantedCorpus:
    """texts[pairs[k, 0]] and texts[pairs[k, 1]] are a planted pair of exact Jaccard jaccard[k];
    edit_rate[k] made the copy. Every other pair of texts shares at most a few shingles."""

    texts: list[str]
    pairs: np.ndarray
    jaccard: np.ndarray
    edit_rate: np.ndarray


def real_documents(min_words: int, file_limit: int = 500) -> list[str]:
    """Documents of at least min_words words from pydoc topics, then stdlib docstrings."""
    return join_into_documents(pydoc_sections() + stdlib_docstring_sections(file_limit), min_words)


def build_planted_corpus(
    bases: int, *, seed: int, spec: ShingleSpec, singles: int = 0, min_words: int = 120
) -> PlantedCorpus:
    """`bases` distinct real documents, each with one edited copy, plus `singles` more texts
    without a copy. Edit rates cycle through the duplicate and distinct rates; texts are shuffled."""
    rng = random.Random(seed)
    documents = distinct_documents(real_documents(min_words), spec, max_shared=0.2)
    if len(documents) < bases + singles:
        raise ValueError(
            f"only {len(documents)} distinct documents of >= {min_words} words, {bases + singles} asked; "
            "lower min_words or the counts"
        )
    chosen = rng.sample(documents, bases + singles)
    vocabulary = sorted({word for text in chosen for word in text.split()})
    rates = DUPLICATE_EDIT_RATES + DISTINCT_EDIT_RATES
    copies = [edit_words(base, rates[i % len(rates)], vocabulary, rng) for i, base in enumerate(chosen[:bases])]
    texts = chosen + copies
    order = list(range(len(texts)))
    rng.shuffle(order)
    position = {original: new for new, original in enumerate(order)}
    pairs = np.array(
        [sorted((position[i], position[len(chosen) + i])) for i in range(bases)], dtype=np.int64
    ).reshape(-1, 2)
    shuffled = [texts[original] for original in order]
    return PlantedCorpus(
        texts=shuffled,
        pairs=pairs,
        jaccard=exact_jaccard(shuffled, pairs, spec),
        edit_rate=np.array([rates[i % len(rates)] for i in range(bases)]),
    )


def chinese_near_duplicates(seed: int) -> list[str]:
    """Two Chinese texts from CPython's test package, then a copy of each with 3 Han characters
    replaced: [a, b, a', b']. Whitespace words cannot see such edits; character shingles can."""
    rng = random.Random(seed)
    originals = [(CJK_SAMPLES / name).read_text(encoding="utf-8") for name in ("gb2312-utf8.txt", "big5-utf8.txt")]
    copies = []
    for text in originals:
        chars = list(text)
        han = [i for i, char in enumerate(chars) if "\u4e00" <= char <= "\u9fff"]
        for position in rng.sample(han, 3):
            chars[position] = chars[rng.choice(han)]
        copies.append("".join(chars))
    return originals + copies
