"""synthmix.quality.answer_checks: a reply that only asks a question back is no answer."""

import pytest

from synthmix.pipeline.contracts import RejectReason
from synthmix.quality.answer_checks import (
    check_arithmetic,
    check_asked_construct,
    check_attribute_labels,
    check_code_language,
    check_cut_off,
    check_describes_absent_code,
    check_follows_constraints,
    check_is_answer,
    check_python_syntax,
)


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


@pytest.mark.parametrize(
    ("instruction", "reply"),
    [
        # Qwen2.5-Coder-0.5B in quickstart runs (qA, qB, 2026-12-07): the instruction given back.
        (
            "谁设计了二分查找算法？请假设你设计了一种二分查找算法，并且它接受一个整数数组作为输入，并返回这个数组中某个元素的索引。",
            "设计了一种二分查找算法，并且它接受一个整数数组作为输入，并返回这个数组中某个元素的索引。",
        ),
        (
            "写一篇关于丝绸之路的旅行指南：丝绸之路是古代连接中国与中亚、西亚和欧洲的陆上贸易通道。西汉时，张骞两次出使西域，打通了这条道路。",
            "旅行指南：丝绸之路是古代连接中国与中亚、西亚和欧洲的陆上贸易通道。西汉时，张骞两次出使西域，打通了这条道路。",
        ),
        ("Explain how a context manager closes a file when an exception is raised.", "A context manager closes a file when an exception is raised."),
    ],
)
def test_a_reply_that_repeats_its_instruction_is_not_an_answer(instruction, reply):
    reason, detail = check_is_answer(reply, instruction)
    assert reason == RejectReason.NOT_AN_ANSWER and "repeats the instruction" in detail


@pytest.mark.parametrize(
    ("instruction", "reply"),
    [
        # Short right answers restate their question and add the fact asked for.
        ("二分查找算法的时间复杂度是什么？", "二分查找算法的时间复杂度是O(log n)。"),
        ("What is the syntax for defining a class in Python?", "The syntax for defining a class in Python is `class ClassName:`."),
        # A debug answer repeats the code it was given: code blocks are not prose.
        (
            "Fix this function:\n```python\ndef mean(values):\n    return sum(values) / len(values)\n```",
            "It fails on an empty list; return 0.0 then.\n```python\ndef mean(values):\n    return sum(values) / len(values) if values else 0.0\n```",
        ),
    ],
)
def test_answers_that_restate_their_question_pass(instruction, reply):
    assert check_is_answer(reply, instruction) is None


# --- code in the asked language, Python that parses, answers that end -------------------------------
PYTHON_QUESTION = "How can I use pattern matching with the match statement?"


@pytest.mark.parametrize(
    "answer",
    [
        # Seen in the quickstart (Qwen2.5-Coder-0.5B): Python questions answered for another language.
        "In JavaScript, you can use the `switch` statement:\n\n```java\nswitch (value) {\n  case 1: break;\n}\n```",
        "In C++, overload it as a member:\n```cpp\nstd::ostream& operator<<(std::ostream& os, const P& p) { return os; }\n```",
        # Unlabelled C# opening with a chain of usings.
        "```\nusing System;\nusing System.Security.Cryptography;\nclass P { static void Main() { Console.WriteLine(1); } }\n```",
    ],
)
def test_code_in_another_language_than_asked_is_rejected(answer):
    reason, detail = check_code_language(answer, PYTHON_QUESTION)
    assert reason == RejectReason.WRONG_CODE_LANGUAGE and "the instruction asks for python" in detail


