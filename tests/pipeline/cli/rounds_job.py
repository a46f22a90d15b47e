"""A small recipe with targets on the fake engine, run in rounds; also its own process so a test
can kill it mid-round:

    python -m tests.pipeline.cli.rounds_job RUN_DIR CORPUS

Each seed chunk is "Topic N: ...". The fake engine writes one math instruction per topic and a
code one for even topics (so code yields half a pair per seed, math one), and answers each
instruction from its shipment or order number alone: two chunks of the same topic make the same
pairs, near-duplicates whichever rounds they land in.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sys
from pathlib import Path

from synthmix.pipeline.config import parse_job
from synthmix.pipeline.llm import engine_pool
from tests.pipeline.fake_chat_server import schema_reply
from tests.pipeline.fake_engine import FakeBackend

WORDS = "amber basalt cedar delta ember fjord granite harbor indigo juniper kelp lagoon marble nectar onyx prairie quartz river".split()
TOPIC = re.compile(r"Topic (\d+):")
NUMBER = re.compile(r"(?:shipment number|pack_order_)(\d+)")


def _words(number: int, count: int) -> str:
    digest = hashlib.sha256(str(number).encode()).digest()
    return " ".join(WORDS[byte % len(WORDS)] for byte in digest[:count])


def instructions_for(topic: int) -> list[str]:
    weight = topic % 9 + 2
    items = [f"Calculate the total weight of {topic + 3} crates that each weigh {weight} kilograms, for shipment number {topic}."]
    if topic % 2 == 0:
        items.append(f"Write a Python function named pack_order_{topic} that returns the total price of {topic + 5} items at {weight} dollars each.")
    return items


def answer_for(number: int) -> str:
    return (
        f"Start from the quantities the request gives for case {number}: {_words(number, 12)}. "
        f"Multiply the count by the size of each unit, then check the product against a rough estimate of case {number}. "
        f"The words {_words(number + 1000, 10)} summarise the method. The final answer is \\boxed{{{number * 7 + 3}}}."
    )


def rounds_reply(body: dict) -> str:
    """Synthesize's instructions from the seed's topic; an answer from the instruction's number."""
    text = "\n".join(message["content"] for message in body["messages"])
    schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema") or {}
    topic = TOPIC.search(text)
    if "instructions" in schema.get("properties", {}) and topic:
        return json.dumps({"instructions": instructions_for(int(topic.group(1)))})
    number = NUMBER.search(text)
    if not schema and number:
        return answer_for(int(number.group(1)))
    return schema_reply(body)


def fake_backend(answer_after_s: float = 0.0):
    """The engine factory to put in engine_pool.BACKEND_FACTORY."""
    return functools.partial(FakeBackend, reply=rounds_reply, answer_after_s=answer_after_s)


def write_topics(path: Path, topics: list[int]) -> None:
    """One seed document per entry (entries may repeat a topic: their chunks differ, their pairs not)."""
    lines = []
    for index, topic in enumerate(topics):
        text = f"Topic {topic}: " + " ".join(f"Section {index} line {line} describes stock of {_words(topic * 100 + line, 6)}." for line in range(6))
        lines.append(json.dumps({"text": text}))
    path.write_text("\n".join(lines) + "\n")


def make_job(run_dir: Path, corpus: Path, *, targets: dict | None = None, budget: dict | None = None, rounds: dict | None = None):
    raw = {
        "name": "rounds",
        "run_dir": str(run_dir),
        "ray": {"num_cpus": 2},
        "models": {"m": {"engine": "embedded", "batch_size": 4}},
        "stages": ["seeds", "synthesize", "answer", {"name": "dedup_samples", "kind": "dedup"}, "tokenize"],
        "seeds": {"path": str(corpus), "chunk_chars": 2000},
        "synthesize": {"model": "m", "task_mix": {"calculate": 0.5, "write_code": 0.5}, "task_fit": {}},
        "answer": {"routes": {"default": "m"}, "samples": 1},
        "dedup_samples": {"text_columns": ["instruction", "answer"]},
        "rounds": {"pilot_seeds": 4, "min_seeds": 2, "max_seeds": 8, **(rounds or {})},
    }
    if targets is not None:
        raw["targets"] = targets
    if budget is not None:
        raw["budget"] = budget
    return parse_job(raw, source="rounds_job")


TARGETS = {"math": {"pairs": 10}, "code": {"pairs": 5}}


if __name__ == "__main__":
    from synthmix.pipeline.cli.rounds import run_in_rounds
    from synthmix.stages.registry import STAGES

    engine_pool.BACKEND_FACTORY = fake_backend(answer_after_s=0.05)
    run_dir, corpus = Path(sys.argv[1]), Path(sys.argv[2])
    run_in_rounds(make_job(run_dir, corpus, targets=TARGETS), STAGES, job_dir=corpus.parent)
