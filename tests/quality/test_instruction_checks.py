import pytest

from synthmix.pipeline.contracts import RejectReason
from synthmix.quality.instruction_checks import (
    check_answers_itself,
    check_copies_seed,
    check_echoes_prompt,
    check_evolution,
    check_has_quantities,
    check_is_request,
    check_language,
    check_self_contained,
    is_mostly_chinese,
    plausible_task_type,
    strip_type_label,
    words,
)
from synthmix.quality.task_types import classify_task_type

SEED = (
    "The with statement is used to wrap the execution of a block with methods defined by a "
    "context manager. This allows common try except finally usage patterns to be encapsulated "
    "for convenient reuse."
)


def test_questions_and_imperatives_are_requests():
    assert check_is_request("What does the with statement do in Python?") is None
    assert check_is_request("Explain how context managers release resources.") is None
    assert check_is_request("Given a list of integers, return the largest gap.") is None


def test_statements_are_not_requests():
    reason, detail = check_is_request("The with statement wraps a block of code.")
    assert reason == "not_a_request" and "starts with" in detail


def test_empty_instruction_is_empty():
    assert check_is_request("   ")[0] == "empty"


def test_chinese_requests_are_recognised_by_request_words():
    assert check_is_request("请解释Python中的with语句。") is None
    assert check_is_request("上下文管理器为什么能自动释放资源") is None
    assert check_is_request("这是一个关于上下文管理器的陈述。")[0] == "not_a_request"


def test_instruction_that_copies_its_seed_is_caught():
    copied = "The with statement is used to wrap the execution of a block with methods defined by a context manager."
    reason, detail = check_copies_seed(copied, SEED)
    assert reason == "copies_seed" and "%" in detail


def test_instruction_that_reuses_a_few_words_is_not_a_copy():
    assert check_copies_seed("Write a context manager that times the execution of a block.", SEED) is None


SILK_ROAD = (
    "丝绸之路是古代连接中国与中亚、西亚和欧洲的陆上贸易通道。西汉时，张骞两次出使西域，打通了这条道路。"
    "商人们沿着它运送丝绸、瓷器和茶叶，又把葡萄、核桃和良马带回中原。除了商品，佛教、造纸术和各种艺术也通过丝绸之路传播。"
    "它不仅是一条商路，也是东西方文化交流的重要纽带。"
)


def test_instruction_that_pastes_its_seed_passage_is_caught():
    # Synthesized by the quickstart's 0.5B: the task, then most of the passage (its 6-word share
    # alone stays under the 0.8 bar because of the sentences around it); the answer copied it back.
    pasted = (
        "写一篇关于丝绸之路的旅行指南：丝绸之路是古代连接中国与中亚、西亚和欧洲的陆上贸易通道。西汉时，张骞两次出使西域，"
        "打通了这条道路。商人们沿着它运送丝绸、瓷器和茶叶，又把葡萄、核桃和良马带回中原。除了商品，佛教、造纸术和各种艺术也"
        "通过丝绸之路传播。您可以通过阅读这个指南来了解丝绸之路的商业活动和文化文化特色。"
    )
    reason, detail = check_copies_seed(pasted, SILK_ROAD)
    assert reason == "copies_seed" and "in a row" in detail
    english = "Summarise this: " + SEED + " Then give three examples of context managers in the standard library and explain each."
    assert check_copies_seed(english, SEED)[0] == "copies_seed"


def test_instruction_that_names_a_phrase_of_its_seed_is_not_a_copy():
    assert check_copies_seed("丝绸之路为什么也是东西方文化交流的重要纽带？请举出两个例子。", SILK_ROAD) is None
    # A debug task quotes the code it is about: fenced code does not count as pasted prose.
    code_seed = "def mean(values):\n    total = 0\n    for value in values:\n        total += value\n    return total / len(values)\n"
    debug = f"Why does this function fail on an empty list, and how would you fix it?\n```python\n{code_seed}```"
    assert check_copies_seed(debug, code_seed, max_overlap=1.0) is None