@pytest.mark.parametrize(
    ("instruction", "answer"),
    [
        (
            PYTHON_QUESTION,
            "Use `match`:\n```python\nmatch point:\n    case (0, 0):\n        print('origin')\n```\nInstall nothing:\n```bash\npython3 --version\n```",
        ),
        ("Show the same loop in Java and in Python.", "```java\nfor (int i = 0; i < 3; i++) {}\n```\n```python\nfor i in range(3):\n    pass\n```"),
        ("Write a C++ function that adds two ints.", "```cpp\nint add(int a, int b) { return a + b; }\n```"),
        ("Explain what a hash table is.", "A hash table maps keys to slots with a hash function; lookups take constant time on average."),
    ],
)
def test_code_in_the_asked_language_or_no_code_passes(instruction, answer):
    assert check_code_language(answer, instruction) is None


def test_without_a_default_language_any_code_passes_an_instruction_that_names_none():
    assert check_code_language("```java\nint x = 1;\n```", "Show a variable declaration.", default=None) is None


def test_python_that_does_not_parse_is_rejected_and_interactive_sessions_parse():
    reason, detail = check_python_syntax("```python\ndef double(x)\n    return 2 * x\n```")
    assert reason == RejectReason.CODE_SYNTAX_ERROR and "line 1" in detail
    assert check_python_syntax("```python\nprint 'hello'\n```")[0] == RejectReason.CODE_SYNTAX_ERROR  # Python 2
    assert check_python_syntax("```python\n>>> x = [1, 2]\n>>> x[0]\n1\n```") is None
    assert check_python_syntax("```python\nclass Stack:\n    ...\n```") is None
    # A block inside a list item is indented with it (seen in the quickstart).
    assert check_python_syntax("- Example:\n  ```python\n  my_string = 'hello'\n  print(my_string)\n  ```") is None


@pytest.mark.parametrize(
    "answer",
    [
        "Recursion is when a function calls itself, so that each call works on a smaller",
        "The steps are as follows:",
        "```python\ndef f(x):\n    return x\n",  # the code block never closes
        "光合作用是植物利用光能把二氧化碳和水转化为",
    ],
)
def test_an_answer_that_stops_mid_way_is_incomplete(answer):
    reason, _ = check_cut_off(answer)
    assert reason == RejectReason.INCOMPLETE


@pytest.mark.parametrize(
    "answer",
    [
        "A list is mutable; a tuple is not.",
        "The final answer is \\boxed{42}",
        "The answer is 42",
        "Three ways:\n1. Use a loop\n2. Use a comprehension\n3. Use map",
        "- Lists are mutable\n- Tuples are not",
        "Here it is:\n```python\nprint(1)\n```",
        "光合作用把光能转化为化学能。",
        "| a | b |\n|---|---|\n| 1 | 2 |",
        "See https://docs.python.org/3/library/functions.html",
        # The objective template's last line (Qwen2.5-Coder-0.5B in the quickstart).
        "丝绸之路是古代连接中国与西方的贸易通道。\n答案：中国",
        "Answer: B",
    ],
)
def test_finished_answers_are_not_cut_off(answer):
    assert check_cut_off(answer) is None


def test_an_answer_at_its_token_limit_is_cut_off_whatever_its_last_character():
    assert check_cut_off("A list is mutable.", hit_token_limit=True)[0] == RejectReason.INCOMPLETE


def test_no_gsm8k_reference_fails_the_arithmetic_check_but_the_one_with_an_error():
    from synthmix.quality.benchmark_sets import load_gsm8k_test
    from synthmix.quality.judged_sets import readable_solution

    failing = {problem.row: check_arithmetic(readable_solution(problem.solution)) for problem in load_gsm8k_test()}
    failing = {row: problem for row, problem in failing.items() if problem is not None}
    # Test row 1024 really says "$32 - $20 = $300".
    assert list(failing) == [1024] and "$32 - $20 = $300" in failing[1024][1]


