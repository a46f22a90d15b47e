"""A user's JSON Lines file (plain or .gz) read line by line, with errors that name the file and line.

Shared by the user-file readers of probes (quality/probe_sets.py) and judged responses
(quality/judged_sets.py); each turns a record into its own kind of row.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from synthmix.pipeline.contracts import ConfigError


def read_json_lines(path: Path, *, what: str, name: str, none_held: str) -> list[tuple[int, Any]]:
    """(line number, parsed JSON) of every non-blank line of `path`, a `what` ("probe file")
    named `name` in the job. Raises ConfigError for a missing file, text that is not UTF-8, a
    line that is not JSON, and a file with no line at all (`none_held`: what to say it holds)."""
    opener = gzip.open if path.name.endswith(".gz") else open
    records = []
    try:
        with opener(path, "rt", encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    records.append((number, json.loads(line)))
                except json.JSONDecodeError as error:
                    raise ConfigError(f"{what} {path}, line {number}: not JSON ({error.msg}); fix or remove the line") from None
    except FileNotFoundError:
        raise ConfigError(f"{what} {name!r}: no file at {path}; fix `path` (relative paths start at the job file's folder)") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{what} {path} is not UTF-8 ({error.reason}); re-encode it") from None
    if not records:
        raise ConfigError(f"{what} {path} holds {none_held}; add one JSON object per line")
    return records
