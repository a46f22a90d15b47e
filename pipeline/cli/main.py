"""`synthmix`: run jobs, see where a run stands, prepare models.

synthmix run JOB [--set KEY=VALUE]... [--run-dir DIR] [--from S | --only S | --to S] [--force] [--address A] [--pilot N]
synthmix plan RUN_DIR --target DOMAIN=AMOUNT... | --seeds N [--hardware PROFILE] [--model NAME=PROFILE_MODEL]... [--json]
synthmix status RUN_DIR
synthmix inspect RUN_DIR [STAGE] [--sample N --seed S --where EXPR --columns A,B] [--rejects [--reason R]] [--json]
synthmix trace RUN_DIR ID [--json]
synthmix eval RUN_DIR [--json]
synthmix report RUN_DIR [-o report.html]
synthmix export RUN_DIR STAGE --format jsonl|hf [-o PATH] [--rejects]
synthmix export RUN_DIR --format hf OUT [--final] [--seed-license SOURCE=ID]...
synthmix megatron MIX_JSON OUT_DIR [--json]
synthmix submit JOB --address http://HEAD:8265 --run-dir /shared/DIR [--wait] [--set ...] [--pip P]... [--env K=V]... [--no-local-check]
synthmix jobs status|logs|stop ID --address http://HEAD:8265 [--follow]
synthmix models list|prepare [JOB]
synthmix quality train (--input PARQUET... --label-column C | --positive PATH... --negative PATH...) -o MODEL.bin
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from synthmix.pipeline.cli.arguments import add_dashboard_address, add_json_flag, add_run_dir, stage_selection
from synthmix.pipeline.cli.planning import add_plan_parser
from synthmix.pipeline.cli.quality_training import add_quality_parser
from synthmix.pipeline.cli.rounds import rounds_summary_line
from synthmix.pipeline.cli.stop_signals import stop_on_signals, stop_signal
from synthmix.pipeline.config import ConfigError, load_job
from synthmix.pipeline.graph import build_graph
from synthmix.pipeline.inputs.seed_files import SeedInputError
from synthmix.pipeline.inspection.run_copy import local_view
from synthmix.pipeline.inspection.run_status import UNDECIDED, inspection_states, recorded_job_dir, stage_statuses
from synthmix.pipeline.llm.models import ModelSpecError
from synthmix.pipeline.runner import RunDirError
from synthmix.pipeline.storage import StorageError


def _registry():
    from synthmix.stages.registry import STAGES

    return STAGES


def command_run(args: argparse.Namespace) -> int:
    from synthmix.pipeline.runner import run_job

    if args.pilot is not None:
        from synthmix.pipeline.cli.pilot import load_pilot_job

        job = load_pilot_job(args.job, args.set, args.pilot)
    else:
        job = load_job(args.job, args.set)
    if args.run_dir:
        job.run_dir = str(args.run_dir)
    if job.runs_in_rounds:
        from synthmix.pipeline.cli.rounds import run_in_rounds

        if args.start or args.only or args.stop or args.force:
            raise ConfigError(
                f"{args.job} has targets or a budget and runs in rounds (docs/targets.md): --from, --only, --to and --force do not apply; rerun it as it is to resume"
            )
        run_in_rounds(job, _registry(), job_dir=Path(args.job).resolve().parent, address=args.address)
        return 0
    run_job(
        job,
        _registry(),
        job_dir=Path(args.job).resolve().parent,
        start=args.start,
        only=args.only,
        stop=args.stop,
        force=args.force,
        address=args.address,
    )
    return 0


def command_status(args: argparse.Namespace) -> int:
    from synthmix.pipeline.inspection.funnel import group_by_reason

    run_dir = local_view(args.run_dir)
    rows = stage_statuses(run_dir, _registry())
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = f"{'stage':<22} {'state':<12} {'in':>8} {'out':>8} {'wall s':>8}  rejected"
    print(header)
    print("-" * len(header))
    for row in rows:
        rejected = ", ".join(f"{reason} {n}" for reason, n in row["rejected"].items()) or "-"
        print(f"{row['stage']:<22} {row['state']:<12} {_cell(row['rows_in']):>8} {_cell(row['rows_out']):>8} {_cell(row['wall_s']):>8}  {rejected}")
    rounds = rounds_summary_line(run_dir)
    if rounds:
        print(f"\n{rounds}")
    notes = {row["stage"]: row["why"] for row in rows if "why" in row}
    if notes:
        print(f"\n{UNDECIDED}: complete, but whether the job changed since cannot be decided on this machine:")
        for stages, reason in group_by_reason(notes):
            print(f"  {', '.join(stages)}: {reason}")
        job_dir = recorded_job_dir(run_dir)
        if not job_dir.exists():
            print(f"the job's relative paths start at {job_dir} (run.json), which this machine does not have; the counts above come from the run's manifests")
    return 0


def _cell(value) -> str:
    return "-" if value is None else str(value)


def command_models(args: argparse.Namespace) -> int:
    from synthmix.pipeline.llm.cpu_features import describe_cpu, detect_cpu, embedded_dtype, torch_capability
    from synthmix.pipeline.llm.engines import engine_for
    from synthmix.pipeline.llm.engines.embedded import EmbeddedModel

    models = load_job(args.job).models if args.job else {"embedded": EmbeddedModel()}
    if args.action == "prepare":
        for name, spec in models.items():
            prepared = engine_for(spec).prepare(name, spec)
            if prepared is not None:
                print(prepared)
        return 0
    auto = embedded_dtype("auto")
    print(f"processor: {describe_cpu(detect_cpu())}; torch dispatches to {torch_capability()}")
    print(f"embedded models with dtype auto run in {auto.dtype}: {auto.reason}")
    print()
    for name, spec in models.items():
        print(f"{name:<20} {spec.engine:<10} {engine_for(spec).describe(spec)}")
    return 0


def _errors_exit_2(*error_types):
    """A command whose own errors (`error_types`, named lazily as "module:Class") print like the
    CLI's others, with exit status 2, instead of a traceback."""

    def decorate(handler):
        def guarded(args: argparse.Namespace) -> int:
            caught = tuple(_load(name) for name in error_types)
            try:
                return handler(args)
            except caught as error:
                print(f"synthmix: error: {error}", file=sys.stderr)
                return 2

        return guarded

    return decorate


