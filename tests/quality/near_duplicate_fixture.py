"""Real offline text with planted near-duplicates of known exact Jaccard similarity.

Shared by the near-duplicate tests and the dedup benchmarks. English is Python's own
documentation (pydoc_data.topics), standard-library docstrings and source, and docstrings of
installed packages; Chinese is Debian's Chinese manual pages (package manpages-zh, installed by
scripts/test.sh), real technical text in Simplified and Traditional characters. Nothing is
downloaded; everything drawn at random comes from a seeded generator.

Exact Jaccard similarities come from a plain-Python reference shingler (reference_units), not
from the numpy code under test, so a bug there cannot hide in the truth it is measured against.
"""

import ast
import gzip
import pydoc_data.topics
import random
import re
import sysconfig
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from synthmix.quality.normalize import normalize_texts
from synthmix.quality.shingles import ShingleSpec, hash_shingles

CHINESE_MANPAGES = (Path("/usr/share/man/zh_CN"), Path("/usr/share/man/zh_TW"))
SITE_PACKAGES = Path(sysconfig.get_paths()["purelib"])
# Packages whose docstrings extend the English pool for large corpora, in the order they are read.
DOCSTRING_PACKAGES = (
    "numpy", "scipy", "pandas", "sympy", "networkx", "pyarrow", "ray", "transformers", "torch", "vllm", "numba",
    "pip", "setuptools", "pygments", "huggingface_hub", "datasets", "mpmath", "pydantic", "openai", "anthropic",
    "megatron", "google", "sentry_sdk", "opentelemetry", "aiohttp", "fsspec", "rich", "click", "jinja2", "urllib3",
)  # fmt: skip
# The reference's unsegmented characters: Han (with extension A and compatibility ideographs),
# kana and Thai. The corpus holds no other unsegmented script.
UNSEGMENTED_CHARACTER = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\u0e00-\u0e7f]")
UNIT = re.compile(f"{UNSEGMENTED_CHARACTER.pattern}|[^ {UNSEGMENTED_CHARACTER.pattern[1:-1]}]+")
HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
ASCII_LETTERS = re.compile("[A-Za-z]")
# roff: escapes dropped or replaced, then requests (lines starting with a dot) end paragraphs.
ROFF_ESCAPES = (
    (re.compile(r"\\f(\(..|\[[^\]]*\]|.)"), ""),
    (re.compile(r"\\[*n](\(..|\[[^\]]*\]|.)"), ""),
    (re.compile(r"\\\(..|\\s[+-]?\d+|\\[&c/,|^%]"), ""),
    (re.compile(r"\\-"), "-"),
    (re.compile(r"\\e"), "\\\\"),
)
# Paragraphs of the Chinese manual pages that count as Chinese (Han share of letters, see
# han_share_of_letters); tests/quality/mixed_script_corpus.py takes the others.
MIN_HAN_SHARE = 0.6
ROFF_FONT_REQUESTS = re.compile(r"^\.(B|I|BR|BI|IB|IR|RB|RI|SM|SB)\s+(.*)$")

# Shares of words edited in planted copies. On documents of 120+ words with word 5-grams, up to
# 1.5% edits keep Jaccard above ~0.84 and 5% or more bring it below ~0.66. The rates leave the
# band around a 0.8 threshold nearly empty on purpose: with 128 permutations an estimate's
# standard error there is 0.035, and no estimator separates pairs at 0.79 from pairs at 0.81.
DUPLICATE_EDIT_RATES = (0.0, 0.005, 0.01, 0.015)
# Base documents are kept apart on word units (one shingle a word: cheap in Python sets): two of
# them share at most 20% of their word 5-grams, so no two are near-duplicates by any measure.
DISTINCT_SPEC = ShingleSpec(kind="units", n=5)
DISTINCT_EDIT_RATES = (0.08, 0.15, 0.3)