@pytest.mark.parametrize(
    "answer",
    [
        "So the total amount of fabric is 2+1=4 bolts of fabric",
        "Five packs cost $3 x 5 = $16.",
        "Then 4 * 20 sheep = 90 sheep live in Charleston.",
        "所以一共是 12 × 4 = 46 个。",
        "We get \\( 16 - 3 - 4 = 10 \\) eggs.",
        "That is 2,000 * 0.5 = 1,500 dollars.",
    ],
)
def test_a_wrong_calculation_is_rejected(answer):
    reason, detail = check_arithmetic(answer)
    assert reason == RejectReason.WRONG_ARITHMETIC and "is wrong" in detail


@pytest.mark.parametrize(
    "answer",
    [
        "10 / 3 = 3.33 each, rounded.",
        "Solve 2x + 3 = 7 for x.",
        "It takes 1 1/2 / 1/2 = 3 episodes.",  # a mixed number: not read
        "Amy had 2 * 4 + 3 * 6 = 8 + 18 = 26 eyeshadows.",
        "A 20% tip on $50 = $10.",
        "The brokerage fee is $350 000 x 5/100 = $17500.",
        "Python's 7 // 2 == 3 and 7 % 2 == 1.",
    ],
)
def test_right_or_unreadable_calculations_pass(answer):
    assert check_arithmetic(answer) is None


# --- the construct the instruction asks for --------------------------------------------------------
INSTANCE_SQUARE = "```python\nclass Calculator:\n    def square(self, num):\n        return num * num\n\nprint(Calculator().square(5))  # Output: 25\n```"
CLASS_SQUARE = "```python\nclass Calculator:\n    @classmethod\n    def square(cls, num):\n        return num * num\n```"


@pytest.mark.parametrize(
    ("instruction", "answer"),
    [
        # The quickstart, 0.5B and 1.5B alike (2026-12-07): an instance method called a class method.
        ("Calculate the square of a number using a class method.", INSTANCE_SQUARE),
        ("Write a Python script that calculates the square of a number using a class method.", INSTANCE_SQUARE),
        ("Write a static method that checks whether a year is a leap year.", "```python\nclass Years:\n    def leap(self, y):\n        return y % 4 == 0\n```"),
        (
            "Write a function that uses abstract classes and inheritance.",
            "```python\nclass Animal:\n    def speak(self):\n        raise NotImplementedError\n```",
        ),
        ("用数据类表示一个二维点。", "```python\nclass Point:\n    def __init__(self, x, y):\n        self.x, self.y = x, y\n```"),
        # The quickstart (2026-12-07): `self.value` in __init__, commented "# Class attribute".
        ("How does the class attribute in Python define variables?", "```python\nclass MyClass:\n    def __init__(self):\n        self.value = 1\n```"),
        ("Write a class that uses a property for its radius.", "```python\nclass Circle:\n    def radius(self):\n        return self._r\n```"),
    ],
)
def test_code_without_the_construct_asked_for_is_rejected(instruction, answer):
    reason, detail = check_asked_construct(answer, instruction)
    assert reason == RejectReason.MISSING_ASKED_API and "its code has no" in detail


@pytest.mark.parametrize(
    ("instruction", "answer"),
    [
        ("Calculate the square of a number using a class method.", CLASS_SQUARE),
        # "A class method" meaning any method of a class, and abstract methods: not a classmethod request.
        ("How can I set an instance attribute in a Python class method?", "```python\nclass A:\n    def set(self, v):\n        self.v = v\n```"),
        (
            "Write a Python script that implements the abstract class methods.",
            "```python\nfrom abc import ABC, abstractmethod\n\nclass Shape(ABC):\n    @abstractmethod\n    def area(self): ...\n```",
        ),
        # No code: nothing to check (a prose answer is the judge's).
        ("Explain when to use a class method.", "Use one when the method needs the class, not an instance."),
        ("How does the class attribute in Python define variables?", "```python\nclass Dog:\n    legs: int = 4\n```"),
        (
            "Compare class attributes and instance attributes.",
            "```python\nclass Dog:\n    kind = 'canine'\n    def __init__(self):\n        self.name = 'Rex'\n```",
        ),
        ("Write a class that uses a property for its radius.", "```python\nclass Circle:\n    @property\n    def radius(self):\n        return self._r\n```"),
    ],
)
def test_code_with_the_construct_or_no_request_for_one_passes(instruction, answer):
    assert check_asked_construct(answer, instruction) is None