def test_evolution_that_adds_requirements_passes():
    parent = "Explain the with statement."
    evolved = "Explain the with statement in Python, and show how a custom context manager closes a file even when an exception is raised."
    assert check_evolution(evolved, parent) is None


def test_evolution_failures_have_named_reasons():
    parent = "Explain the with statement in Python and when to use it."
    assert check_evolution("Explain the with statement in Python, and when to use it!", parent)[0] == "no_information_gain"
    assert check_evolution("I'm sorry, but I cannot help with that request.", parent)[0] == "refusal"
    assert check_evolution("Rewritten instruction: explain the with statement deeply and its protocol methods", parent)[0] == "template_leak"
    assert check_evolution("Explain it.", parent)[0] == "too_short"


def test_han_characters_count_as_words_for_unsegmented_text():
    assert words("上下文 manager") == ["上", "下", "文", "manager"]
    assert is_mostly_chinese("请解释上下文管理器") and not is_mostly_chinese("Explain the context manager")


def test_a_few_words_are_too_short_to_be_a_request():
    assert check_is_request("list of objects")[0] == "too_short"
    assert check_is_request("请解释")[0] == "too_short"


def test_only_the_first_word_opens_a_request():
    assert check_is_request("The inheritance list gives a list of base classes")[0] == "not_a_request"
    assert check_is_request("You can't just do that")[0] == "not_a_request"
    assert check_is_request("Please list the base classes of a Python class") is None


def test_evolution_that_repeats_the_rewriting_prompt_is_a_template_leak():
    prompt = "Rewrite the instruction so it is clearer and more informative: add the context a reader would need, say exactly what is asked and what form the answer should take."
    leaked = "Add the context a reader would need, say exactly what is asked and what form the answer should take."
    assert check_evolution(leaked, "Explain list comprehensions.", template_text=prompt)[0] == "template_leak"
    honest = "Explain Python list comprehensions with two examples, and say when a plain loop reads better."
    assert check_evolution(honest, "Explain list comprehensions.", template_text=prompt) is None


def test_a_prompt_sentence_inside_a_real_question_is_a_leak():
    # Kept by the share rule before: a real question with the rewriting prompt's sentence appended.
    prompt = (
        "Make this instruction ask for a deeper understanding of the same subject: the why and the how, trade-offs, or underlying principles. "
        "Add at most 30 words."
    )
    parent = "How does the nonlocal statement affect nested functions, and how does it differ from global?"
    evolved = parent + " Make this instruction ask for a deeper understanding of the same subject"
    reason, detail = check_evolution(evolved, parent, template_text=prompt)
    assert reason == RejectReason.TEMPLATE_LEAK and "5 words in a row" in detail
    # Kept by the 8-word rule: the tail of the deepen prompt appended to a code task.
    point = "Implement a class named Point whose method returns the distance to another point."
    reason, detail = check_evolution(point[:-1] + ", with trade-offs, or underlying principles.", point, template_text=prompt)
    assert reason == RejectReason.TEMPLATE_LEAK and "trade offs or underlying principles" in detail
    # Words the parent already had are the parent's to keep, even where the prompt has them too.
    assert check_evolution(parent + " Why was nonlocal added in Python 3, and what did code do before?", parent, template_text=prompt + " " + parent) is None
    zh_prompt = "把这条指令改写成要求更深入理解同一主题的问题：追问原因和机制、利弊权衡或背后的原理。"
    leaked = "二分查找为什么要求数据有序？把这条指令改写成要求更深入理解同一主题的问题"
    assert check_echoes_prompt(leaked, zh_prompt)[0] == RejectReason.TEMPLATE_LEAK
    assert check_echoes_prompt("二分查找为什么要求数据有序？请说明背后的原理和利弊权衡。", zh_prompt) is None