def _load(qualified: str) -> type[Exception]:
    import importlib

    module, name = qualified.split(":")
    return getattr(importlib.import_module(module), name)


# Inspection reads a run directory; the Jobs API commands talk to a cluster's head.
_inspection = _errors_exit_2("synthmix.pipeline.inspection.run_contents:RunInspectionError", "synthmix.pipeline.storage:StorageError")
_cluster_command = _errors_exit_2("synthmix.pipeline.cli.submit:SubmitError")


def _print(data, as_json: bool, render) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str) if as_json else render(data))


@_inspection
def command_inspect(args: argparse.Namespace) -> int:
    from synthmix.pipeline.inspection import terminal_view
    from synthmix.pipeline.inspection.funnel import run_funnel
    from synthmix.pipeline.inspection.generation_cost import generation_cost, render_cost
    from synthmix.pipeline.inspection.stage_profile import profile_rejects, profile_stage

    run_dir = local_view(args.run_dir)
    if args.stage is None:
        states, notes = inspection_states(run_dir, _registry())
        # The funnel's JSON carries each stage's llm entries; the text adds the cost per kept pair.
        rounds = rounds_summary_line(run_dir)
        text = lambda rows: "\n\n".join(part for part in (terminal_view.render_funnel(rows), render_cost(generation_cost(run_dir)), rounds) if part)  # noqa: E731
        _print(run_funnel(run_dir, states, notes), args.json, text)
    elif args.rejects or args.reason:
        result = profile_rejects(run_dir, args.stage, reason=args.reason, where=args.where, sample=args.sample, seed=args.seed)
        _print(result, args.json, terminal_view.render_rejects)
    else:
        only = args.columns.split(",") if args.columns else None
        result = profile_stage(run_dir, args.stage, where=args.where, sample=args.sample, seed=args.seed, only_columns=only)
        _print(result, args.json, terminal_view.render_profile)
    return 0