# --- explanations of code the answer does not have --------------------------------------------
CLASS_WITH_ATTRIBUTE = "```python\nclass MyClass:\n    greeting = 'hi'\n\n    def hello(self):\n        print(self.greeting)\n```\n\n"


@pytest.mark.parametrize(
    ("explanation", "absent"),
    [
        # Three quickstart shard rows (2026-12-07/08), each read as unsound.
        ("The `greeting` attribute is defined using the `@property` decorator.", "@property"),
        ("The class definition includes the `pass` statement, a no-op.", "pass"),
        ("The `hello` method calls the abstract method using `super()`.", "super()"),
    ],
)
def test_an_explanation_naming_a_construct_its_code_lacks_is_rejected(explanation, absent):
    reason, detail = check_describes_absent_code(CLASS_WITH_ATTRIBUTE + explanation)
    assert reason == RejectReason.DESCRIBES_ABSENT_CODE and absent in detail


@pytest.mark.parametrize(
    "answer",
    [
        CLASS_WITH_ATTRIBUTE + "`hello` prints the class attribute; `greeting` is shared by every instance.",
        # The construct in another block of the same answer counts.
        "```python\nclass Empty:\n    pass\n```\n\nThe `pass` statement keeps the body valid.\n\n```python\nEmpty()\n```",
        "```python\nclass C:\n    @property\n    def x(self):\n        return 1\n```\n\n`@property` makes `x` read like an attribute.",
        # No code: nothing to compare the prose with.
        "Use `super()` to call the parent's method, and `pass` for an empty body.",
    ],
)
def test_an_explanation_of_code_that_is_there_passes(answer):
    assert check_describes_absent_code(answer) is None


# --- class and instance attributes told apart -------------------------------------------------
@pytest.mark.parametrize(
    ("answer", "detail"),
    [
        # Quickstart shard rows (2026-12-07/08).
        (
            '```python\nclass Person:\n    # Class attribute\n    species = "human"\n    # Instance attribute\n    name = "John Doe"\n```',
            "`name` (line 5) is a class attribute; its comment says instance",
        ),
        (
            "```python\nclass MyClass:\n    def __init__(self):\n        # Class attribute\n        self.value = 1\n```",
            "`value` (line 4) is an instance attribute",
        ),
        (
            "```python\nclass Car:\n    make = 'Toyota'\n    model = 'Corolla'\n```\n\nThe `model` attribute is an instance attribute.",
            "the answer calls it instance",
        ),
        ("```python\nclass P:\n    def __init__(self):\n        self.n = 1  # 类属性\n```", "its comment says class"),
    ],
)
def test_a_class_attribute_called_an_instance_attribute_or_back_is_rejected(answer, detail):
    reason, found = check_attribute_labels(answer)
    assert reason == RejectReason.MISLABELLED_ATTRIBUTE and detail in found


@pytest.mark.parametrize(
    "answer",
    [
        "```python\nclass Dog:\n    kind = 'canine'  # class attribute, shared\n\n    def __init__(self, name):\n        self.name = name  # instance attribute\n```",
        # A comment naming both kinds says nothing about this line.
        "```python\nclass Dog:\n    # class attributes are shared; instance attributes are not\n    kind = 'canine'\n```",
        "```python\nclass Car:\n    make = 'Toyota'\n```\n\nThe `make` attribute is a class attribute, shared by every car.",
        "Class attributes live on the class; instance attributes on each object.",
    ],
)
def test_attributes_named_for_what_they_are_pass(answer):
    assert check_attribute_labels(answer) is None