def pydoc_sections() -> list[list[str]]:
    """Each topic of Python's documentation as its list of paragraphs, topics in sorted order."""
    topics = pydoc_data.topics.topics
    return [[p.strip() for p in topics[name].split("\n\n") if p.strip()] for name in sorted(topics)]


def stdlib_files(limit: int) -> list[Path]:
    """The first `limit` standard-library modules, sorted by path (tests and site-packages left out)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(path for path in root.rglob("*.py") if "site-packages" not in path.parts and "test" not in path.parts and "tests" not in path.parts)
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


def unit_count(text: str) -> int:
    """Words, with each Han, kana or Thai character counted as one."""
    return len(text.split()) + len(UNSEGMENTED_CHARACTER.findall(text))


def join_into_documents(sections: list[list[str]], min_words: int, size: Callable[[str], int] = unit_count) -> list[str]:
    """Consecutive pieces of one section joined until each document has a size of at least
    min_words (by default units: see unit_count)."""
    documents = []
    for pieces in sections:
        current: list[str] = []
        total = 0
        for piece in pieces:
            current.append(piece)
            total += size(piece)
            if total >= min_words:
                documents.append("\n\n".join(current))
                current, total = [], 0
    return documents


def distinct_documents(texts: list[str], spec: ShingleSpec, max_shared: float, limit: int | None = None, seen: set[int] | None = None) -> list[str]:
    """Texts in order, skipping any that shares more than max_shared of its shingles with those kept,
    so that pairs between different base documents are known to be far apart; at most limit.
    `seen` (updated) holds the shingles of documents kept before, e.g. from another source."""
    hashes = hash_shingles(texts, spec)
    seen = set() if seen is None else seen
    kept = []
    for index, text in enumerate(texts):
        if limit is not None and len(kept) >= limit:
            break
        shingles = set(hashes.hashes[hashes.offsets[index] : hashes.offsets[index + 1]].tolist())
        if shingles and len(shingles & seen) <= max_shared * len(shingles):
            kept.append(text)
            seen |= shingles
    return kept


def edit_units(text: str, rate: float, vocabulary: list[str], rng: random.Random) -> str:
    """Substitute, insert or delete round(rate * units) units (at least one if rate > 0): words,
    or single characters of unsegmented scripts, each replaced by a unit of the same kind.

    A rate of 0 instead changes only case and spacing: a copy that normalisation must see through.
    """
    if rate == 0.0:
        return "  ".join(word.upper() if i % 7 == 0 else word for i, word in enumerate(text.split()))
    tokens = re.findall(f"{UNSEGMENTED_CHARACTER.pattern}|[^\\s{UNSEGMENTED_CHARACTER.pattern[1:-1]}]+|\\s+", text)
    characters = [unit for unit in vocabulary if UNSEGMENTED_CHARACTER.fullmatch(unit)] or ["\u4e00"]
    words = [unit for unit in vocabulary if not UNSEGMENTED_CHARACTER.fullmatch(unit)] or ["word"]
    units = [i for i, token in enumerate(tokens) if not token.isspace()]
    for _ in range(max(1, round(rate * len(units)))):
        position = rng.choice(units)
        character = bool(UNSEGMENTED_CHARACTER.fullmatch(tokens[position]))
        replacement = rng.choice(characters) if character else f" {rng.choice(words)} "
        operation = rng.choice(("substitute", "insert", "delete"))
        if operation == "substitute":
            tokens[position] = replacement
        elif operation == "insert":
            tokens[position] = replacement + tokens[position]
        else:
            tokens[position] = "" if character else " "
    return "".join(tokens)


def reference_units(normalized: str, kind: str) -> list[str]:
    """The units of one normalised text, the plain-Python way: code points (auto: all but spaces),
    words, or (units) each unsegmented-script character and each run of other characters between
    spaces."""
    if kind == "auto":
        return list(normalized.replace(" ", ""))
    if kind == "char":
        return list(normalized)
    if kind == "word":
        return [word for word in normalized.split(" ") if word]
    return UNIT.findall(normalized)


def reference_shingles(texts: list[str], spec: ShingleSpec) -> list[set[str]]:
    """Each text's set of n-grams of units (joined by a separator no text holds); a text shorter
    than n is one shingle of all its units. With spec.winnow > 1, only the n-grams winnowing keeps
    (reference_winnow)."""
    sets = []
    for text in normalize_texts(texts, spec.normalization).to_pylist():
        units = reference_units(text, spec.kind)
        count = len(units) - spec.n + 1 if len(units) >= spec.n else min(len(units), 1)
        ngrams = ["\x00".join(units[i : i + spec.n]) for i in range(count)]
        sets.append(set(ngrams) if spec.winnow == 1 else reference_winnow(ngrams, units, spec))
    return sets


MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def reference_mix(value: int) -> int:
    """splitmix64's finaliser."""
    value ^= value >> 30
    value = (value * 0xBF58476D1CE4E5B9) & MASK
    value ^= value >> 27
    value = (value * 0x94D049BB133111EB) & MASK
    return value ^ (value >> 31)


