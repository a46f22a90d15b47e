"""Stage fingerprints: a stage is fresh when everything that decides its output is unchanged.

The fingerprint hashes, as canonical JSON: the stage kind, its parameters, the bytes of its
prompt template files, the specs of the models it calls, the code version (synthmix's version
plus the bytes of the stage's module file) and its inputs' fingerprints, plus whatever the
stage adds (a source stage: the sizes and mtimes of its input files). Changing any of these
makes the stage and everything downstream stale; nothing else does.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.contracts import content_id  # noqa: F401 - re-exported: stages imported it from here
from pipeline.file_digest import sha256_file


def canonical_hash(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def code_version(stage_class: type) -> str:
    """synthmix's version and the stage module's bytes: editing a stage makes its output stale."""
    source = inspect.getsourcefile(stage_class)
    module_hash = sha256_file(Path(source))[:16] if source else "unknown"
    return f"{__version__}+{module_hash}"


def fingerprint_parts(
    *,
    kind: str,
    params: dict[str, Any],
    prompt_hashes: dict[str, str],
    models: dict[str, Any],
    code: str,
    inputs: list[str],
    extra: dict[str, Any],
) -> dict[str, Any]:
    return {
        "kind": kind,
        "params": params,
        "prompts": prompt_hashes,
        "models": models,
        "code": code,
        "inputs": inputs,
        "extra": extra,
    }