PHOTOSYNTHESIS = (
    "光合作用是绿色植物利用光能，把二氧化碳和水合成有机物并释放氧气的过程。它主要在叶片细胞的叶绿体中进行，叶绿素负责吸收光能。"
    "光合作用为几乎所有生物提供了食物和能量，也维持着大气中氧气和二氧化碳的平衡。"
)
SUM_LIST = "Use the built-in sum:\n\n```python\ntotal = sum([1, 2, 3])\nprint(total)  # 6\n```\n\nIt adds the numbers one after another."


@pytest.mark.parametrize(
    ("instruction", "answer", "detail"),
    [
        # Run qc (2026-12-08) shipped this add_constraints rewrite, answered by the definition alone.
        ("解释光合作用的定义及重要作用。请举一个光合作用的定义及重要作用的例子", PHOTOSYNTHESIS, "gives none"),
        (
            "Explain what a class attribute is. Include an example of a class attribute shared by two instances.",
            "A class attribute belongs to the class.",
            "gives none",
        ),
        ("Explain list comprehensions. Keep the answer under 20 words.", " ".join(["word"] * 40) + ".", "the answer has 40"),
        ("解释光合作用。请把回答控制在50字以内。", PHOTOSYNTHESIS, "the answer has"),
        (
            "Explain how Python finds a module. Keep the answer under 2 sentences.",
            "It looks in sys.path. Then it checks caches. Then it loads the file. Done.",
            "has 4",
        ),
        ("解释复利。请用表格或编号列表列出它的特点。", "复利是把利息加入本金再计算利息。它增长得比单利快。", "a table or a numbered list"),
        ("List the steps to install a package. Present the answer as a numbered list.", "You run pip install and then import the package.", "a numbered list"),
        ("Compare lists and tuples. Present the answer as a table.", "1. Lists change.\n2. Tuples do not.", "a table"),
    ],
)
def test_an_answer_that_ignores_a_stated_constraint_is_rejected(instruction, answer, detail):
    reason, found = check_follows_constraints(answer, instruction)
    assert reason is RejectReason.IGNORES_CONSTRAINT and detail in found


@pytest.mark.parametrize(
    ("instruction", "answer"),
    [
        ("解释光合作用的重要作用。请举一个例子", PHOTOSYNTHESIS + "例如，一棵树每天吸收二氧化碳。"),
        ("How do I add numbers in Python? Include an example of the sum function.", SUM_LIST),
        # The limit counts prose: the code block is not words.
        ("How do I add numbers in Python? Keep the answer under 12 words.", SUM_LIST),
        ("Explain list comprehensions. Keep the answer under 20 words.", " ".join(["word"] * 22) + "."),
        ("解释复利。请用表格或编号列表列出它的特点。", "复利的特点：\n1. 利息计入本金。\n2. 增长越来越快。"),
        ("Compare lists and tuples. Present the answer as a table.", "| | list | tuple |\n|---|---|---|\n| mutable | yes | no |"),
        ("Explain how a dictionary stores keys.", " ".join(["word"] * 400) + "."),
    ],
)
def test_an_answer_that_keeps_its_constraints_passes(instruction, answer):
    assert check_follows_constraints(answer, instruction) is None


@pytest.mark.parametrize(
    ("instruction", "answer", "rejected"),
    [
        ("How do I find 15% of 80?", "12", True),  # run qd, 2026-12-08
        ("为什么复利比单利增长快？", "利滚利。", True),
        ("How do I find 15% of 80?", "Multiply 80 by 0.15: 12.", False),
        ("Explain why 15% of 80 is 12.", "Because 80 × 0.15 = 12.", False),
        ("Compute 15% of 80.", "12", False),
    ],
)
def test_a_bare_result_does_not_answer_how_or_why(instruction, answer, rejected):
    found = check_is_answer(answer, instruction)
    assert (found is not None and found[0] is RejectReason.NOT_AN_ANSWER and "bare result" in found[1]) is rejected