def reference_hash(units: list[str], n: int) -> int:
    """The hash quality/shingles.py gives the n-gram of these code points (fewer than n for a short
    text), computed the plain way: len * G^(n+1) + sum of u_t * G^(n-1-t) mod 2^64 (G the golden
    ratio constant), then splitmix64's finaliser."""
    value = len(units) * pow(GOLDEN, n + 1, 1 << 64)
    for position, unit in enumerate(units):
        value += ord(unit) * pow(GOLDEN, n - 1 - position, 1 << 64)
    return reference_mix(value & MASK)


def reference_window_hashes(units: list[str], n: int) -> list[int]:
    """reference_hash of every n-gram of a text of at least n units, rolled along the text: each
    sum is the last one less its first unit's term, times G, plus the new unit."""
    top, length = pow(GOLDEN, n - 1, 1 << 64), n * pow(GOLDEN, n + 1, 1 << 64)
    total = sum(ord(unit) * pow(GOLDEN, n - 1 - position, 1 << 64) for position, unit in enumerate(units[:n])) & MASK
    hashes = [reference_mix((length + total) & MASK)]
    for first, unit in zip(units, units[n:], strict=False):
        total = ((total - ord(first) * top) * GOLDEN + ord(unit)) & MASK
        hashes.append(reference_mix((length + total) & MASK))
    return hashes


def reference_winnow(ngrams: list[str], units: list[str], spec: ShingleSpec) -> set[str]:
    """The n-grams winnowing keeps: of every spec.winnow consecutive ones, the one of smallest hash
    (of all of them in a text with fewer). Code-point units only (auto, char)."""
    if spec.kind not in ("auto", "char"):
        raise ValueError(f"the reference winnows code-point shingles only (auto, char), not {spec.kind}")
    hashes = reference_window_hashes(units, spec.n) if len(units) >= spec.n else [reference_hash(units, spec.n)] * len(ngrams)
    runs = max(len(ngrams) - spec.winnow + 1, min(len(ngrams), 1))
    window = min(spec.winnow, len(ngrams))
    return {ngrams[min(range(start, start + window), key=hashes.__getitem__)] for start in range(runs)}


def exact_jaccard(texts: list[str], pairs: np.ndarray, spec: ShingleSpec) -> np.ndarray:
    """Exact Jaccard similarity of the shingle sets of each pair of texts (reference shingler)."""
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    involved = sorted(set(pairs.reshape(-1).tolist()))
    sets = dict(zip(involved, reference_shingles([texts[i] for i in involved], spec)))
    return np.array([len(sets[a] & sets[b]) / max(1, len(sets[a] | sets[b])) for a, b in pairs.tolist()])


