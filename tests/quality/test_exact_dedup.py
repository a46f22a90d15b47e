import numpy as np
import pyarrow as pa

from synthmix.quality.exact_dedup import copy_keys, digest_texts, find_exact_duplicates, label_exact_duplicates, text_groups
from synthmix.quality.normalize import TextNormalization, normalize_texts

DEFAULT = TextNormalization()


def test_texts_equal_after_normalisation_share_a_digest():
    digests = digest_texts(["Hello,  World!", "hello world", "ＨＥＬＬＯ world", "hello world again"], DEFAULT)
    assert digests.type == pa.binary(16)
    assert digests[0] == digests[1] == digests[2]
    assert digests[0] != digests[3]


def test_whitespace_only_normalisation_keeps_case_and_punctuation_apart():
    light = TextNormalization(unicode_form="NFC", lowercase=False, strip_punctuation=False)
    digests = digest_texts(["Hello  world", "Hello world", "hello world", "Hello, world"], light)
    assert digests[0] == digests[1]
    assert len({digests[i].as_py() for i in (1, 2, 3)}) == 3


def test_digest_does_not_depend_on_the_batch():
    texts = ["one", "two", "three"]
    assert digest_texts(texts, DEFAULT).to_pylist()[1:] == digest_texts(texts[1:], DEFAULT).to_pylist()


def test_groups_are_labelled_by_their_first_text():
    digests = digest_texts(["b", "a", "B", "c", "A!"], DEFAULT)
    assert label_exact_duplicates(digests).tolist() == [0, 1, 0, 3, 1]
    assert label_exact_duplicates(digests.slice(1)).tolist() == [0, 1, 2, 0]


def test_kept_copy_has_the_highest_score_then_smallest_id():
    texts = ["same text", "Same text!", "SAME TEXT", "other"]
    kept = find_exact_duplicates(texts, ["id-3", "id-1", "id-2", "id-0"], np.array([0.2, 0.5, 0.5, 0.0]), DEFAULT)
    assert kept.tolist() == [1, 1, 1, 3]


def test_copy_keys_and_text_groups_tell_equal_texts_from_near_ones():
    texts = ["alpha beta", "alpha beta", "alpha betb", "", "", "x" * 17, "x" * 16 + "y", "x" * 17]
    normalized = normalize_texts(texts, TextNormalization())
    keys = copy_keys(normalized)
    assert keys[0] == keys[1] and keys[3] == keys[4] and keys[5] == keys[7]
    assert len({int(keys[i]) for i in (0, 2, 3, 5, 6)}) == 5
    assert text_groups(normalized).tolist() == [0, 0, 1, 2, 2, 3, 4, 3]
