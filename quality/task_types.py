"""What kind of task an instruction asks for, read from its words, in English and Chinese.

The synthesize stage asks for a mix of task types (the job's `task_mix`); this tells which type
an instruction turned out to be, so the achieved mix can be set against the asked one, for any
set of instructions (the shards included) and whatever the model labelled them. It is a rule
list, not a model: the same text always gets the same type, and a wrong call can be traced to
a rule. The rules run in order and the first that matches decides:

- `choice`: two or more lettered options (A-D);
- `debug`: fix, debug, find the bug or error, why does it fail (修复, 调试, 找出错误);
- `factual`: a question opening on who, which, when, where (谁, 哪, 何时);
- `write_code` or `writing`: a verb of making among the first words (write, implement, create,
  编写...) and, whichever comes first after it, a thing of code (function, class, script...) or
  a piece of prose (essay, email, story...); also summarise, paraphrase, translate, and 写一段,
  写一篇 (总结, 改写, 翻译);
- `calculate`: calculate, compute, solve, arithmetic on numbers ("17 times 23"), or how many /
  how much or a quantity (total, average, speed, interest...) with a number (计算, 多少, 利息 and
  a number);
- `compare`: compare, difference between, versus, pros and cons (比较, 区别, 异同, 优缺点);
- `how_to`: how do I / how can you / steps to (如何用, 怎样才能, 步骤);
- `analyze`: analyse, evaluate, discuss, impact, implications (分析, 评价, 影响, 意义);
- `explain`: explain, describe, what is, why, how does (解释, 什么是, 为什么, 原理);
- `factual`: list, name, identify (列出, 列举), or who/which/where inside the question;
- `explain` for a Chinese question with 什么, `how_to` for one with 如何, and no other cue;
- `other`: none of these.
"""

from __future__ import annotations

import re

from synthmix.quality.instruction_checks import has_options, is_mostly_chinese

TASK_TYPES = ("explain", "how_to", "write_code", "debug", "compare", "calculate", "writing", "analyze", "factual", "choice", "other")
OTHER = "other"

_DEBUG = re.compile(
    r"(?i)\b(?:fix|debug|bugs?|what'?s\s+wrong|what\s+is\s+wrong|correct\s+the\s+(?:code|error|mistake)|find\s+(?:and\s+fix\s+)?the\s+(?:error|mistake|problem))\b"
    r"|(?i:\bwhy\s+does\b.{0,60}\b(?:fail|raise|crash|throw|error)s?\b)"
    r"|修复|调试|找出.{0,12}(?:错误|问题|bug)|(?:报错|出错)|哪里(?:错|有问题)|纠正.{0,8}(?:代码|错误)"
)
_MAKE = re.compile(r"(?i)\b(?:write|implement|create|build|develop|define|design|draft|compose|code|generate)\b|编写|实现|写出|写一|撰写|设计|创建|创作")
_CODE_THING = re.compile(
    r"(?i)\b(?:functions?|class(?:es)?|programs?|scripts?|methods?|modules?|code|algorithms?|decorators?|generators?|"
    r"api|endpoints?|quer(?:y|ies)|regex|regular\s+expressions?|unit\s+tests?|tests?|iterators?|parsers?|cli|command-line\s+tool)\b"
    r"|函数|程序|代码|一个类|脚本|算法|测试|装饰器|生成器|正则"
)
_PROSE_THING = re.compile(
    r"(?i)\b(?:essays?|stor(?:y|ies)|poems?|letters?|e-?mails?|articles?|blog|posts?|speech(?:es)?|summar(?:y|ies)|reports?|dialogues?|"
    r"outlines?|reviews?|tweets?|paragraphs?|haikus?|lyrics|proposals?|slogans?|announcements?|cover\s+letter)\b"
    r"|文章|短文|故事|诗|一封信|信件|邮件|演讲|总结|报告|对话|提纲|评论|段落|作文|广告|标语|日记"
)
_REWRITE = re.compile(
    r"(?i)^\s*(?:please\s+)?(?:summari[sz]e|paraphrase|translate|rewrite)\b|^\s*请?(?:总结|概括|改写|翻译|缩写|撰写|写一段|写一篇|写一封|写一首)"
)
# A question that opens on who, which, when or where asks for a fact, whatever verb follows
# ("谁设计了二分查找算法？" is no programming task).
_FACT_OPENING = re.compile(r"(?i)^\s*(?:who|which|when|where|in\s+which)\b|^\s*(?:谁|哪|何时|在哪)")
_COMPARE = re.compile(
    r"(?i)\b(?:compare|comparison|contrast|differences?\s+between|differ|versus|vs\.?|distinguish|pros\s+and\s+cons|"
    r"advantages\s+and\s+disadvantages|similarities)\b"
    r"|(?<!次)比较|对比|区别|异同|不同之处|有何不同|有什么不同|优缺点|优劣"
)
_CALCULATE = re.compile(r"(?i)\b(?:calculate|compute|solve)\b|^请?计算|计算出|计算一下|求出|求解")
_HOW_MANY = re.compile(r"(?i)\bhow\s+(?:many|much|long|far)\b|多少|几个|几次|多久|多远")
# A number: digits, or Chinese numerals that count something ("三十", "三年"), not the "一" of "一个".
_NUMBER = re.compile(r"\d|[零一二两三四五六七八九十百千万亿]{2,}|[一二两三四五六七八九十百千万][年天元米次倍件岁%％]")
# A quantity to work out, in a text with a number: "A train travels 120 km in 1.5 hours. What is
# its average speed?"
_QUANTITY = re.compile(
    r"(?i)\b(?:total|average|mean|sum|product|cost|price|speed|distance|area|volume|perimeter|probability|percentage|interest|profit|remainder)\b"
    r"|总共|一共|平均|速度|距离|面积|体积|利息|本息|概率|利润|余数|总价|价格"
)
# Also a percentage of a number: "How do I find 15% of 80?" (run qe typed it how_to and its
# rewrite "find 15% of 80 and return it to the user." other, so no vote saw the answer "42").
_ARITHMETIC = re.compile(
    r"(?i)\d\s*(?:[-+*/×÷^=]|times|plus|minus|divided\s+by|multiplied\s+by|乘以?|除以|加上?|减去?)\s*\d|\d\s*%\s*of\s+\$?\d|\d\s*的\s*\d+(?:\.\d+)?\s*[%％]"
)
_HOW_TO = re.compile(
    r"(?i)^\s*(?:please\s+)?how\s+(?:do|can|could|would|should|might)\s+(?:i|you|we|one)\b|\bhow\s+to\b|\bsteps?\s+(?:to|for)\b|\bwhat\s+steps\b|"
    r"\bstep[-\s]by[-\s]step\b|\bwalk\s+me\s+through\b|\bshow\s+me\s+how\b"
    r"|(?:如何|怎么|怎样)(?:才能|可以|能|用|使用|利用|编写|设置|安装|配置|创建|读取|写|提高|避免|防止|处理|选择|判断|制作|保存|做|在)|步骤|教程|指南"
)
_ANALYZE = re.compile(
    r"(?i)\b(?:analy[sz]e|analysis|evaluate|assess|discuss|critique|argue|justify|implications?|impacts?|consequences?|significance|to\s+what\s+extent|what\s+if)\b"
    r"|分析|评价|评估|讨论|影响|意义|论述"
)
_EXPLAIN = re.compile(
    r"(?i)^\s*(?:please\s+)?(?:explain|describe|define|clarify|illustrate|tell\s+me\s+about|what\s+(?:is|are|does|do)|why|how\s+(?:does|do|is|are|did|was|were))\b"
    r"|(?i:\bexplain\b)|解释|说明|描述|什么是|是什么|为什么|介绍|阐述|原理|含义|定义|是如何|(?:如何|怎么|怎样)理解"
)
_FACTUAL = re.compile(
    r"(?i)^\s*(?:please\s+)?(?:who|when|where|which|list|name|identify|give)\b|\bin\s+which\b|\bwhat\s+(?:year|kind|type)\b"
    r"|谁|何时|哪|列出|列举|几种"
)
# A Chinese question about something, asked with 什么 and no other cue, wants it explained; one
# asked with 如何 (how) and no other cue, how to do it.
_WHAT_ZH = re.compile(r"什么")
_HOW_ZH = re.compile(r"如何|怎么|怎样")
# A verb of making counts only among the first words (three, or eight Chinese characters):
# "How do I implement a class?" asks how.
MAKE_WITHIN_WORDS = 3
MAKE_WITHIN_HAN = 8


