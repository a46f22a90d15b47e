"""`synthmix plan RUN_DIR`: what a target costs, projected from a finished pilot run.

synthmix plan RUN_DIR --target math=2e9 --target code=500pairs [--hardware h100] [--model embedded=Qwen/Qwen2.5-Coder-7B-Instruct] [--price 3] [--json]
synthmix plan RUN_DIR --seeds 12                      (the cost of a run over 12 seed chunks)

The arithmetic and its assumptions are `synthmix.pipeline.inspection.plan`'s; this module only reads the
arguments and prints.
"""

from __future__ import annotations

import argparse
import json
import sys

from synthmix.pipeline.cli.arguments import add_json_flag, add_run_dir
from synthmix.pipeline.inspection.run_copy import local_view


def add_plan_parser(commands) -> None:
    plan = commands.add_parser("plan", help="project a finished (pilot) run to kept-token targets: seeds, generated tokens, engine hours, cost")
    add_run_dir(plan, help="a finished run, e.g. one made with `synthmix run JOB --pilot N`")
    amounts = plan.add_mutually_exclusive_group(required=True)
    amounts.add_argument(
        "--target", action="append", metavar="DOMAIN=AMOUNT", help="kept tokens (math=2e9) or pairs (code=500pairs) of a domain, or all=...; repeatable"
    )
    amounts.add_argument("--seeds", type=int, metavar="N", help="instead of targets: the cost of a run over N seed chunks")
    plan.add_argument(
        "--hardware", metavar="PROFILE", help="a shipped profile (see pipeline/inspection/hardware) or a YAML file; default: the pilot's own engine seconds"
    )
    plan.add_argument("--model", action="append", default=[], metavar="NAME=MODEL", help="price the job's model NAME as the profile's MODEL (repeatable)")
    plan.add_argument("--price", type=float, metavar="PER_HOUR", help="price per engine hour (overrides the profile's)")
    add_json_flag(plan)
    plan.set_defaults(handler=command_plan)


def command_plan(args: argparse.Namespace) -> int:
    from synthmix.pipeline.inspection.plan import PlanError, load_profile, measure_pilot, parse_target, project, render_plan
    from synthmix.pipeline.inspection.run_contents import RunInspectionError

    try:
        model_map = dict(_pair(text) for text in args.model)
        targets = [parse_target(text) for text in args.target] if args.target else None
        profile = load_profile(args.hardware) if args.hardware else None
        plan = project(
            measure_pilot(local_view(args.run_dir)), targets=targets, seed_chunks=args.seeds, profile=profile, model_map=model_map, price_per_hour=args.price
        )
    except (PlanError, RunInspectionError) as error:
        print(f"synthmix: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(plan, indent=2) if args.json else render_plan(plan))
    return 0


def _pair(text: str) -> tuple[str, str]:
    from synthmix.pipeline.inspection.plan import PlanError

    name, sep, model = text.partition("=")
    if not sep or not name or not model:
        raise PlanError(f"--model {text!r} is not NAME=MODEL; write e.g. --model embedded=Qwen/Qwen2.5-Coder-7B-Instruct")
    return name, model
