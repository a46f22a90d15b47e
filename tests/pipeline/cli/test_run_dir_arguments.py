"""Every command that takes a run directory keeps an s3:// run directory as it was written.

A run lives in a folder or under an s3:// prefix, and every command reads it through
`local_view`, which tells the two apart by the URI. A run-dir argument declared with its own
`type=Path` would fold `s3://bucket/x` into `s3:/bucket/x`, a local folder, so that one command
alone would stop reading bucket runs. The commands are found in the parser: one added later
with a run dir fails here until it is listed with a command line of its own.
"""

import argparse

import pytest

from synthmix.pipeline.cli.main import build_parser

S3_RUN = "s3://bucket/runs/quickstart"

# A command line of each command that takes a run dir (as RUN_DIR or --run-dir), with what else it requires.
COMMAND_LINES = {
    "run": ["run", "jobs/quickstart.yaml", "--run-dir", S3_RUN],
    "submit": ["submit", "jobs/quickstart.yaml", "--run-dir", S3_RUN],
    "status": ["status", S3_RUN],
    "inspect": ["inspect", S3_RUN, "answer"],
    "trace": ["trace", S3_RUN, "row-id"],
    "eval": ["eval", S3_RUN],
    "report": ["report", S3_RUN],
    "export": ["export", S3_RUN, "answer"],
    "plan": ["plan", S3_RUN, "--seeds", "4"],
}


def commands_taking_a_run_dir() -> list[str]:
    commands = next(action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction))
    return sorted(name for name, command in commands.choices.items() if any(action.dest == "run_dir" for action in command._actions))


def test_every_command_taking_a_run_dir_has_a_command_line_here():
    assert commands_taking_a_run_dir() == sorted(COMMAND_LINES)


@pytest.mark.parametrize("command", COMMAND_LINES)
def test_an_s3_run_dir_reaches_the_command_as_written(command):
    assert build_parser().parse_args(COMMAND_LINES[command]).run_dir == S3_RUN
