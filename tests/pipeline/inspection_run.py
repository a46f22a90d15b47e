"""A small run to inspect: the real seeds stage on JSONL with bad lines, then hand-written downstream stages.

Downstream stages are written through the run store (`StageDir.commit_unit` / `commit`) the
way the runner writes them, with the columns later stages add (instruction, answer, the
critique JSON and critique_score) and the record identity every stage carries (source_id,
origin), and rejects of several reasons, so inspection is tested on every shape it
meets before those stages exist. Shards and mix.json follow DESIGN.md's schema.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from synthmix.pipeline.config import parse_job
from synthmix.pipeline.runner import run_job
from synthmix.pipeline.store import StageDir, UnitCounts
from synthmix.stages.registry import STAGES

TEXTS = [
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in the chloroplasts of plants.",
    "The derivative of a polynomial lowers each exponent by one and multiplies the term by the old exponent.",
    "A hash table maps keys to buckets with a hash function and resolves collisions by chaining or probing.",
]


@dataclass
class InspectionRun:
    run_dir: Path
    seed_id: str  # the seed chunk whose family is fully built
    instruction_id: str
    evolved_id: str
    sibling_id: str  # another instruction of the same seed, not on the evolved row's line
    critique_rejected_id: str


def row_id(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def make_inspection_run(root: Path) -> InspectionRun:
    records = [{"id": f"doc-{n}", "text": text, "domain": domain} for n, (text, domain) in enumerate(zip(TEXTS, ["science", "math", "code"]))]
    lines = [json.dumps(record).encode() for record in records]
    lines.insert(1, b'{"text": "unterminated')
    lines.append(b'{"text": "caf\xe9"}')
    (root / "corpus.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    run_dir = root / "run"
    job = parse_job({"name": "inspect", "run_dir": str(run_dir), "stages": ["seeds"], "seeds": {"path": "corpus.jsonl"}}, source="t.yaml")
    run_job(job, STAGES, job_dir=root, log=lambda line: None)
    seeds = pq.read_table(StageDir(run_dir, "seeds").part_files()).to_pylist()
    seed = next(row for row in seeds if row["domain"] == "math")

    instructions = []
    for row in seeds:
        for n in range(2):
            instructions.append(
                {
                    "id": row_id(row["id"], "instruction", str(n)),
                    "seed_id": row["id"],
                    "parent_id": row["id"],
                    **record_identity(row, records),
                    "domain": row["domain"],
                    "lang": "en",
                    "instruction": f"Question {n} about: {row['text'][:60]}",
                    "meta": json.dumps({"template": "synthesize/qa", "n": n}),
                }
            )
    bad_output = {**instructions[-1], "id": row_id("unparsed"), "instruction": None}
    _write_stage(run_dir, "synthesize", instructions, [_reject(bad_output, "parse_error", "no JSON object in output")], rows_in=len(seeds))

    first, sibling = [row for row in instructions if row["seed_id"] == seed["id"]]
    evolved = {**first, "id": row_id(first["id"], "deepen"), "parent_id": first["id"], "instruction": first["instruction"] + " Prove it."}
    others = [row for row in instructions if row["seed_id"] != seed["id"]]
    near_copies = [{**row, "id": row_id(row["id"], "copy")} for row in others[:2]]
    _write_stage(
        run_dir,
        "evolve",
        [evolved, sibling, *others],
        [_reject(copy, "near_duplicate", json.dumps({"kept_id": others[0]["id"], "jaccard": 0.9})) for copy in near_copies],
        rows_in=len(instructions) + 1,
    )

    answered = [
        {**row, "answer": f"Answer to {row['instruction'][:30]}", "critique": critique(score), "critique_score": float(score)}
        for row, score in zip([evolved, *others], [9, 8, 7, 6, 8])
    ]
    low = {**sibling, "answer": "I don't know.", "critique": critique(2), "critique_score": 2.0}
    _write_stage(run_dir, "critique", answered, [_reject(low, "critique_low", json.dumps({"score": 2.0, "threshold": 5}))], rows_in=len(answered) + 1)
    _write_shards(run_dir, answered)
    return InspectionRun(run_dir, seed["id"], first["id"], evolved["id"], sibling["id"], low["id"])


def record_identity(seed: dict, records: list[dict]) -> dict:
    """The seed row's `source_id` and `origin` as the seeds stage writes them, made up the same way
    where this checkout's seeds stage does not write them yet: every stage carries them unchanged."""
    if seed.get("source_id") is not None:
        return {"source_id": seed["source_id"], "origin": seed["origin"]}
    number = next(n for n, record in enumerate(records) if record["text"] == seed["text"])
    line = number + 1 + (number >= 1)  # the unterminated line sits at line 2
    return {"source_id": records[number]["id"], "origin": json.dumps({"file": "corpus.jsonl", "line": line, "chunk": 0})}


