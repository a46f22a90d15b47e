import pytest

from synthmix.quality.task_types import TASK_TYPES, classify_task_type

# Instructions of the kinds the quickstart's model writes and the mix asks for, in both
# languages, each with the type a reader would give it.
LABELLED = [
    ("explain", "What is a decorator in Python?"),
    ("explain", "Explain how Python's garbage collector finds reference cycles."),
    ("explain", "What are the benefits of using a virtual environment?"),
    ("explain", "How does the with statement release resources?"),
    ("how_to", "How do I read a CSV file line by line in Python?"),
    ("how_to", "What are the steps to set up a virtual environment on Windows?"),
    ("write_code", "Write a Python function that returns the n-th Fibonacci number."),
    ("write_code", "Implement a context manager that times a block of code."),
    ("write_code", "Create a class named Stack with push and pop methods."),
    ("debug", "Fix the bug in this code: for i in range(3) print(i)"),
    ("debug", "Why does my loop raise an IndexError when the list is empty?"),
    ("compare", "What is the difference between a list and a tuple?"),
    ("compare", "Compare threading and multiprocessing for CPU-bound work."),
    ("calculate", "Calculate the compound interest on 1000 dollars at 5% for 3 years."),
    ("calculate", "How many comparisons does binary search need for a list of 1,000,000 items?"),
    ("calculate", "What is 17 times 23?"),
    # A percentage of a number is a calculation whatever the opening (run qe, 2026-12-08).
    ("calculate", "How do I find 15% of 80?"),
    ("calculate", "find 15% of 80 and return it to the user."),
    ("calculate", "A train travels 120 km in 1.5 hours. What is its average speed?"),
    ("writing", "Write a short email inviting colleagues to a Python workshop."),
    ("writing", "Write a blog post about Python decorators for beginners."),
    ("writing", "Summarize the main ideas of the Zen of Python in three sentences."),
    ("analyze", "Discuss the impact of the GIL on multithreaded programs."),
    ("analyze", "Evaluate whether Python is a good first programming language."),
    ("factual", "Which keyword defines a function in Python?"),
    ("factual", "Who created the Python programming language?"),
    ("choice", "Which keyword defines a function? (A) def (B) fun (C) lambda (D) func"),
    ("explain", "什么是光合作用？"),
    ("explain", "水循环的主要过程是什么？"),
    ("explain", "为什么二分查找要求数据有序？"),
    ("explain", "水循环是如何进行的？"),
    ("explain", "如何理解化学反应的过程？"),
    ("how_to", "如何用Python实现二分查找？"),
    ("how_to", "怎样才能减少家庭用水量？"),
    ("how_to", "How do I implement a class that inherits from an existing class?"),
    ("how_to", "算法：如何高效地对有序数组进行二分查找？"),
    ("write_code", "编写一个Python函数，实现二分查找。"),
    ("write_code", "Write: Implement a Python function that checks whether a name is a dunder name."),
    ("debug", "找出下面代码中的错误并修复：def f(x) return x"),
    ("compare", "复利和单利有什么区别？"),
    ("compare", "比较光反应和暗反应的异同。"),
    ("calculate", "本金1000元，年利率5%，按复利计算3年后的本息和是多少？"),
    ("calculate", "在长度为1024的有序数组中，二分查找最多需要多少次比较？"),
    ("explain", "二分查找在大小为 n 的有序数组中为什么最多需要 log2(n) 次比较？"),
    ("writing", "写一篇关于丝绸之路的短文。"),
    ("writing", "请总结光合作用的两个阶段。"),
    ("analyze", "丝绸之路对东西方文化交流有什么影响？"),
    ("analyze", "分析水循环对全球气候的调节作用。"),
    ("analyze", "分析丝绸之路上一个商品的价格如何影响了沿线的贸易。"),
    ("calculate", "小明每天读二十页书，读完一本三百页的书需要多少天？"),
    ("factual", "张骞出使西域是在哪个朝代？"),
    ("factual", "丝绸之路连接了哪些地区？"),
    ("factual", "谁设计了二分查找算法？"),
    ("factual", "Which Python function would you write to reverse a list in place?"),
    ("writing", "写一段关于水循环调节气候的案例，描述如何实现该目标。"),
    ("how_to", "What steps should I take to implement abstract methods for a class?"),
    ("other", "Let's play a word game about Python keywords."),
]


@pytest.mark.parametrize(("expected", "instruction"), LABELLED)
def test_an_instruction_gets_the_type_its_words_ask_for(expected, instruction):
    assert classify_task_type(instruction) == expected


def test_the_nearer_of_code_and_prose_after_a_verb_decides():
    assert classify_task_type("Write a function that writes a summary of a log file.") == "write_code"
    assert classify_task_type("Write a summary of what a decorator function does.") == "writing"


def test_a_word_that_merely_mentions_errors_is_no_debugging_task():
    assert classify_task_type("How does Python handle exceptions raised in a finally block?") == "explain"


def test_every_type_is_listed():
    assert {expected for expected, _ in LABELLED} == set(TASK_TYPES)
