"""quality.answer_checks: a reply that only asks a question back is no answer."""

import pytest

from pipeline.contracts import RejectReason
from quality.answer_checks import check_is_answer


@pytest.mark.parametrize(
    ("instruction", "reply"),
    [
        # Replies Qwen2.5-Coder-0.5B gave in the quickstart (bench_quickstart, 2026-12-01).
        ("What are some examples of descriptors in Python?", "Could you provide an example of a descriptor in Python?"),
        (
            "What is the difference between class attributes and instance attributes in Python classes?",
            "Can you explain the difference between class attributes and instance attributes in Python classes?",
        ),
        ("光合作用释放多少能量? 使用更直观的提问方式。", "光合作用释放多少能量？"),
        ("Explain the features Python 3.10 added.", "Which features of Python 3.10 do you mean?"),
    ],
)
def test_a_reply_that_only_asks_back_is_not_an_answer(instruction, reply):
    reason, detail = check_is_answer(reply, instruction)
    assert reason == RejectReason.NOT_AN_ANSWER and "asks a question back" in detail


@pytest.mark.parametrize(
    ("instruction", "reply"),
    [
        ("What is a descriptor?", "A descriptor is an object that defines __get__. Want an example?"),
        ("What is a descriptor?", "A descriptor defines __get__, __set__ or __delete__.\nWhy use one?"),
        ("什么是光合作用？", "光合作用是植物利用光能合成有机物的过程。你还想了解什么？"),
        ("Is 7 a prime number?", "Yes."),
        ("Write three quiz questions about rivers.", "Which river is the longest in Africa?"),
        ("Give me one interview question for a Python developer.", "How does Python's garbage collector handle reference cycles?"),
        ("请出三道关于光合作用的题目。", "光合作用需要哪些原料？"),
    ],
)
def test_answers_and_questions_asked_for_pass(instruction, reply):
    assert check_is_answer(reply, instruction) is None
