"""The argument blocks several `synthmix` commands share, each declared once.

A command adds a block at the place its own arguments put it, so its --help keeps its order;
a block several commands take as a whole (the stage selection) is a parent parser instead.
"""

from __future__ import annotations

import argparse


def add_run_dir(command: argparse.ArgumentParser, help: str | None = None) -> None:
    """RUN_DIR, a folder or an s3:// URI: kept as written (no `type=Path`, which would fold `s3://` into `s3:/`)."""
    command.add_argument("run_dir", help=help)


def add_json_flag(command: argparse.ArgumentParser) -> None:
    command.add_argument("--json", action="store_true", help="machine-readable output")


def add_dashboard_address(command: argparse.ArgumentParser) -> None:
    """The Ray Jobs API's address, which `submit` and `jobs` talk to (`run --address` is a Ray cluster's, not this)."""
    command.add_argument("--address", help="Ray dashboard of the cluster, e.g. http://HEAD:8265 (default: RAY_API_SERVER_ADDRESS)")


def stage_selection() -> argparse.ArgumentParser:
    """What `run` and `submit` share: config overrides and which stages to (re)run."""
    selection = argparse.ArgumentParser(add_help=False)
    selection.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value, e.g. dedup.threshold=0.7 (repeatable)")
    selection.add_argument("--from", dest="start", metavar="STAGE", help="rerun this stage and everything after it")
    selection.add_argument("--only", metavar="STAGE", help="rerun only this stage")
    selection.add_argument("--to", dest="stop", metavar="STAGE", help="stop after this stage")
    selection.add_argument("--force", action="store_true", help="recompute selected stages even when fresh")
    return selection