def test_an_output_of_the_prompts_own_words_is_a_leak_but_quoting_the_document_is_not():
    prompt = "Read the document, then write 3 different instructions about its subject.\nDocument:\nThe with statement wraps a block in a context manager."
    assert check_echoes_prompt("Write 3 different instructions about its subject", prompt, quoted_text="")[0] == RejectReason.TEMPLATE_LEAK
    quoting = "Explain how the with statement wraps a block in a context manager"
    assert check_echoes_prompt(quoting, prompt, quoted_text="The with statement wraps a block in a context manager.") is None
    assert check_echoes_prompt("请用中文写每一条指令", "用中文写每一条指令（Write every instruction in Chinese）")[0] == RejectReason.TEMPLATE_LEAK


def test_a_leading_task_type_label_is_removed():
    assert strip_type_label("factual: What is 2 + 2?") == "What is 2 + 2?"
    assert strip_type_label("**Math**: Solve x + 1 = 3.") == "Solve x + 1 = 3."
    assert strip_type_label("Explain code review: what to look for.") == "Explain code review: what to look for."
    # What the quickstart's 0.5B model wrote before its Chinese questions, and small models' "Q:".
    assert strip_type_label("问：水循环对全球气候的影响是什么？") == "水循环对全球气候的影响是什么？"
    assert strip_type_label("Question: Why is the sky blue?") == "Why is the sky blue?"
    assert strip_type_label("Q: Why is the sky blue?") == "Why is the sky blue?"
    assert strip_type_label("Quantum states: how are they measured?") == "Quantum states: how are they measured?"


def test_an_instruction_cut_off_mid_sentence_is_incomplete():
    # Seen in the quickstart with Qwen2.5-Coder-0.5B: each passed as a request before.
    for cut in ("What is the difference between", "What is the system-defined name, informally known as"):
        reason, detail = check_is_request(cut)
        assert reason == RejectReason.INCOMPLETE and "cut off after" in detail
    reason, detail = check_is_request("请比较二分查找和线性查找的")
    assert reason == RejectReason.INCOMPLETE and "的" in detail
    # Finished ones pass, whatever their last word.
    assert check_is_request("What is the difference between a list and a tuple?") is None
    assert check_is_request("Explain what the name __main__ is used for") is None
    assert check_is_request("Compare a Python list with a tuple and") == (RejectReason.INCOMPLETE, "cut off after 'and'")
    assert check_is_request("请比较二分查找和线性查找的优缺点") is None


def test_instructions_pointing_at_an_unseen_document_are_not_self_contained():
    assert check_self_contained("What is the main idea of this document?")[0] == RejectReason.NOT_SELF_CONTAINED
    assert check_self_contained("本文的主要内容是什么？")[0] == RejectReason.NOT_SELF_CONTAINED
    assert check_self_contained("What does the following code print?")[0] == RejectReason.NOT_SELF_CONTAINED
    assert check_self_contained("What does the following code print?\n\nprint(sum(range(4)))") is None
    assert check_self_contained("What does the following code print: `print(2 ** 3)`?") is None
    assert check_self_contained("Explain how a text editor stores undo history.") is None
    # Code the reader is never shown, as the quickstart's model wrote it.
    assert check_self_contained("Write a test that uses the implemented function and explanation.")[0] == RejectReason.NOT_SELF_CONTAINED
    assert check_self_contained("Find the bug in a short snippet you include that does not specify a class.")[0] == RejectReason.NOT_SELF_CONTAINED
    assert check_self_contained("Find the bug in this snippet:\n\nfor i in range(3) print(i)") is None
    assert check_self_contained("Write a function that reverses a linked list.") is None
    assert check_self_contained("请根据以下任务类型，编写一个新的对话示例。该对话示例应该包含以下内容：")[0] == RejectReason.NOT_SELF_CONTAINED
    assert check_self_contained("Write a short story that includes the following:")[0] == RejectReason.NOT_SELF_CONTAINED


