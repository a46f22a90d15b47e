"""Stage instances and post-LLM rows for the synthesis stages' parsing tests, without an engine.

`recorded/synthesis_replies.json` holds real replies of an embedded model (the one named under
`recorded`) to the stages' own prompts for the inputs in `recorded/inputs.json`, recorded by
`python -m tests.stages.record_replies`; tests feed them back through the stages'
`render_requests` and `transform`, exactly as Ray would after generation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from synthmix.pipeline import contracts
from synthmix.pipeline.config import parse_job
from synthmix.pipeline.graph import build_graph
from synthmix.stages.registry import STAGES

RECORDED = json.loads((Path(__file__).parent / "recorded" / "synthesis_replies.json").read_text(encoding="utf-8"))
INPUTS = json.loads((Path(__file__).parent / "recorded" / "inputs.json").read_text(encoding="utf-8"))


def make_stage(name: str, params: dict | None = None, tmp_path: Path = Path("/tmp/synthmix-unused")):
    stages = ["seeds", "synthesize", "evolve", "answer"]
    job = parse_job({"name": "t", "stages": stages[: stages.index(name) + 1], name: params or {}}, source="t.yaml")
    return next(node.stage for node in build_graph(job, STAGES, run_dir=tmp_path, job_dir=tmp_path) if node.name == name)


def with_replies(rendered: pa.Table, replies: list[str | None], errors: list[str | None] | None = None) -> pa.Table:
    """Rendered rows plus the columns apply_llm adds, as if the model had answered `replies`."""
    errors = errors or [None] * len(replies)
    sampling = [json.dumps({"temperature": 0.7, "seed": json.loads(s)["seed"]}) for s in rendered["sampling_params"].to_pylist()]
    added = {
        contracts.GENERATED_TEXT: pa.array(replies, pa.string()),
        contracts.LLM_ERROR: pa.array(errors, pa.string()),
        contracts.LLM_MODEL: pa.array(["embedded"] * len(replies)),
        contracts.PROMPT_TOKENS: pa.array([100] * len(replies), pa.int64()),
        contracts.GENERATED_TOKENS: pa.array([50] * len(replies), pa.int64()),
        "llm_sampling": pa.array(sampling),
    }
    for name, values in added.items():
        rendered = rendered.append_column(name, values)
    return rendered


def seed_rows(records: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "id": record["id"],
                "seed_id": record["id"],
                "parent_id": f"corpus:{i}",
                "source": "recorded",
                "domain": record.get("domain", "general"),
                "kind": record["kind"],
                "lang": record.get("lang"),
                "text": record["text"],
            }
            for i, record in enumerate(records)
        ]
    )


def instruction_rows(records: list[dict]) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "id": record["id"],
                "seed_id": f"seed-{record['id']}",
                "parent_id": f"seed-{record['id']}",
                "source": "recorded",
                "domain": record.get("domain", "general"),
                "lang": record.get("lang", "en"),
                "instruction": record["instruction"],
                "task_type": "open",
                "objective": record.get("objective", False),
                "evolution_op": "",
                "evolution_depth": 0,
                "meta": None,
            }
            for record in records
        ]
    )