# A label a small model puts first ("Write:", "解释类：", "算法："): not the verb of the request.
_LABEL = re.compile(r"^\s*[\w-]{1,12}\s*[:：]\s*(?=\S)")


def classify_task_type(instruction: str) -> str:
    """The task type of one instruction (one of TASK_TYPES), by the module's rules in order."""
    text = instruction.strip()
    if has_options(text):
        return "choice"
    if _DEBUG.search(text):
        return "debug"
    if _FACT_OPENING.search(text):
        return "factual"
    made = _made_thing(text)
    if made is not None:
        return made
    if _CALCULATE.search(text) or _ARITHMETIC.search(text) or ((_HOW_MANY.search(text) or _QUANTITY.search(text)) and _NUMBER.search(text)):
        return "calculate"
    if _COMPARE.search(text):
        return "compare"
    for task_type, pattern in (
        ("how_to", _HOW_TO),
        ("analyze", _ANALYZE),
        ("explain", _EXPLAIN),
        ("factual", _FACTUAL),
        ("explain", _WHAT_ZH),
        ("how_to", _HOW_ZH),
    ):
        if pattern.search(text):
            return task_type
    return OTHER


def _made_thing(text: str) -> str | None:
    """`write_code` or `writing` when a verb of making among the first words is followed by a
    thing of code or of prose (the nearer one decides), or the instruction asks to summarise,
    rewrite or translate."""
    if _REWRITE.search(text):
        return "writing"
    text = _LABEL.sub("", text, count=1)
    first_words = re.match(rf"\s*(?:\S+\s+){{0,{MAKE_WITHIN_WORDS - 1}}}\S*", text)
    head = text[:MAKE_WITHIN_HAN] if is_mostly_chinese(text) else text[: first_words.end()]
    for verb in _MAKE.finditer(head):
        window = text[verb.end() : verb.end() + 60]
        code, prose = _CODE_THING.search(window), _PROSE_THING.search(window)
        if code and (not prose or code.start() <= prose.start()):
            return "write_code"
        if prose:
            return "writing"
    return None
