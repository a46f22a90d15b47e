#!/usr/bin/env bash
# Install everything, then run the whole test suite (engine and end-to-end tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# The engine tests run SmolLM2-135M (the default embedded model): convert it now, not mid-test.
.venv/bin/synthmix models prepare

# The report test opens the HTML report in headless Chromium.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
  else
    echo "test: chromium is missing; install Debian's chromium and chromium-driver" >&2
    exit 1
  fi
fi

# The near-duplicate tests build a bilingual corpus; its Chinese is Debian's Chinese manual pages
# (manpages-zh, some 700 pages). A folder check is not enough: man-db, login and passwd put a few
# pages of their own into /usr/share/man/zh_CN, and one test corpus needs hundreds.
if [ ! -f /usr/share/man/zh_CN/man1/ab.1.gz ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq manpages-zh >/dev/null
  else
    echo "test: Debian's manpages-zh is missing (no /usr/share/man/zh_CN/man1/ab.1.gz); install it" >&2
    exit 1
  fi
fi

# The sandbox tests run code inside bubblewrap, which scripts/install.sh installs as root.
if ! command -v bwrap >/dev/null 2>&1; then
  echo "test: bubblewrap (bwrap) is missing; install Debian's bubblewrap (apt-get install bubblewrap)" >&2
  exit 1
fi

# Lint, format and the layering rules (pyproject.toml: [tool.ruff], [tool.importlinter]) first:
# they take seconds, the suite takes minutes.
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# pytest exits 5 when it collects nothing: that is a failure here, as any non-zero status.
.venv/bin/python -m pytest tests "$@"