@pytest.mark.parametrize(
    "instruction",
    [
        # The quickstart's 0.5B (2026-12-07 runs): "the function" that nothing shows or names.
        "Evaluate the return value of the function",
        "Please provide the return value of the function. For example, if you provided the string 'hello', the response might be 'hello'.",
        "Explain why the code raises an error.",
    ],
)
def test_a_definite_reference_to_code_never_shown_is_not_self_contained(instruction):
    reason, detail = check_self_contained(instruction)
    assert reason == RejectReason.NOT_SELF_CONTAINED and "never shows or names" in detail


@pytest.mark.parametrize(
    "instruction",
    [
        "How does the class attribute in Python define variables?",
        "Write a function that reverses a list, then test the function on an empty list.",
        "Write a Python function that sorts a list and explain the algorithm it uses.",
        "What does the function `zip` return when its inputs differ in length?",
        "Explain the code that Python runs when a module is imported for the first time.",
        "What is the return value of the function print()?",
        "Explain the function's role in Python's data model.",
    ],
)
def test_a_definite_reference_that_is_introduced_or_named_passes(instruction):
    assert check_self_contained(instruction) is None


def test_the_language_asked_for_is_the_language_written():
    assert check_language("请解释水循环中的蒸发。", "zh") is None
    assert check_language("Explain evaporation in the water cycle.", "zh")[0] == RejectReason.LANG
    assert check_language("请解释水循环中的蒸发。", "en")[0] == RejectReason.LANG
    assert check_language("Explain the `with` statement.", "en") is None


def test_a_type_the_instruction_cannot_be_becomes_open():
    assert plausible_task_type("How does garbage collection work?", "math") == "open"
    assert plausible_task_type("How many seconds are in 3 hours?", "math") == "math"
    assert plausible_task_type("一共有多少个苹果？", "math") == "math"
    assert plausible_task_type("Which keyword defines a function?", "choice") == "open"
    assert plausible_task_type("Which keyword defines a function? (A) def (B) fun (C) lambda (D) func", "choice") == "choice"
    assert plausible_task_type("What does len() return?", "factual") == "factual"


# Issue #30: instructions the quickstart kept (Qwen2.5-Coder-0.5B, two runs) that no reader can
# use, each caught, beside realistic instructions of the same shape that must pass.


def test_a_reference_to_an_unseen_context_or_to_the_instruction_itself_is_caught():
    for unseen in (
        "What is the purpose of the 'shift_expr' operator in this context?",
        "请直接发送这条指令。",
        "Explain the three cases mentioned above with an example each.",
        "在这个上下文中，yield 的作用是什么？",
        "Why does the program exist in this file?",
        "Write a Python script that squares a number. Use the given instructions as well as the user's request.",
    ):
        assert check_self_contained(unseen)[0] == RejectReason.NOT_SELF_CONTAINED, unseen
    for named in (
        "In the context of asyncio, what is an event loop?",
        "How do I change the precision of the current context in the decimal module?",
        "Explain how a context manager releases a lock.",
        "请解释Python中上下文管理器的作用。",
    ):
        assert check_self_contained(named) is None, named


def test_the_same_functionality_as_nothing_named_is_not_self_contained():
    reason, detail = check_self_contained("Implement the same functionality in a similar function.")
    assert reason == RejectReason.NOT_SELF_CONTAINED and "the same functionality" in detail
    assert check_self_contained("Write a function with the same behaviour as zip() for two lists.") is None
    assert check_self_contained("Write a function similar to the built-in sorted() that sorts in place.") is None


def test_a_rewrite_cut_off_after_a_finished_sentence_is_incomplete():
    cut = "Implement a function that registers a handler for a signal if the handler is not already implemented. The function"
    assert check_is_request(cut) == (RejectReason.INCOMPLETE, "cut off after a finished sentence: 'The function'")
    assert check_is_request("解释二分查找的时间复杂度。该函数")[0] == RejectReason.INCOMPLETE
    # An imperative after a sentence, an abbreviation, a request in Chinese: finished.
    assert check_is_request("Write a function that adds two numbers. Include tests") is None
    assert check_is_request("List three sorting algorithms, e.g. Quicksort") is None
    assert check_is_request("解释二分查找的原理。要求给出例子") is None


