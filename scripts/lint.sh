#!/usr/bin/env bash
# Lint, format check and the import contracts, in seconds and without the full install (vLLM,
# models, Chromium): a small virtual environment holding only ruff and import-linter, at the
# versions pyproject.toml's `dev` extra names. Their settings are pyproject.toml's [tool.ruff] and
# [tool.importlinter]; nothing here restates them.
#   bash scripts/lint.sh                   # makes .lint-venv on first use (two small wheels)
#   LINT_VENV=.venv bash scripts/lint.sh   # uses an environment that already has both tools
set -euo pipefail
cd "$(dirname "$0")/.."
LINT_VENV=${LINT_VENV:-.lint-venv}
PYTHON=${PYTHON:-python3}

# The two pins, read from the dev extra so that they are written once.
requirements=$("$PYTHON" - <<'PY'
import re, tomllib
dev = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["dev"]
print(" ".join(r for r in dev if re.split(r"[<>=!~\[ ;]", r, maxsplit=1)[0] in ("ruff", "import-linter")))
PY
)
stamp="$LINT_VENV/.lint-requirements"
if [ ! -x "$LINT_VENV/bin/ruff" ] || [ ! -x "$LINT_VENV/bin/lint-imports" ] || { [ -f "$stamp" ] && [ "$(cat "$stamp")" != "$requirements" ]; }; then
  echo "lint: installing $requirements into $LINT_VENV" >&2
  [ -x "$LINT_VENV/bin/python" ] || "$PYTHON" -m venv "$LINT_VENV"
  # shellcheck disable=SC2086 # one word per requirement
  "$LINT_VENV/bin/python" -m pip install -q $requirements
  echo "$requirements" > "$stamp"
fi

"$LINT_VENV/bin/ruff" check .
"$LINT_VENV/bin/ruff" format --check .
# import-linter reads synthmix/ (pipeline/, stages/ and quality/ through its links) without importing it,
# so neither the project nor its dependencies need installing: external packages (ray, ...) are
# recorded by name only (`include_external_packages`).
PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" "$LINT_VENV/bin/lint-imports"