@_inspection
def command_trace(args: argparse.Namespace) -> int:
    from synthmix.pipeline.inspection.terminal_view import render_trace
    from synthmix.pipeline.inspection.trace import trace_row

    _print(trace_row(local_view(args.run_dir), args.id), args.json, render_trace)
    return 0


@_inspection
def command_eval(args: argparse.Namespace) -> int:
    from synthmix.pipeline.inspection.diversity import diversity_of_run
    from synthmix.pipeline.inspection.diversity_view import render_diversity
    from synthmix.pipeline.inspection.eval_view import render_eval
    from synthmix.pipeline.inspection.evaluation import evaluate_run

    run_dir = local_view(args.run_dir)
    result = {**evaluate_run(run_dir), "diversity": diversity_of_run(run_dir)}
    _print(result, args.json, lambda data: "\n\n".join(part for part in (render_eval(data), render_diversity(data["diversity"])) if part))
    return 0


@_inspection
def command_report(args: argparse.Namespace) -> int:
    from synthmix.pipeline.inspection.report import write_report

    run_dir = local_view(args.run_dir)
    states, notes = inspection_states(run_dir, _registry())
    out = write_report(run_dir, states, args.output or run_dir / "report.html", notes)
    print(f"report written to {out}")
    return 0


@_inspection
def command_export(args: argparse.Namespace) -> int:
    from synthmix.pipeline.inspection.export import export_stage
    from synthmix.pipeline.inspection.final_pairs import export_final_pairs
    from synthmix.pipeline.inspection.run_contents import RunInspectionError, stage_names

    run_dir = local_view(args.run_dir)
    # The second argument is a stage of the run (one stage's rows) or else the folder for the
    # final pairs; --final says it is the folder even where a stage has its name.
    if args.final or (args.target not in stage_names(run_dir) and not args.rejects and args.output is None):
        if args.format != "hf":
            raise RunInspectionError(
                f"'{args.target}' is no stage of {run_dir} (stages: {', '.join(stage_names(run_dir))}); "
                "to export the run's final pairs to that folder, pass --format hf"
            )
        result = export_final_pairs(run_dir, Path(args.target), seed_licences=_seed_licences(args.seed_license))
        summary = {key: result[key] for key in ("stage", "path", "rows", "rows_by_domain", "probes_left_out", "configs")}
        _print(
            summary,
            args.json,
            lambda r: f"{r['rows']} final pairs of stage {r['stage']} written to {r['path']} with README.md; configs: {', '.join(r['configs'])}",
        )
        return 0
    args.stage = args.target
    out = args.output or run_dir / "exports" / f"{args.stage}{'-rejects' if args.rejects else ''}{'.jsonl' if args.format == 'jsonl' else ''}"
    result = export_stage(run_dir, args.stage, args.format, out, rejects=args.rejects)
    _print(result, args.json, lambda r: f"{r['rows']} rows of stage {r['stage']} written to {r['path']} ({r['format']})")
    return 0


def _seed_licences(items: list[str]) -> dict[str, str]:
    from synthmix.pipeline.inspection.run_contents import RunInspectionError

    licences = {}
    for item in items:
        source, sep, licence = item.partition("=")
        if not sep or not source or not licence:
            raise RunInspectionError(f"--seed-license {item!r} must be SOURCE=ID, e.g. zh_seeds.jsonl=cc-by-sa-4.0")
        licences[source] = licence
    return licences