def test_an_instruction_that_states_its_own_answer_is_caught():
    reason, detail = check_answers_itself("计算公式中的已知变量是什么？已知变量是本金（P）、年利率（r）、期数（n）。")
    assert reason == RejectReason.CONTAINS_ANSWER and "本金" in detail
    assert (
        check_answers_itself("What is the time complexity of binary search? The time complexity of binary search is O(log n).")[0]
        == RejectReason.CONTAINS_ANSWER
    )
    for fine in (
        "Given the array [1, 2, 3], what is the sum of the array? The array may contain negatives.",
        "How does a Python generator keep its state between calls? Explain with an example.",
        "复利和单利有什么区别？请举例说明。",
        "什么是GIL？它对多线程有什么影响？",
        "A shop sells apples at 2 dollars each. How many apples can you buy with 10 dollars? Show your work.",
        "Explain the difference between a list and a tuple.",
    ):
        assert check_answers_itself(fine) is None, fine


def test_a_term_swapped_into_the_other_language_is_a_language_fault():
    photosynthesis = "光合作用是绿色植物利用光能，把二氧化碳和水合成有机物并释放氧气的过程。"
    reason, detail = check_language("illumination的太阳能转换为化学能的必要性是什么？", "zh", context=photosynthesis)
    assert reason == RejectReason.LANG and "illumination" in detail
    assert check_language("What does a list comprehension return, and how is it different from a 生成器?", "en")[0] == RejectReason.LANG
    # Names, identifiers, units, code rows and words the source itself uses are no swap.
    assert check_language("用Python实现二分查找，时间复杂度是O(log n)吗？", "zh", context="二分查找") is None
    assert check_language("用numpy实现二分查找。", "zh", context="二分查找", code=True) is None
    assert check_language("本金1000元，年利率5%，3年后的本息和是多少？", "zh", context="复利") is None
    assert check_language("解释 `append` 和 `extend` 的区别。", "zh") is None
    assert check_language("请解释photosynthesis在光合作用中的含义。", "zh", context="光合作用 (photosynthesis)") is None


def test_a_reply_in_the_assistants_voice_is_no_request():
    rewrite = "How do I get this task done? Please provide the specific task you want assistance with, and I'll do my best to help you."
    reason, detail = check_is_request(rewrite)
    assert reason == RejectReason.NOT_A_REQUEST and "assistant" in detail
    assert check_is_request("如何使用二分查找？希望对你有帮助。")[0] == RejectReason.NOT_A_REQUEST
    assert check_is_request("How do I ask a colleague for help with a code review?") is None
    assert check_is_request("Please provide the specific value you would like the function to return.")[0] == RejectReason.NOT_A_REQUEST
    assert check_is_request("Please provide your answer as a table with two columns.") is None


@pytest.mark.parametrize(
    "instruction",
    [
        # A concretize rewrite of the quickstart (2026-12-08), answered in kind.
        "根据这两个笼统的说法，你是否可以更改为一个特定的例子？例如，假设复利的计算过程包括本金、年利率和期数。",
        "Rewrite these two general statements as one concrete example.",
        "上述观点是否正确？",
        # Rewrites that talk to the rewriter (the fresh-clone quickstart, 2026-12-08).
        "请提供一个具体的例子，以便我更好地理解你的改写。",
        "详细描述复利的具体变化方式，再写请求，以便帮助助手更好地理解和使用。",
        "请告诉我具体要问的点，以便我更好地回答。例如，水的蒸发速度主要取决于什么因素？",
        "请提供具体的要问的点，比如复利的计算方法、复利的稳定性、复利的未来价值等。",
        "How do I add class attributes in a method? Please provide the exact point you changed; then write the instruction in English.",
        # A debug instruction of the quickstart (2026-12-08) about code it never shows.
        "评价：此代码实现二分查找的正确性，但在某些情况下可能会导致查找失败。请找出并修复其中的错误。",
    ],
)
def test_statements_the_reader_never_sees_are_not_self_contained(instruction):
    reason, detail = check_self_contained(instruction)
    assert reason == RejectReason.NOT_SELF_CONTAINED and "never sees" in detail