@dataclass(frozen=True)
class PlantedCorpus:
    """texts[pairs[k, 0]] and texts[pairs[k, 1]] are a planted pair of exact Jaccard jaccard[k];
    edit_rate[k] made the copy. Every other pair of texts shares at most a few shingles.
    language[i] is "en" or "zh" for text i."""

    texts: list[str]
    pairs: np.ndarray
    jaccard: np.ndarray
    edit_rate: np.ndarray
    language: np.ndarray = field(default_factory=lambda: np.array([], dtype=object))

    def pair_language(self) -> np.ndarray:
        return self.language[self.pairs[:, 0]]


def real_documents(min_words: int, file_limit: int = 500) -> list[str]:
    """Documents of at least min_words words from pydoc topics, then stdlib docstrings."""
    return join_into_documents(pydoc_sections() + stdlib_docstring_sections(file_limit), min_words)


def build_planted_corpus(bases: int, *, seed: int, spec: ShingleSpec, singles: int = 0, min_words: int = 120) -> PlantedCorpus:
    """`bases` distinct real documents, each with one edited copy, plus `singles` more texts
    without a copy. Edit rates cycle through the duplicate and distinct rates; texts are shuffled."""
    rng = random.Random(seed)
    documents = distinct_documents(real_documents(min_words), spec, max_shared=0.2)
    if len(documents) < bases + singles:
        raise ValueError(f"only {len(documents)} distinct documents of >= {min_words} words, {bases + singles} asked; lower min_words or the counts")
    chosen = rng.sample(documents, bases + singles)
    vocabulary = sorted({word for text in chosen for word in text.split()})
    rates = DUPLICATE_EDIT_RATES + DISTINCT_EDIT_RATES
    copies = [edit_units(base, rates[i % len(rates)], vocabulary, rng) for i, base in enumerate(chosen[:bases])]
    texts = chosen + copies
    order = list(range(len(texts)))
    rng.shuffle(order)
    position = {original: new for new, original in enumerate(order)}
    pairs = np.array([sorted((position[i], position[len(chosen) + i])) for i in range(bases)], dtype=np.int64).reshape(-1, 2)
    shuffled = [texts[original] for original in order]
    return PlantedCorpus(
        texts=shuffled,
        pairs=pairs,
        jaccard=exact_jaccard(shuffled, pairs, spec),
        edit_rate=np.array([rates[i % len(rates)] for i in range(bases)]),
        language=np.full(len(shuffled), "en", dtype=object),
    )


def chinese_near_duplicates(seed: int, replaced: int = 1) -> list[str]:
    """Two Chinese paragraphs of two of Debian's Chinese manual pages (150-400 characters written
    as Chinese is, without a space between words), then a copy of each with `replaced` Han
    characters replaced: [a, b, a', b']. Whitespace words cannot see such edits; character
    shingles can. One replaced character keeps each copy above 0.8 with the default shingles
    (3 would be about 2% of the characters of the shorter text: a distinct text)."""
    require_chinese_manpages()
    rng = random.Random(seed)
    originals = unspaced_paragraphs(2)
    copies = []
    for text in originals:
        chars = list(text)
        han = [i for i, char in enumerate(chars) if "\u4e00" <= char <= "\u9fff"]
        for position in rng.sample(han, replaced):
            chars[position] = next(chars[i] for i in rng.sample(han, len(han)) if chars[i] != chars[position])
        copies.append("".join(chars))
    return originals + copies


def roff_paragraphs(source: str) -> list[str]:
    """Plain-text paragraphs of a roff manual page: escapes dropped, font requests kept as text,
    every other request (and a blank line) ending a paragraph."""
    paragraphs, current = [], []
    for line in source.splitlines():
        font = ROFF_FONT_REQUESTS.match(line)
        if line.startswith((".", "'")) and not font:
            if current:
                paragraphs.append(" ".join(current))
                current = []
            continue
        text = font.group(2).replace('"', "") if font else line
        for pattern, replacement in ROFF_ESCAPES:
            text = pattern.sub(replacement, text)
        if text.strip():
            current.append(text.strip())
        elif current:
            paragraphs.append(" ".join(current))
            current = []
    if current:
        paragraphs.append(" ".join(current))
    return paragraphs


