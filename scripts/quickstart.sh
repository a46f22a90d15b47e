#!/usr/bin/env bash
# Install everything, then run the quickstart job end to end on the embedded model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/synthmix run jobs/quickstart.yaml "$@"
.venv/bin/synthmix status runs/quickstart
# How good the answers are: the probes' accuracy before and after each filter.
.venv/bin/synthmix eval runs/quickstart