@pytest.mark.parametrize(
    "instruction",
    [
        "What do these statements print: `print(1)` and `print(2)`?",
        "比较这两个观点：“A”和“B”。",
        "解释光合作用的两个阶段。",
        "编写一个Python函数，实现二分查找算法，并分析该函数的时间复杂度。",
    ],
)
def test_statements_shown_after_they_are_announced_pass(instruction):
    assert check_self_contained(instruction) is None


@pytest.mark.parametrize(
    "instruction",
    [
        "Calculate the square of a number using a class method.",
        "计算二分查找的查找范围，包括左半部分和右半部分。",
        "计算光合作用带来的氧气和二氧化碳平衡的重要性。",
    ],
)
def test_a_calculation_with_no_quantity_is_not_self_contained(instruction):
    assert classify_task_type(instruction) == "calculate"
    reason, detail = check_has_quantities(instruction, "calculate")
    assert reason == RejectReason.NOT_SELF_CONTAINED and "no quantity" in detail


@pytest.mark.parametrize(
    "instruction",
    [
        "Calculate 17 times 23.",
        "Calculate the interest on three thousand dollars at five percent.",
        "本金一万元，年利率百分之五，按年复利计算两年后的本息合计。",
        "请提供一个具体的复利计算例子，例如2023年10月20日在北京的现金利息计算步骤。",
    ],
)
def test_a_calculation_with_its_quantities_passes(instruction):
    assert check_has_quantities(instruction, "calculate") is None


def test_only_calculations_need_quantities():
    assert check_has_quantities("Explain how a class method differs from a static method.", "explain") is None


@pytest.mark.parametrize(
    "instruction",
    [
        # synthesize's own debug openings, completed with code (run qb, 2026-12-08: both rejected).
        "找出并修复下面Python代码中的错误：\n\ndef binary_search(arr, target):\n    left, right = 0, len(arr) - 1\n    return left",
        "This Python function has a bug. Fix it:\n\ndef square_list(numbers):\n    result = []\n    return result",
    ],
)
def test_a_request_followed_by_the_code_it_quotes_is_a_request(instruction):
    assert check_is_request(instruction) is None


@pytest.mark.parametrize("instruction", ["If the input string is empty, return 'empty string'.", "已知温度升高会导致降水", "The sky is blue. It is nice."])
def test_statements_are_still_no_requests(instruction):
    assert check_is_request(instruction)[0] == RejectReason.NOT_A_REQUEST


@pytest.mark.parametrize(
    "instruction",
    [
        # Run qc (2026-12-08) kept both: a format placeholder and prose where the code should be.
        "Find and fix the bug in this Python code:\n%s",
        "This Python function has a bug. Fix it:\n\tThis function subtracts the second argument from the first one.\n\tIt should be subtracting the "
        "second argument from the third one.",
        "找出并修复下面Python代码中的错误：\n这段程序应该返回列表中最大的数，但是它返回了最小的数。",
    ],
)
def test_announced_code_that_is_no_code_is_not_self_contained(instruction):
    reason, detail = check_self_contained(instruction)
    assert reason is RejectReason.NOT_SELF_CONTAINED and "no code" in detail


@pytest.mark.parametrize(
    "instruction",
    [
        "找出并修复下面Python代码中的错误：\n\ndef binary_search(arr, target):\n    left, right = 0, len(arr) - 1\n    return left",
        "This Python function has a bug. Fix it:\n\ndef square_list(numbers):\n    result = []\n    return result",
        "Explain what the following code prints:\nnumbers = [1, 2, 3]",
        "What does this function return? `sorted(words, key=len)`",
    ],
)
def test_announced_code_that_follows_passes(instruction):
    assert check_self_contained(instruction) is None


