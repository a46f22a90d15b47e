import pytest

from synthmix.quality.code_language import asked_languages, code_languages, prose_of, python_sources


def fence(label: str, code: str) -> str:
    return f"```{label}\n{code}\n```"


@pytest.mark.parametrize(
    "instruction, asked",
    [
        ("How do I overload `<<` in C++?", {"c++"}),
        ("Write a Python function that reverses a list.", {"python"}),
        ("Compare Python and Java generics.", {"python", "java"}),
        ("用Java实现一个栈。", {"java"}),
        ("Write a C program that prints hello.", {"c"}),
        ("Explain what a descriptor is.", set()),
        ("What does JavaScript's `this` refer to?", {"javascript"}),
        # A letter C in prose is no language, and "Go" is a verb far more often than a language.
        ("Go through the steps of option C to continue.", set()),
    ],
)
def test_asked_languages_are_the_ones_the_instruction_names(instruction, asked):
    assert asked_languages(instruction) == asked


def test_fence_labels_name_the_language():
    answer = "Here:\n" + fence("cpp", "int x = 1;") + "\nand\n" + fence("java", "int y = 2;") + "\n" + fence("bash", "pip install x")
    assert code_languages(answer) == ["c++", "java"]


def test_unlabelled_code_is_known_by_its_signatures():
    # Seen in the quickstart: a Python question answered with an unlabelled C# program.
    csharp = "using System;\nclass P {\n  static void Main() { Console.WriteLine(1); }\n}"
    assert code_languages(fence("", csharp)) == ["c#"]
    assert code_languages(fence("", "def f(x):\n    return x * 2\n")) == ["python"]
    # Output or data is no language.
    assert code_languages(fence("", "5\nHello, world")) == []


def test_evident_code_outside_fences_counts():
    answer = "You can write it like this:\n#include <iostream>\nint main() { std::cout << 1; }"
    assert code_languages(answer) == ["c++"]


def test_prose_of_leaves_out_the_code():
    answer = "Intro.\n" + fence("python", "x = 1") + "\nOutro."
    assert prose_of(answer) == "Intro.\nOutro."


def test_python_sources_take_the_code_of_interactive_sessions():
    session = ">>> x = [1, 2]\n>>> for item in x:\n...     print(item)\n1\n2"
    assert python_sources(fence("python", session)) == ["x = [1, 2]\nfor item in x:\n    print(item)\n"]
    # An unclosed block is the cut-off check's business, not the parser's.
    assert python_sources("```python\ndef f(:\n") == []
