"""One real synthmix run shared by the consumer tests: instruction/answer pairs through tokenize and mix.

The rows are Python's own documentation (pydoc topics), as instruction/answer pairs of two
sources whose answers differ in length; `tokenize` renders them with the answer-only loss mask,
so the shards carry the masks a trainer must honour. The tokenizer is a 2,000-token BPE trained
on the same text: the tiny model's embedding stays small enough to train in seconds on 2 cores.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from pydoc_data.topics import topics

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from synthmix.pipeline import contracts
from synthmix.pipeline.config import parse_job
from synthmix.pipeline.runner import run_job
from tests.pipeline.corpus import save_trained_hf_tokenizer
from tests.stages.answer_rows import REGISTRY, answer_row, write_answer_rows

# source -> paragraphs per answer: "reference" answers run about three times longer than "faq" ones.
SOURCES = {"reference": 4, "faq": 1}
PHASES = {"main": {"reference": 1, "faq": 3}, "anneal": {"reference": 3, "faq": 1}}
ROWS = 64
VOCAB_SIZE = 2000


@dataclass(frozen=True)
class InstructionMix:
    mix_path: Path
    shards: pa.Table  # every shard row, in shard order


def instruction_rows(count: int) -> list[dict]:
    """`count` instruction/answer pairs cut from the pydoc topics, alternating between the sources."""
    names = sorted(SOURCES)
    rows = []
    for i, topic in enumerate(sorted(topics)[:count]):
        source = names[i % len(names)]
        paragraphs = [part.strip() for part in topics[topic].split("\n\n") if part.strip()]
        answer = "\n\n".join(paragraphs[: SOURCES[source]])[:1500]
        row = answer_row(f"{source}-{i:03d}", f"What does the Python reference say about {topic!r}?", answer)
        rows.append({**row, contracts.SOURCE: source})
    return rows


@pytest.fixture(scope="session")
def instruction_mix(tmp_path_factory, ray_session) -> InstructionMix:
    root = tmp_path_factory.mktemp("instruction_run")
    tokenizer_dir = root / "tokenizer"
    tokenizer_dir.mkdir()
    save_trained_hf_tokenizer(tokenizer_dir)
    write_answer_rows(root / "answers.parquet", instruction_rows(ROWS))
    job = parse_job(
        {
            "name": "instruction_run",
            "run_dir": str(root / "run"),
            "stages": ["answer", "tokenize", "mix"],
            "answer": {"path": "answers.parquet"},
            "tokenize": {
                "tokenizer": {"kind": "hf", "path": str(tokenizer_dir)},
                "render": {"template": "plain", "loss_mask": True},
                "shard_tokens": 3000,
                "row_group_tokens": 1000,
            },
            "mix": {"phases": PHASES},
        },
        source="instruction_run.yaml",
    )
    run_job(job, REGISTRY, job_dir=root, log=lambda line: None)
    mix_path = root / "run" / "shards" / "mix.json"
    shards = pa.concat_tables(pq.read_table(path) for path in sorted(mix_path.parent.glob("*.parquet")))
    return InstructionMix(mix_path=mix_path, shards=shards)