@pytest.mark.parametrize(
    ("instruction", "words_in_detail"),
    [
        # Run qd (2026-12-08) shipped all five.
        ("Implement a Python class that calculates the factorial of a number using the `__init__` method. Keep the answer under.", "no length"),
        ("如何利用水循环调节全球气候，评价其技术应用效果。请把回答控制在您的要求内。", "no length"),
        ("怎样才能打通这条道路？", "这条道路"),
        ("Evaluate the factorial of 5 using the defined function.", "the defined function"),
        ("请提供一个笼统的说法，比如使用 Python 的 `statistics` 模块来计算平均数。", "笼统的说法"),
    ],
)
def test_limits_without_a_size_and_pointers_into_the_passage_are_rejected(instruction, words_in_detail):
    problem = check_is_request(instruction) or check_self_contained(instruction)
    assert problem is not None and words_in_detail in problem[1]


@pytest.mark.parametrize(
    "instruction",
    [
        "Explain decorators. Keep the answer under 100 words.",
        "Explain decorators. Keep your answer under three sentences.",
        "解释复利。请把回答控制在200字以内。",
        "解释复利。请把回答控制在三句话以内。",
        "丝绸之路是什么？这条道路连接了哪些地区？",
        "编写一个Python函数，计算列表的平均值，并分析这个函数的时间复杂度。",
    ],
)
def test_sized_limits_and_introduced_demonstratives_pass(instruction):
    assert (check_is_request(instruction) or check_self_contained(instruction)) is None


@pytest.mark.parametrize(
    ("instruction", "reason"),
    [
        # Run qf (2026-12-08) shipped all four.
        (
            "Implement a Python class that ... Finally, check your result by implementing a Python class that checks for the presence of a specific "
            "Python function or module.",
            RejectReason.INCOMPLETE,
        ),
        ("请提供长方形和正方形的周长和面积，或者在需要其他信息时告诉我，例如", RejectReason.INCOMPLETE),
        ("请问你还需要什么吗？比如具体是如何运输丝绸、瓷器和茶叶，还是如何带回中原？", RejectReason.NOT_SELF_CONTAINED),
        ("请提供长方形和正方形的周长和面积，然后告诉我要问的点。", RejectReason.NOT_SELF_CONTAINED),
    ],
)
def test_gaps_and_questions_back_to_the_writer_are_rejected(instruction, reason):
    problem = check_is_request(instruction) or check_self_contained(instruction)
    assert problem is not None and problem[0] is reason


@pytest.mark.parametrize(
    "instruction", ["What does print(1, ...) show?", "Explain what `x[...]` selects in a NumPy array.", "Why is the sky blue... or is it?"]
)
def test_an_ellipsis_that_is_code_or_a_pause_passes(instruction):
    assert check_is_request(instruction) is None


def test_a_chinese_statement_with_a_verb_mid_clause_is_no_request():
    # A fresh-clone quickstart's shard row (2026-12-08): it says what one can do, and asks nothing.
    reason, _ = check_is_request("在Python中，可以使用`sum`函数计算列表中元素的总和。")
    assert reason is RejectReason.NOT_A_REQUEST
    assert check_is_request("计算列表中元素的总和，并说明sum函数的用法。") is None
    assert check_is_request("给定列表[1, 2, 3]，计算其中元素的总和。") is None


@pytest.mark.parametrize(
    ("numbered", "expected"),
    [
        ("1. 如何进行光合作用，例如在叶片细胞中进行？", "如何进行光合作用，例如在叶片细胞中进行？"),
        ("2) Explain why lists are mutable.", "Explain why lists are mutable."),
    ],
)
def test_a_copied_list_number_is_removed(numbered, expected):
    assert strip_type_label(numbered) == expected
    assert strip_type_label("1.5 hours at 60 km/h: how far is that?") == "1.5 hours at 60 km/h: how far is that?"