def manpage_paragraphs(roots: tuple[Path, ...] = CHINESE_MANPAGES) -> list[list[str]]:
    """Each page of Debian's Chinese manual pages (zh_CN, then zh_TW) as its plain-text paragraphs."""
    return [roff_paragraphs(gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")) for root in roots for path in sorted(root.glob("man*/*.gz"))]


def han_share_of_letters(text: str) -> float:
    """Han characters over Han characters plus ASCII letters (0 for text with neither)."""
    han = len(HAN.findall(text))
    return han / max(1, han + len(ASCII_LETTERS.findall(text)))


def chinese_manpage_sections(min_han_share: float = MIN_HAN_SHARE, roots: tuple[Path, ...] = CHINESE_MANPAGES) -> list[list[str]]:
    """Each page of Debian's Chinese manual pages as its paragraphs that are mostly Chinese: Han
    characters at least min_han_share of Han characters plus ASCII letters."""
    return [[p for p in paragraphs if HAN.search(p) and han_share_of_letters(p) >= min_han_share] for paragraphs in manpage_paragraphs(roots)]


def unspaced_paragraphs(count: int) -> list[str]:
    """The first paragraph of 150-400 characters, nine tenths Han, with at most one space per 20
    characters (early translations put spaces between words) of each of the first `count` pages
    of zh_CN that have one."""
    found = []
    for section in chinese_manpage_sections(0.9, roots=CHINESE_MANPAGES[:1]):
        paragraph = next((p for p in section if 150 <= len(p) <= 400 and len(p.split()) <= len(p) / 20), None)
        if paragraph is not None:
            found.append(paragraph)
            if len(found) == count:
                return found
    raise ValueError(
        f"only {len(found)} unspaced Chinese paragraphs of 150-400 characters under {CHINESE_MANPAGES[0]}, {count} asked; is manpages-zh complete?"
    )


def require_chinese_manpages() -> None:
    # One page of manpages-zh: man-db, login and passwd put a few pages of their own in zh_CN.
    if not (CHINESE_MANPAGES[0] / "man1" / "ab.1.gz").is_file():
        raise FileNotFoundError(f"Debian's manpages-zh is not installed ({CHINESE_MANPAGES[0]}/man1/ab.1.gz is missing): scripts/test.sh installs it")


def stdlib_source_sections() -> list[list[str]]:
    """Each standard-library module's source as its blank-line separated blocks, in path order."""
    root = Path(sysconfig.get_paths()["stdlib"])
    sections = []
    for path in sorted(root.rglob("*.py")):
        if "site-packages" not in path.parts:
            text = path.read_text(encoding="utf-8", errors="replace")
            sections.append([block.strip() for block in text.split("\n\n") if block.strip()])
    return sections


def docstring_sections(root: Path) -> list[list[str]]:
    """Each module under root (site-packages left out) as the triple-quoted strings in its source."""
    sections = []
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.relative_to(root).parts:
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        sections.append([doc.strip() for doc in re.findall(r'"""(.*?)"""', text, flags=re.DOTALL) if doc.strip()])
    return sections


def english_documents(count: int, min_units: int, spec: ShingleSpec) -> list[str]:
    """count distinct English documents: pydoc, stdlib docstrings, stdlib source, then package
    docstrings, read source by source until there are enough."""
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    sources = [
        pydoc_sections,
        lambda: docstring_sections(stdlib),
        stdlib_source_sections,
        *[lambda package=package: docstring_sections(SITE_PACKAGES / package) for package in DOCSTRING_PACKAGES],
    ]
    documents: list[str] = []
    seen: set[int] = set()
    for source in sources:
        documents += distinct_documents(join_into_documents(source(), min_units), spec, 0.2, count - len(documents), seen)
        if len(documents) >= count:
            return documents[:count]
    raise ValueError(f"only {len(documents)} distinct English documents of >= {min_units} units, {count} asked")


def chinese_documents(count: int, min_units: int, spec: ShingleSpec) -> list[str]:
    """count distinct Chinese documents from Debian's Chinese manual pages."""
    require_chinese_manpages()
    documents = distinct_documents(join_into_documents(chinese_manpage_sections(), min_units), spec, 0.2, limit=count)
    if len(documents) < count:
        raise ValueError(
            f"only {len(documents)} distinct Chinese documents of >= {min_units} units, {count} asked; lower the document count, the Chinese share or min_units"
        )
    return documents[:count]


def build_bilingual_corpus(documents: int, *, seed: int, chinese_share: float = 0.15, copy_share: float = 0.2, min_units: int = 100) -> PlantedCorpus:
    """`documents` texts, chinese_share of them Chinese: in each language, copy_share of the texts
    are edited copies of distinct real documents (edit rates cycling through the duplicate and
    distinct rates), the rest distinct documents without a copy. Texts are shuffled; exact
    Jaccard is measured on the default shingles."""
    spec = DISTINCT_SPEC
    rng = random.Random(seed)
    rates = DUPLICATE_EDIT_RATES + DISTINCT_EDIT_RATES
    chinese = round(documents * chinese_share)
    texts, languages, planted, edit_rate = [], [], [], []
    for language, count, pool in (("en", documents - chinese, english_documents), ("zh", chinese, chinese_documents)):
        copies = round(count * copy_share)
        bases = pool(count - copies, min_units, spec)
        rng.shuffle(bases)
        vocabulary = sorted({unit for text in bases[:2000] for unit in reference_units(text, "units")})
        copy_rates = [rates[index % len(rates)] for index in range(copies)]
        planted += [(len(texts) + index, len(texts) + len(bases) + index) for index in range(copies)]
        edit_rate += copy_rates
        texts += bases + [edit_units(base, rate, vocabulary, rng) for base, rate in zip(bases, copy_rates)]
        languages += [language] * count
    order = list(range(len(texts)))
    rng.shuffle(order)
    position = {original: new for new, original in enumerate(order)}
    pairs = np.sort(np.array([(position[a], position[b]) for a, b in planted], dtype=np.int64).reshape(-1, 2), axis=1)
    shuffled = [texts[original] for original in order]
    return PlantedCorpus(
        texts=shuffled,
        pairs=pairs,
        jaccard=exact_jaccard(shuffled, pairs, ShingleSpec()),
        edit_rate=np.array(edit_rate),
        language=np.array([languages[original] for original in order], dtype=object),
    )


def score_removals(corpus: PlantedCorpus, removed: dict[int, int], threshold: float = 0.8) -> dict[str, float]:
    """How a dedup did on a planted corpus; removed maps each removed text to the text kept for it.

    recall_<language>: share of planted pairs of exact Jaccard >= threshold of which not both
    texts are kept (pairs_<language> counts them). precision: share of removed texts whose kept
    text is kept and truly at or above the threshold (reference shingler)."""
    scores: dict[str, float] = {}
    for language in ("en", "zh"):
        positive = (corpus.jaccard >= threshold) & (corpus.pair_language() == language)
        found = [a in removed or b in removed for a, b in corpus.pairs[positive].tolist()]
        scores[f"recall_{language}"] = float(np.mean(found)) if found else float("nan")
        scores[f"pairs_{language}"] = int(positive.sum())
    pairs = np.array(sorted(removed.items()), dtype=np.int64).reshape(-1, 2)
    truth = exact_jaccard(corpus.texts, pairs, ShingleSpec())
    kept = np.array([doc not in removed for doc in pairs[:, 1].tolist()], dtype=bool)
    scores["precision"] = float(np.mean((truth >= threshold) & kept)) if len(pairs) else 1.0
    scores["removed"] = len(pairs)
    return scores