def critique(score: int) -> str:
    """A critique stage's JSON: rubric dimensions around the aggregate score, and a rationale."""
    scores = {"accuracy": score, "clarity": max(1, score - 1), "relevance": min(10, score + 1)}
    rationale = f"Judged {score} of 10: how well the answer addresses the question, and how clearly it is put."
    return json.dumps({"rationale": rationale, "scores": scores, "aggregate": score})


def _reject(row: dict, reason: str, detail: str) -> dict:
    return {**row, "reject_reason": reason, "reject_detail": detail}


def _write_stage(run_dir: Path, name: str, kept: list[dict], rejected: list[dict], rows_in: int) -> None:
    stage_dir = StageDir(run_dir, name)
    stage_dir.clear()
    counts = UnitCounts(rows_in=rows_in, rows_out=len(kept), rejected=Counter(row["reject_reason"] for row in rejected))
    counts.llm = {"embedded": Counter(requests=rows_in, prompt_tokens=40 * rows_in, generated_tokens=25 * rows_in)}
    accepted = pa.Table.from_pylist(kept)
    rejects = pa.Table.from_pylist(rejected) if rejected else pa.table({})
    stage_dir.commit_unit("0000", accepted, rejects, pa.array([row["id"] for row in kept], pa.string()), counts)
    stage_dir.commit({"stage": name, "fingerprint": "hand-written", **counts.to_json(), "wall_s": 1.5})
    # Unlisted stages are ordered by when they were written; make that order unambiguous.
    order = {"synthesize": 1, "evolve": 2, "critique": 3}[name]
    os.utime(stage_dir.path, ns=(order * 10**18, order * 10**18))


def _write_shards(run_dir: Path, rows: list[dict]) -> None:
    tokens = [list(range(5 + i)) for i in range(len(rows))]
    table = pa.table(
        {
            "input_ids": pa.array(tokens, pa.list_(pa.int32())),
            "loss_mask": pa.array([None] * len(rows), pa.list_(pa.uint8())),
            "num_tokens": pa.array([len(t) for t in tokens], pa.int32()),
            "id": [row["id"] for row in rows],
            "seed_id": [row["seed_id"] for row in rows],
            "source_id": [row["source_id"] for row in rows],
            "origin": [row["origin"] for row in rows],
            "source": ["corpus.jsonl"] * len(rows),
            "domain": [row["domain"] for row in rows],
            "synthetic": [True] * len(rows),
            "meta": [row["meta"] for row in rows],
        }
    )
    (run_dir / "shards").mkdir()
    pq.write_table(table, run_dir / "shards" / "synthetic-00000.parquet")
    by_domain = Counter()
    for row, ids in zip(rows, tokens):
        by_domain[row["domain"]] += len(ids)
    total = sum(len(t) for t in tokens)
    mix = {"tokens": total, "tokens_by_source": {"corpus.jsonl": total}, "tokens_by_domain": dict(by_domain), "shards": [{"path": "synthetic-00000.parquet"}]}
    (run_dir / "shards" / "mix.json").write_text(json.dumps(mix))