def command_megatron(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from synthmix.pipeline.tokens.megatron import describe_export, export_megatron

    try:
        export = export_megatron(Path(args.mix), Path(args.out_dir))
    except FileNotFoundError as error:
        print(f"synthmix: error: {error}", file=sys.stderr)
        return 2
    _print(asdict(export), args.json, lambda _: describe_export(export))
    return 0


@_cluster_command
def command_submit(args: argparse.Namespace) -> int:
    from synthmix.pipeline.cli import submit

    job = load_job(args.job, args.set)
    if not args.no_local_check:
        # Check here, before the cluster spends anything; the driver there checks again.
        try:
            checked = job.model_copy(update={"run_dir": args.run_dir or job.run_dir})  # an s3:// --run-dir stays a URI
            with checked.storage_in_effect():
                build_graph(checked, _registry(), run_dir=checked.resolved_run_dir(), job_dir=Path(args.job).resolve().parent)
        except (ConfigError, SeedInputError) as error:
            raise ConfigError(f"{error}\n(checked on this machine; if those files exist only on the cluster's storage, pass --no-local-check)") from None
    submission = submit.Submission(
        job_file=Path(args.job),
        run_dir=submit.cluster_run_dir(args.run_dir or job.run_dir, job.name),
        overrides=args.set,
        start=args.start,
        only=args.only,
        stop=args.stop,
        force=args.force,
        pip=args.pip,
        env_vars=submit.parse_env_vars(args.env),
    )
    client = submit.connect_client(args.address)
    job_id = submit.submit(client, submission)
    print(job_id, flush=True)
    print(f"submitted {args.job} as {job_id}; follow it with: synthmix jobs logs {job_id} --address {client.get_address()}", file=sys.stderr)
    if not args.wait:
        return 0
    status = submit.follow(client, job_id)
    print(f"job {job_id} {status}", file=sys.stderr)
    return submit.EXIT_STATUS.get(status, 1)


@_cluster_command
def command_jobs(args: argparse.Namespace) -> int:
    from synthmix.pipeline.cli import submit

    client = submit.connect_client(args.address)
    if args.action == "status":
        print(submit.job_status(client, args.id))
    elif args.action == "logs":
        if args.follow:
            return submit.EXIT_STATUS.get(submit.follow(client, args.id), 1)
        print(submit.job_logs(client, args.id), end="")
    else:
        stopped = submit.stop(client, args.id)
        print(f"job {args.id}: {'stop requested' if stopped else 'already finished'}; committed work is kept for a rerun")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synthmix", description="Synthetic instruction data for LLM pretraining mixes, on Ray Data.")
    commands = parser.add_subparsers(dest="command", required=True)
    selection = stage_selection()

    run = commands.add_parser("run", parents=[selection], help="run every stale stage of a job (or the ones selected)")
    run.add_argument("job", help="job YAML file, e.g. jobs/quickstart.yaml")
    run.add_argument("--run-dir", help="where the run lives: a folder or s3://bucket/prefix (default: the job's run_dir, or runs/<name>)")
    run.add_argument("--address", help="Ray cluster address (ray://HOST:10001 or HOST:6379); default RAY_ADDRESS, else an embedded Ray")
    run.add_argument("--pilot", type=int, metavar="N", help="only the first N seed chunks, in RUN_DIR-pilot-N unless --run-dir; then `synthmix plan`")
    run.set_defaults(handler=command_run)

    status = commands.add_parser("status", help="each stage of a run: fresh / stale / missing / interrupted, and its counts")
    add_run_dir(status)
    add_json_flag(status)
    status.set_defaults(handler=command_status)

    inspect = commands.add_parser("inspect", help="the funnel of a run, or one stage's schema, distributions, samples and rejects")
    add_run_dir(inspect)
    inspect.add_argument("stage", nargs="?", help="stage to describe (default: the funnel of every stage)")
    inspect.add_argument("--sample", type=int, default=3, metavar="N", help="show N sample rows (default 3)")
    inspect.add_argument("--seed", type=int, default=0, help="which sample: the same seed shows the same rows")
    inspect.add_argument("--where", metavar="EXPR", help="SQL filter, e.g. \"domain = 'math' and score < 6\"")
    inspect.add_argument("--columns", metavar="A,B", help="describe only these columns")
    inspect.add_argument("--rejects", action="store_true", help="the stage's rejected rows, counted by reason")
    inspect.add_argument("--reason", help="only rejects with this reason (implies --rejects)")
    add_json_flag(inspect)
    inspect.set_defaults(handler=command_inspect)

    trace = commands.add_parser("trace", help="one row's history: seed chunk, instructions, answers, critique, shard row")
    add_run_dir(trace)
    trace.add_argument("id", help="a row id from any stage")
    add_json_flag(trace)
    trace.set_defaults(handler=command_trace)

    evaluation = commands.add_parser("eval", help="probe accuracy per answer model and domain, whether each filter helps; diversity, task mix, evolution")
    add_run_dir(evaluation)
    add_json_flag(evaluation)
    evaluation.set_defaults(handler=command_eval)

    report = commands.add_parser("report", help="write a self-contained HTML report of the run with plots")
    add_run_dir(report)
    report.add_argument("-o", "--output", type=Path, help="HTML file to write (default: RUN_DIR/report.html)")
    report.set_defaults(handler=command_report)

    export = commands.add_parser("export", help="copy a stage's rows out as JSON Lines or a Hugging Face dataset")
    add_run_dir(export)
    export.add_argument("target", metavar="STAGE|OUT", help="a stage of the run, or the new folder for the run's final pairs (with --format hf)")
    export.add_argument("--format", choices=["jsonl", "hf"], default="jsonl", help="jsonl, or hf (a stage: datasets save_to_disk; final pairs: Parquet + card)")
    export.add_argument("-o", "--output", type=Path, help="where a stage goes (default: RUN_DIR/exports/STAGE[.jsonl])")
    export.add_argument("--final", action="store_true", help="export the final pairs to OUT even where a stage has that name")
    export.add_argument("--seed-license", action="append", default=[], metavar="SOURCE=ID", help="the licence of a seed source the card cannot know")
    export.add_argument("--rejects", action="store_true", help="export the stage's rejected rows instead")
    add_json_flag(export)
    export.set_defaults(handler=command_export)

    megatron = commands.add_parser("megatron", help="write a mix as Megatron-LM indexed datasets and one --data-args-path file per phase")
    megatron.add_argument("mix", help="the mix.json of a run (RUN_DIR/shards/mix.json)")
    megatron.add_argument("out_dir", help="folder for <source>_text_document.{bin,idx} and data-args-<phase>.txt")
    add_json_flag(megatron)
    megatron.set_defaults(handler=command_megatron)

    models = commands.add_parser("models", help="list configured models, or convert the embedded ones ahead of time")
    models.add_argument("action", choices=["list", "prepare"])
    models.add_argument("job", nargs="?", help="job file whose models to list or prepare (default: the default embedded model)")
    models.set_defaults(handler=command_models)

    submit_parser = commands.add_parser("submit", parents=[selection], help="run a job on a Ray cluster through the Ray Jobs API")
    submit_parser.add_argument("job", help="job YAML file inside this project (the project folder travels to the cluster)")
    add_dashboard_address(submit_parser)
    submit_parser.add_argument("--run-dir", help="absolute path every node reaches (shared storage); default: the job's run_dir")
    submit_parser.add_argument("--pip", action="append", default=[], metavar="PKG", help="pip requirement installed for the job (repeatable)")
    submit_parser.add_argument("--env", action="append", default=[], metavar="K=V", help="environment variable for the job (repeatable)")
    submit_parser.add_argument("--wait", action="store_true", help="stream the job's logs until it ends; exit 0 only if it succeeded")
    submit_parser.add_argument("--no-local-check", action="store_true", help="skip building the stage graph here (for jobs whose files only the cluster sees)")
    submit_parser.set_defaults(handler=command_submit)

    jobs = commands.add_parser("jobs", help="a submitted job: its status, its logs, or stop it")
    jobs.add_argument("action", choices=["status", "logs", "stop"])
    jobs.add_argument("id", help="the id `synthmix submit` printed")
    add_dashboard_address(jobs)
    jobs.add_argument("--follow", action="store_true", help="with logs: keep streaming until the job ends")
    jobs.set_defaults(handler=command_jobs)

    add_quality_parser(commands)
    add_plan_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop_on_signals()
    try:
        return args.handler(args)
    except (ConfigError, ModelSpecError, RunDirError, SeedInputError, StorageError) as error:
        print(f"synthmix: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        signum = stop_signal(interrupt)
        print(f"synthmix: interrupted ({signal.Signals(signum).name}); shutting Ray down", file=sys.stderr, flush=True)
        shut_down_ray()
        print("synthmix: stopped; committed work is kept, rerun the same command to resume", file=sys.stderr)
        return 128 + signum


def shut_down_ray() -> None:
    """Stop the Ray this process started (or leave the cluster it joined), and its processes with it."""
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
